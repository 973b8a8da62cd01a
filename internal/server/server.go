// Package server is bulkgen's HTTP surface: the REST API under /api/v1, the
// OpenAI-compatible image endpoints under /v1, live progress over SSE, and
// the health and metrics endpoints. routes.go lists every route.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"bulkgen/internal/auth"
	"bulkgen/internal/store"
)

// Deps are what the server needs; cmd/bulkgen wires them.
type Deps struct {
	DB     *store.DB
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Ext carries the dependencies of the pipeline handlers (catalogue,
	// blob store, job submission, providers); see deps.go.
	Ext Extra
}

// Server serves the API. Build it with New.
type Server struct {
	db     *store.DB
	logger *slog.Logger
	now    func() time.Time
	ext    Extra
	mux    *http.ServeMux
}

// New returns the server's handler with every route registered.
func New(d Deps) *Server {
	s := &Server{db: d.DB, logger: d.Logger, now: d.Now, ext: d.Ext, mux: http.NewServeMux()}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler: every request gets a request id, which
// the response carries in X-Request-Id and every log line repeats.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 64 || strings.ContainsFunc(id, func(c rune) bool { return c < '!' || c > '~' }) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", id)
	ctx := context.WithValue(r.Context(), requestIDKey{}, id)
	// The mux sets r.Pattern on the request it serves; observe reads it for
	// the per-route HTTP metrics (metrics.go).
	rec, r := &statusRecorder{ResponseWriter: w}, r.WithContext(ctx)
	defer s.observe(rec, r, time.Now())
	s.mux.ServeHTTP(rec, r)
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// authenticated wraps h so that it runs only for a valid API token; the
// caller's identity is then in the request context (auth.FromContext).
func (s *Server) authenticated(h handlerFunc) http.Handler {
	return s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		authz := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok || strings.TrimSpace(token) == "" {
			return errUnauthorized
		}
		tok, err := s.db.LookupAPIToken(r.Context(), s.db.Reader(), auth.HashToken(strings.TrimSpace(token)))
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		if err != nil {
			return err
		}
		user, err := s.db.GetUser(r.Context(), s.db.Reader(), tok.UserID)
		if err != nil {
			return err
		}
		id := auth.Identity{UserID: tok.UserID, WorkspaceID: tok.WorkspaceID, Role: user.Role, TokenID: tok.ID}
		return h(w, r.WithContext(auth.WithIdentity(r.Context(), id)))
	})
}

// caller returns the identity of an authenticated request.
func caller(r *http.Request) auth.Identity {
	id, _ := auth.FromContext(r.Context())
	return id
}
