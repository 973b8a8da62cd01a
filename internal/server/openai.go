package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"bulkgen/internal/auth"
	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/input"
	"bulkgen/internal/store"
)

// The OpenAI-compatible endpoints let any OpenAI SDK or tool generate
// through bulkgen: POST /v1/images/generations becomes a one-row batch
// (so it shows in the history, and goes through the same providers, queue
// and accounting as any other), and the request waits for its items.
//
// Answers follow OpenAI's shapes, errors included:
// {"error":{"message","type","param","code"}}.

// Defaults of the OpenAI endpoint (Extra.OpenAITimeout, OpenAIPoll).
const (
	defaultOpenAITimeout = 5 * time.Minute
	defaultOpenAIPoll    = 100 * time.Millisecond
	// openAIMaxN is OpenAI's own limit on n.
	openAIMaxN = 10
	// fileURLTTL is how long a response_format=url link works; OpenAI's
	// own image URLs last an hour too.
	fileURLTTL = time.Hour
)

// openAIError is an error in OpenAI's envelope.
type openAIError struct {
	Status  int
	Message string
	Type    string // invalid_request_error, authentication_error, server_error, …
	Param   string
	Code    string
}

func (e *openAIError) Error() string { return e.Type + ": " + e.Message }

func invalidRequest(param, code, format string, args ...any) *openAIError {
	return &openAIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: code,
		Message: fmt.Sprintf(format, args...)}
}

// openAI adapts h for the /v1 routes: Bearer authentication with a bulkgen
// API token, and every error rendered in OpenAI's envelope.
func (s *Server) openAI(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := func() error {
			id, err := s.identify(r)
			if err != nil {
				return err
			}
			return h(w, r.WithContext(auth.WithIdentity(r.Context(), id)))
		}()
		if err != nil {
			s.serveOpenAIError(w, r, err)
		}
	})
}

// identify resolves the request's Bearer token as authenticated does.
func (s *Server) identify(r *http.Request) (auth.Identity, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return auth.Identity{}, &openAIError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
			Message: "You didn't provide an API key. Send a bulkgen API token as Authorization: Bearer <token>."}
	}
	tok, err := s.db.LookupAPIToken(r.Context(), s.db.Reader(), auth.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return auth.Identity{}, &openAIError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
			Message: "Incorrect API key provided. Use a bulkgen API token."}
	}
	if err != nil {
		return auth.Identity{}, err
	}
	user, err := s.db.GetUser(r.Context(), s.db.Reader(), tok.UserID)
	if err != nil {
		return auth.Identity{}, err
	}
	return auth.Identity{UserID: tok.UserID, WorkspaceID: tok.WorkspaceID, Role: user.Role, TokenID: tok.ID}, nil
}

// serveOpenAIError renders err in OpenAI's envelope; like serveError, it
// logs 5xx with the request id and never shows their cause.
func (s *Server) serveOpenAIError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *openAIError
	var apiErr *Error
	if be := asBatchError(err); be != nil {
		apiErr = be
	}
	switch {
	case errors.As(err, &oe):
	case apiErr != nil || errors.As(err, &apiErr):
		oe = &openAIError{Status: apiErr.Status, Message: apiErr.Message, Type: "invalid_request_error", Code: apiErr.Code}
		if d, ok := apiErr.Details.(map[string]string); ok {
			oe.Param = d["field"]
		}
	case errors.Is(err, store.ErrNotFound):
		oe = &openAIError{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "no such resource"}
	default:
		oe = &openAIError{Status: http.StatusInternalServerError, Type: "server_error",
			Message: "The server had an error while processing your request (request id " + requestID(r.Context()) + ")."}
	}
	if oe.Status >= 500 {
		s.logger.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()),
			"method", r.Method, "path", r.URL.Path, "err", err)
		if oe.Type == "" || oe.Type == "invalid_request_error" {
			oe.Type = "server_error"
		}
	}
	if oe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulkgen"`)
	}
	nullable := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	writeJSON(w, oe.Status, map[string]any{"error": map[string]any{
		"message": oe.Message, "type": oe.Type, "param": nullable(oe.Param), "code": nullable(oe.Code),
	}})
}

// openAIImageRequest is the body of POST /v1/images/generations. Fields
// OpenAI defines but bulkgen cannot honour are listed so that a request
// using them gets a clear 400 instead of "unrecognized argument".
type openAIImageRequest struct {
	Prompt         string `json:"prompt"`
	Model          string `json:"model"`
	N              *int   `json:"n"`
	Size           string `json:"size"`
	Quality        string `json:"quality"`
	ResponseFormat string `json:"response_format"`
	OutputFormat   string `json:"output_format"`
	Style          string `json:"style"`
	User           string `json:"user"`

	// Accepted and ignored: they tune OpenAI's own service.
	SafetyIdentifier  string `json:"safety_identifier"`
	Background        string `json:"background"`
	Moderation        string `json:"moderation"`
	OutputCompression *int   `json:"output_compression"`
	Complexity        string `json:"complexity"`

	// Refused when set: bulkgen does not stream or make GIF/SVG output.
	Stream          bool            `json:"stream"`
	PartialImages   *int            `json:"partial_images"`
	FrameCount      *int            `json:"frame_count"`
	FrameDurationMS *int            `json:"frame_duration_ms"`
	SVG             json.RawMessage `json:"svg"`
}

// openAIImage is one entry of the response's data.
type openAIImage struct {
	B64JSON       string `json:"b64_json,omitempty"`
	URL           string `json:"url,omitempty"`
	RevisedPrompt string `json:"revised_prompt,omitempty"`
}

// openAIImagesResponse is OpenAI's ImagesResponse.
type openAIImagesResponse struct {
	Created      int64         `json:"created"`
	Data         []openAIImage `json:"data"`
	OutputFormat string        `json:"output_format,omitempty"`
	Size         string        `json:"size,omitempty"`
	Quality      string        `json:"quality,omitempty"`
	// BatchID is bulkgen's own addition: where the request is in the
	// history (GET /api/v1/batches/{id}).
	BatchID int64 `json:"bulkgen_batch_id"`
}

// decodeOpenAI reads the request body with OpenAI's error messages.
func decodeOpenAI(w http.ResponseWriter, r *http.Request, v any) error {
	err := decodeJSON(w, r, v)
	var apiErr *Error
	if err == nil || !errors.As(err, &apiErr) {
		return err
	}
	oe := &openAIError{Status: apiErr.Status, Type: "invalid_request_error", Message: apiErr.Message}
	if apiErr.Code == "unknown_field" {
		// "unknown field \"foo\"" → OpenAI's wording and param.
		name := strings.Trim(strings.TrimPrefix(apiErr.Message, "unknown field "), `"`)
		oe.Message, oe.Param, oe.Code = "Unrecognized request argument supplied: "+name, name, "unknown_parameter"
	}
	if d, ok := apiErr.Details.(map[string]string); ok {
		oe.Param = d["field"]
	}
	return oe
}

// handleOpenAIImages handles POST /v1/images/generations: OpenAI's image
// generation request, run as a one-row bulkgen batch. It waits (bounded by
// the client's connection and Extra.OpenAITimeout) until every image is
// made, then answers with them as base64 (response_format b64_json, the
// default) or as links (url: signed /v1/files/{signed} links on this
// server, valid for an hour, which need no token, like OpenAI's).
func (s *Server) handleOpenAIImages(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	who := caller(r)
	var req openAIImageRequest
	if err := decodeOpenAI(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if s.ext.Batches == nil || s.ext.Blobs == nil {
		return &openAIError{Status: http.StatusServiceUnavailable, Type: "server_error",
			Message: "image generation is not configured on this server"}
	}
	created, err := s.ext.Batches.Create(ctx, openAISpec(who.WorkspaceID, who.UserID, req), batch.InputFunc(func() (batch.RowSource, error) {
		return &literalRow{row: input.Row{File: "openai-api", Line: 1, Literal: true, Values: map[string]string{input.FieldPrompt: req.Prompt}}}, nil
	}))
	if err != nil {
		return s.openAICreateError(req, err)
	}
	b := created.Batch
	n := created.Plan.Images

	timeout := cmpDuration(s.ext.OpenAITimeout, defaultOpenAITimeout)
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done, err := s.waitItems(waitCtx, who.WorkspaceID, b.ID, n)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the client has gone; the batch goes on in the history
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return &openAIError{Status: http.StatusGatewayTimeout, Type: "server_error", Code: "timeout",
				Message: fmt.Sprintf("The images were not ready within %s. They are still being made as bulkgen batch %d.", timeout, b.ID)}
		}
		return err
	}
	return s.answerOpenAI(w, r, req, b, done)
}

// validate checks what the catalogue does not: the OpenAI-only fields.
func (req *openAIImageRequest) validate() error {
	switch {
	case strings.TrimSpace(req.Prompt) == "":
		return invalidRequest("prompt", "missing_required_parameter", "prompt is required and must not be empty")
	case req.Model == "":
		return invalidRequest("model", "missing_required_parameter", "model is required: a bulkgen catalogue id or alias (GET /v1/models lists them)")
	case req.N != nil && (*req.N < 1 || *req.N > openAIMaxN):
		return invalidRequest("n", "invalid_value", "n must be between 1 and %d", openAIMaxN)
	case req.Stream || req.PartialImages != nil:
		return invalidRequest("stream", "unsupported_parameter", "streaming is not supported by bulkgen; omit stream and partial_images")
	case req.FrameCount != nil || req.FrameDurationMS != nil || len(req.SVG) > 0:
		return invalidRequest("output_format", "unsupported_parameter", "GIF and SVG output are not supported by bulkgen")
	}
	switch req.ResponseFormat {
	case "", "b64_json", "url":
	default:
		return invalidRequest("response_format", "invalid_value", "response_format must be b64_json or url, not %q", req.ResponseFormat)
	}
	switch req.OutputFormat {
	case "", "png", "jpeg", "webp":
	default:
		return invalidRequest("output_format", "invalid_value", "output_format must be png, jpeg or webp, not %q", req.OutputFormat)
	}
	return nil
}

// openAISpec is the request as a one-row bulkgen batch, so that model
// aliases, sizes, qualities and prices are checked exactly as for any
// batch, and the images show in the history.
func openAISpec(workspaceID, userID int64, req openAIImageRequest) batch.Spec {
	n := 1
	if req.N != nil {
		n = *req.N
	}
	size, quality := req.Size, req.Quality
	if size == "auto" {
		size = ""
	}
	if quality == "auto" {
		quality = ""
	}
	return batch.Spec{
		WorkspaceID: workspaceID, UserID: userID, Name: "OpenAI API: " + shorten(req.Prompt, 60), SourceFile: "openai-api",
		Plan: batch.Config{Defaults: batch.Defaults{Model: req.Model, Size: size, Quality: quality, Format: req.OutputFormat,
			Style: req.Style, N: n}},
	}
}

// literalRow is the one row of an OpenAI request: its prompt is literal,
// braces in it are not a template.
type literalRow struct {
	row  input.Row
	done bool
}

func (l *literalRow) Next() (input.Row, error) {
	if l.done {
		return input.Row{}, io.EOF
	}
	l.done = true
	return l.row, nil
}

// openAICreateError says in OpenAI's terms why the request's batch was
// refused: a bad parameter (the first problem of its one row, or the
// default the request set), or missing credits.
func (s *Server) openAICreateError(req openAIImageRequest, err error) error {
	be, ok := batch.AsError(err)
	if !ok {
		return err
	}
	if be.Kind == batch.Payment {
		return &openAIError{Status: http.StatusPaymentRequired, Type: "insufficient_quota", Code: be.Code, Message: be.Message}
	}
	param, msg := be.Field, be.Message
	if details, ok := be.Details.(map[string]any); ok && be.Code == "no_valid_rows" {
		if problems, _ := details["problems"].([]batch.Problem); len(problems) > 0 {
			param, msg = problems[0].Field, problems[0].Message
		}
	}
	if param == "" || be.Kind != batch.Invalid {
		return err
	}
	msg = strings.TrimPrefix(msg, param+": ")
	param = strings.TrimPrefix(param, "defaults.")
	if param == "model" {
		var unknown *catalog.UnknownModelError
		if _, lerr := s.catalog().Lookup(req.Model); errors.As(lerr, &unknown) {
			return &openAIError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model",
				Code: "model_not_found", Message: "The model `" + req.Model + "` does not exist: " + msg}
		}
	}
	if param == "format" {
		param = "output_format"
	}
	return invalidRequest(param, "invalid_value", "%s", msg)
}

func (s *Server) catalog() *catalog.Catalog {
	if s.ext.Catalog != nil {
		return s.ext.Catalog
	}
	return catalog.Default()
}

// waitItems polls the batch's items until none is pending or running and
// returns them. A worker that notified would save the polling; until one
// exists, a short interval on an indexed query is cheap.
func (s *Server) waitItems(ctx context.Context, ws, batchID int64, n int) ([]store.Item, error) {
	poll := cmpDuration(s.ext.OpenAIPoll, defaultOpenAIPoll)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		items, err := s.db.ListItems(ctx, s.db.Reader(), ws, store.ItemFilter{BatchID: batchID}, 0, n)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(items, func(it store.Item) bool {
			return it.Status == store.ItemPending || it.Status == store.ItemRunning
		}) {
			return items, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// answerOpenAI writes the response for finished items: every image made,
// or, when none was, the first item's error in OpenAI's terms.
func (s *Server) answerOpenAI(w http.ResponseWriter, r *http.Request, req openAIImageRequest, b store.Batch, items []store.Item) error {
	ctx := r.Context()
	ws := b.WorkspaceID
	resp := openAIImagesResponse{Created: s.now().Unix(), Data: []openAIImage{}, BatchID: b.ID}
	var firstFail *store.Item
	for i := range items {
		it := &items[i]
		if it.Status != store.ItemSucceeded {
			if firstFail == nil {
				firstFail = it
			}
			continue
		}
		ims, err := s.db.ListImages(ctx, s.db.Reader(), ws, store.ImageFilter{ItemID: it.ID}, 0, 10)
		if err != nil {
			return err
		}
		if len(ims) == 0 {
			return fmt.Errorf("item %d succeeded without an image", it.ID)
		}
		im := ims[len(ims)-1]
		resp.OutputFormat = im.Format
		resp.Size = fmt.Sprintf("%dx%d", im.Width, im.Height)
		resp.Quality = it.Quality
		if req.ResponseFormat == "url" {
			resp.Data = append(resp.Data, openAIImage{URL: s.fileURL(r, im.ID, ws)})
			continue
		}
		obj, err := s.ext.Blobs.Open(ctx, im.BlobKey)
		if err != nil {
			return fmt.Errorf("open image %d: %w", im.ID, err)
		}
		data, err := io.ReadAll(obj)
		_ = obj.Close()
		if err != nil {
			return fmt.Errorf("read image %d: %w", im.ID, err)
		}
		resp.Data = append(resp.Data, openAIImage{B64JSON: base64.StdEncoding.EncodeToString(data)})
	}
	if len(resp.Data) == 0 && firstFail != nil {
		return itemFailure(firstFail)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// itemFailure turns a failed item into the OpenAI error a client expects
// for its class.
func itemFailure(it *store.Item) error {
	msg := it.Error
	if msg == "" {
		msg = "the image was not made (" + string(it.Status) + ")"
	}
	switch it.ErrorClass {
	case "rejected":
		return &openAIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: "prompt",
			Code: "content_policy_violation", Message: msg}
	case "invalid":
		return &openAIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_value", Message: msg}
	}
	return &openAIError{Status: http.StatusBadGateway, Type: "server_error", Code: "provider_error", Message: msg}
}

// shorten cuts s to at most n runes for a display name.
func shorten(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' ' // a display name has no control characters
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// handleOpenAIModels handles GET /v1/models: the catalogue in OpenAI's list
// shape, owned_by naming the provider. It lists the models that can run
// here (their provider is configured); ?all=true lists the others too,
// with "available": false and the reason, so that a client picking from
// the list never picks one that fails. Retired models are left out.
func (s *Server) handleOpenAIModels(w http.ResponseWriter, r *http.Request) error {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
		// Available is false for a model whose provider is not configured
		// here (listed only with ?all=true); Unavailable says why.
		Available   bool   `json:"available"`
		Unavailable string `json:"unavailable_reason,omitempty"`
	}
	all := false
	if v := r.URL.Query().Get("all"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return invalidRequest("all", "invalid_value", "all must be true or false, not %q", v)
		}
		all = b
	}
	now := s.now()
	out := []model{}
	for _, m := range s.catalog().Models() {
		if m.RetiredAt(now) {
			continue
		}
		// The catalogue carries no release dates; 0 is "unknown" and keeps
		// the list stable from one call to the next.
		e := model{ID: m.ID, Object: "model", OwnedBy: m.Provider, Available: true}
		if s.ext.Available != nil {
			if err := s.ext.Available(m.Provider); err != nil {
				if !all {
					continue
				}
				e.Available, e.Unavailable = false, err.Error()
			}
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
	return nil
}

// fileURL returns the absolute signed link to image id of workspace ws.
// The host is the one the client used; behind a proxy that rewrites it, the
// proxy must pass the original Host.
func (s *Server) fileURL(r *http.Request, id, ws int64) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/v1/files/" + s.signFile(id, ws, s.now().Add(fileURLTTL))
}

// signFile makes the {signed} part of a file link: "<id>.<ws>.<expiry>"
// and an HMAC-SHA256 of it, both base64url.
func (s *Server) signFile(id, ws int64, expires time.Time) string {
	payload := fmt.Sprintf("%d.%d.%d", id, ws, expires.Unix())
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(s.fileMAC(payload))
}

// verifyFile checks a {signed} value and returns its image and workspace.
func (s *Server) verifyFile(signed string) (id, ws int64, ok bool) {
	p64, m64, found := strings.Cut(signed, ".")
	if !found {
		return 0, 0, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.fileMAC(string(payload))) {
		return 0, 0, false
	}
	parts := strings.Split(string(payload), ".")
	if len(parts) != 3 {
		return 0, 0, false
	}
	id, err1 = strconv.ParseInt(parts[0], 10, 64)
	ws, err2 = strconv.ParseInt(parts[1], 10, 64)
	exp, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || s.now().Unix() > exp {
		return 0, 0, false
	}
	return id, ws, true
}

func (s *Server) fileMAC(payload string) []byte {
	m := hmac.New(sha256.New, s.urlKey())
	m.Write([]byte("bulkgen file link v1\x00" + payload))
	return m.Sum(nil)
}

// processURLKey is the signing key when the wiring gives none: random per
// process, so links die with it (their life is an hour anyway).
var processURLKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
})

func (s *Server) urlKey() []byte {
	if len(s.ext.URLKey) > 0 {
		return s.ext.URLKey
	}
	return processURLKey()
}

// handleOpenAIFile handles GET /v1/files/{signed}: the image a
// response_format=url answer links to. The signature is the authorisation;
// a bad, foreign or expired link is a 404 like a missing image.
func (s *Server) handleOpenAIFile(w http.ResponseWriter, r *http.Request) error {
	id, ws, ok := s.verifyFile(r.PathValue("signed"))
	if !ok {
		return errNotFound
	}
	im, err := s.db.GetImage(r.Context(), s.db.Reader(), ws, id)
	if err != nil {
		return err
	}
	if s.ext.Blobs == nil {
		return errNotFound
	}
	obj, err := s.ext.Blobs.Open(r.Context(), im.BlobKey)
	if err != nil {
		return fmt.Errorf("open image %d: %w", im.ID, err)
	}
	defer obj.Close()
	ct := "image/" + im.Format
	if im.Format == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("ETag", `"`+im.SHA256+`"`)
	http.ServeContent(w, r, "", obj.ModTime(), obj)
	return nil
}
