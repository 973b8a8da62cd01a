package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"bulkgen/internal/batch"
	"bulkgen/internal/store"
)

// Error is an API error: an HTTP status and the JSON body
// {"error":{"code","message","details"}}.
type Error struct {
	Status  int
	Code    string
	Message string
	Details any
	// Err is the cause, logged for 5xx and never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common errors.
var (
	errUnauthorized = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "a valid API token is required (Authorization: Bearer <token>)"}
	errNotFound     = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such resource"}
)

// batchStatus is the HTTP status of each kind of batch.Error.
var batchStatus = map[batch.Kind]int{
	batch.Invalid:     http.StatusUnprocessableEntity,
	batch.NotFound:    http.StatusNotFound,
	batch.Conflict:    http.StatusConflict,
	batch.Payment:     http.StatusPaymentRequired,
	batch.Unavailable: http.StatusServiceUnavailable,
}

// asBatchError renders the batch service's refusal, if err is one, as an
// API error; a refusal about one field says which in details.field.
func asBatchError(err error) *Error {
	be, ok := batch.AsError(err)
	if !ok {
		return nil
	}
	status, known := batchStatus[be.Kind]
	if !known {
		status = http.StatusInternalServerError
	}
	details := be.Details
	if details == nil && be.Field != "" {
		details = map[string]string{"field": be.Field}
	}
	return &Error{Status: status, Code: be.Code, Message: be.Message, Details: details}
}

// handlerFunc is the shape of every handler: it returns an error, and
// exactly one place (serveError) turns errors into responses.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap adapts a handlerFunc to http.Handler.
func (s *Server) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.serveError(w, r, err)
		}
	})
}

// serveError maps err onto a status and writes the JSON error body. Store
// not-found errors become 404 and conflicts 409; anything unclassified is a
// 500 whose cause is logged with the request id (which the client sees) and
// never sent.
func (s *Server) serveError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr):
	case asBatchError(err) != nil:
		apiErr = asBatchError(err)
	case errors.Is(err, store.ErrNotFound):
		apiErr = errNotFound
	case errors.Is(err, store.ErrConflict):
		apiErr = &Error{Status: http.StatusConflict, Code: "conflict", Message: "the resource changed or already exists"}
	default:
		apiErr = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
	}
	if apiErr.Status >= 500 {
		s.logger.ErrorContext(r.Context(), "request failed", slog.String("request_id", requestID(r.Context())),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	body := map[string]any{"code": apiErr.Code, "message": apiErr.Message}
	if apiErr.Details != nil {
		body["details"] = apiErr.Details
	}
	if apiErr.Status >= 500 {
		body["request_id"] = requestID(r.Context())
	}
	if apiErr.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulkgen"`)
	}
	writeJSON(w, apiErr.Status, map[string]any{"error": body})
}
