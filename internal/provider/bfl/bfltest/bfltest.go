// Package bfltest is a local contract server for the Black Forest Labs API
// (section 6 of shared/docs/providers.md): x-key auth, submit on each model
// path with FastAPI-style 422 validation, per-key active-task limit (429),
// a credit budget (402), tasks that stay Pending for a while and then end
// Ready with a signed sample URL that expires, or in one of the documented
// failure states.
package bfltest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// DefaultModels are the model paths the server accepts unless
// Options.Models says otherwise.
var DefaultModels = []string{
	"flux-2-klein-4b", "flux-2-klein-9b", "flux-2-pro", "flux-2-max", "flux-2-flex",
	"flux-pro-1.1", "flux-pro-1.1-ultra", "flux-pro-1.1-raw", "flux-kontext", "flux-kontext-max",
}

// Task end states, as BFL spells them in the poll answer.
const (
	StatusPending           = "Pending"
	StatusReady             = "Ready"
	StatusError             = "Error"
	StatusRequestModerated  = "Request Moderated"
	StatusContentModerated  = "Content Moderated"
	StatusTaskNotFound      = "Task not found"
	defaultKey              = "bfl-test-key-0123456789abcdef"
	defaultMaxActive        = 24
	defaultPendingFor       = 50 * time.Millisecond
	defaultSampleTTL        = 10 * time.Minute
	slowPending             = time.Hour
	maxImageSide            = 1024
	maxFlux2Pixels          = 4 << 20
	defaultRetryAfterSecond = 1
)

// Options configures the server. Zero values mean the defaults.
type Options struct {
	// Key is the only accepted x-key; empty means a fixed test key.
	Key string
	// Models are the accepted model paths (POST /v1/{model}).
	Models []string
	// PendingFor is how long a task stays Pending (and active). Default 50 ms.
	PendingFor time.Duration
	// SampleTTL is how long a sample URL works after the task is Ready.
	// Default 10 minutes, as on BFL.
	SampleTTL time.Duration
	// MaxActive is the per-key limit on tasks not yet finished. Default 24.
	MaxActive int
	// Credits is how many tasks the key may submit before 402; 0 is no limit.
	Credits int
	// RetryAfter is the delay in seconds a 429 advertises; 0 means 1, a
	// negative value advertises none.
	RetryAfter int
	// RetryAfterInBody advertises the delay only in the body's retry_after
	// field, not in a Retry-After header.
	RetryAfterInBody bool
	// SampleBase is the base URL sample files are served from; empty means
	// this server. Point it at another server to test download guards.
	SampleBase string
	// RedirectSample makes the sample URL a link on this server that
	// answers 302 to the file under SampleBase, as delivery links may.
	RedirectSample bool
	// SampleBytes pads each sample file with trailing bytes up to this size
	// (decoders ignore them), to test download size limits.
	SampleBytes int
}

// Request is a submit call as the server received it.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// Server is a running contract server.
type Server struct {
	// URL is the base URL to configure the adapter with.
	URL string
	// Key is the accepted x-key.
	Key string

	opt Options

	pending providertest.Queue[fault] // injected answers for the next submits
	calls   atomic.Int64

	mu    sync.Mutex
	tasks map[string]*task
	spent int
	last  Request
}

type fault struct {
	status     int    // HTTP status for the submit, or 0
	taskStatus string // end state of the task, or ""
	slow       bool
}

type task struct {
	id, key, token  string
	model, format   string
	width, height   int
	seed            int64
	submitted, done time.Time
	status          string // the end state once done
	file            []byte // encoded sample, made on first download
}

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" {
		opt.Key = defaultKey
	}
	if opt.Models == nil {
		opt.Models = DefaultModels
	}
	if opt.PendingFor == 0 {
		opt.PendingFor = defaultPendingFor
	}
	if opt.SampleTTL == 0 {
		opt.SampleTTL = defaultSampleTTL
	}
	if opt.MaxActive == 0 {
		opt.MaxActive = defaultMaxActive
	}
	if opt.RetryAfter == 0 {
		opt.RetryAfter = defaultRetryAfterSecond
	}
	s := &Server{Key: opt.Key, opt: opt, tasks: map[string]*task{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{model}", s.handleSubmit)
	mux.HandleFunc("GET /v1/get_result", s.handleResult)
	mux.HandleFunc("GET /results/{id}/{file}", s.handleSample)
	mux.HandleFunc("GET /delivery/{id}", s.handleDelivery)
	hs := httptest.NewServer(mux)
	tb.Cleanup(hs.Close)
	s.URL = hs.URL
	if s.opt.SampleBase == "" {
		s.opt.SampleBase = hs.URL
	}
	return s
}

// Inject makes the next n submits end in f the way BFL produces it:
// RateLimit is a 429 with a one-second delay, ServerError a task ending in
// "Error", ContentPolicy one ending in "Content Moderated", BadAuth a 403,
// InvalidRequest a 422, Slow a task that stays Pending for an hour.
func (s *Server) Inject(f providertest.Fault, n int) {
	var ft fault
	switch f {
	case providertest.None:
		return
	case providertest.RateLimit:
		ft.status = http.StatusTooManyRequests
	case providertest.ServerError:
		ft.taskStatus = StatusError
	case providertest.ContentPolicy:
		ft.taskStatus = StatusContentModerated
	case providertest.BadAuth:
		ft.status = http.StatusForbidden
	case providertest.InvalidRequest:
		ft.status = http.StatusUnprocessableEntity
	case providertest.Slow:
		ft.slow = true
	}
	s.inject(ft, n)
}

// InjectHTTP makes the next n submits answer with status and the body BFL
// sends with it (401, 402, 403, 422, 429, 500, 503, ...).
func (s *Server) InjectHTTP(status, n int) { s.inject(fault{status: status}, n) }

// InjectStatus makes the next n tasks end in status (StatusError,
// StatusRequestModerated, StatusContentModerated, StatusTaskNotFound).
func (s *Server) InjectStatus(status string, n int) { s.inject(fault{taskStatus: status}, n) }

func (s *Server) inject(f fault, n int) {
	s.pending.Push(f, n)
}

// Calls reports how many submits the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// LastRequest returns the last submit received.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Header = r.Header.Clone()
	r.Body = slices.Clone(r.Body)
	return r
}

// Active reports how many of key's tasks are still running.
func (s *Server) Active(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activeLocked(key, time.Now())
}

func (s *Server) activeLocked(key string, now time.Time) int {
	n := 0
	for _, t := range s.tasks {
		if t.key == key && now.Before(t.done) {
			n++
		}
	}
	return n
}

// handleSubmit serves POST /v1/{model}.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.Add(1)
	s.last = Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}

	key := r.Header.Get("x-key")
	if key == "" {
		providertest.WriteJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Not authenticated"})
		return
	}
	if key != s.Key {
		providertest.WriteJSON(w, http.StatusForbidden, map[string]any{"detail": "Invalid API key"})
		return
	}
	ft, _ := s.pending.Next()
	if ft.status != 0 {
		s.writeStatus(w, ft.status)
		return
	}
	model := r.PathValue("model")
	if !slices.Contains(s.opt.Models, model) {
		providertest.WriteJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{
			problem([]any{"body"}, "JSON decode error", "json_invalid", nil)}})
		return
	}
	t, problems := parseTask(model, in)
	if len(problems) > 0 {
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": problems})
		return
	}
	now := time.Now()
	if s.activeLocked(key, now) >= s.opt.MaxActive {
		s.writeStatus(w, http.StatusTooManyRequests)
		return
	}
	if s.opt.Credits > 0 && s.spent >= s.opt.Credits {
		s.writeStatus(w, http.StatusPaymentRequired)
		return
	}
	s.spent++
	t.id = newID()
	t.key = key
	t.token = newID()
	t.submitted = now
	t.done = now.Add(s.opt.PendingFor)
	t.status = StatusReady
	if ft.slow {
		t.done = now.Add(slowPending)
	}
	if ft.taskStatus != "" {
		t.status = ft.taskStatus
	}
	s.tasks[t.id] = t
	providertest.WriteJSON(w, http.StatusOK, map[string]any{
		"id":          t.id,
		"polling_url": s.URL + "/v1/get_result?id=" + t.id,
	})
}

// writeStatus answers with status and the body BFL uses for it.
func (s *Server) writeStatus(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusUnauthorized:
		providertest.WriteJSON(w, status, map[string]any{"detail": "Not authenticated"})
	case http.StatusPaymentRequired:
		providertest.WriteJSON(w, status, map[string]any{"detail": "Insufficient credits. Add credits at https://dashboard.bfl.ai"})
	case http.StatusForbidden:
		providertest.WriteJSON(w, status, map[string]any{"detail": "Invalid API key"})
	case http.StatusUnprocessableEntity:
		providertest.WriteJSON(w, status, map[string]any{"detail": []any{
			problem([]any{"body", "width"}, "Input should be a multiple of 16", "multiple_of", 1000)}})
	case http.StatusTooManyRequests:
		body := map[string]any{
			"error":   "rate_limit_exceeded",
			"message": fmt.Sprintf("You have exceeded the limit of %d active tasks. Wait for a task to finish.", s.opt.MaxActive),
			"detail":  "Too many active tasks",
		}
		if s.opt.RetryAfter > 0 {
			body["retry_after"] = s.opt.RetryAfter
			if !s.opt.RetryAfterInBody {
				w.Header().Set("Retry-After", strconv.Itoa(s.opt.RetryAfter))
			}
		}
		providertest.WriteJSON(w, status, body)
	default:
		providertest.WriteJSON(w, status, map[string]any{"detail": http.StatusText(status)})
	}
}

var ratioRE = regexp.MustCompile(`^(\d+):(\d+)$`)

// parseTask validates a submit body the way the model's schema does and
// returns FastAPI-style problems.
func parseTask(model string, in map[string]any) (*task, []any) {
	var problems []any
	add := func(field, msg, typ string, input any) {
		problems = append(problems, problem([]any{"body", field}, msg, typ, input))
	}
	t := &task{model: model, format: "jpeg", width: 1024, height: 1024}
	if p, ok := in["prompt"].(string); !ok || p == "" {
		add("prompt", "Field required", "missing", nil)
	}
	if v, ok := in["output_format"]; ok {
		f, _ := v.(string)
		if f != "jpeg" && f != "png" {
			add("output_format", "Input should be 'jpeg' or 'png'", "enum", v)
		}
		t.format = f
	}
	if v, ok := in["seed"]; ok {
		f, isNum := v.(float64)
		if !isNum || f != float64(int64(f)) {
			add("seed", "Input should be a valid integer", "int_type", v)
		}
		t.seed = int64(f)
	}
	maxSafety := 6
	ratioOnly := strings.HasSuffix(model, "-ultra") || strings.HasPrefix(model, "flux-kontext")
	switch {
	case ratioOnly:
		ar := "16:9"
		if v, ok := in["aspect_ratio"]; ok {
			ar, _ = v.(string)
		}
		m := ratioRE.FindStringSubmatch(ar)
		var rw, rh float64
		if m != nil {
			rw, _ = strconv.ParseFloat(m[1], 64)
			rh, _ = strconv.ParseFloat(m[2], 64)
		}
		if m == nil || rw == 0 || rh == 0 || rw/rh > 21.0/9 || rh/rw > 21.0/9 {
			add("aspect_ratio", "Aspect ratio must be between 21:9 and 9:21", "value_error", ar)
		} else {
			t.width, t.height = providertest.Fit(int(rw*1000), int(rh*1000), maxImageSide)
		}
	default:
		mult, lo, hi := 32, 256, 1440
		if strings.HasPrefix(model, "flux-2") {
			mult, lo, hi, maxSafety = 16, 64, 1<<16, 5
		}
		for _, side := range []string{"width", "height"} {
			v, ok := in[side]
			if !ok {
				continue
			}
			f, isNum := v.(float64)
			n := int(f)
			switch {
			case !isNum || f != float64(n):
				add(side, "Input should be a valid integer", "int_type", v)
			case n%mult != 0:
				add(side, fmt.Sprintf("Input should be a multiple of %d", mult), "multiple_of", v)
			case n < lo:
				add(side, fmt.Sprintf("Input should be greater than or equal to %d", lo), "greater_than_equal", v)
			case n > hi:
				add(side, fmt.Sprintf("Input should be less than or equal to %d", hi), "less_than_equal", v)
			}
			if side == "width" {
				t.width = n
			} else {
				t.height = n
			}
		}
		if strings.HasPrefix(model, "flux-2") && t.width*t.height > maxFlux2Pixels {
			add("width", "Image must be at most 4 megapixels", "value_error", t.width*t.height)
		}
	}
	if v, ok := in["safety_tolerance"]; ok {
		f, isNum := v.(float64)
		if !isNum || f != float64(int(f)) || f < 0 || int(f) > maxSafety {
			add("safety_tolerance", fmt.Sprintf("Input should be an integer from 0 to %d", maxSafety), "value_error", v)
		}
	}
	return t, problems
}

func problem(loc []any, msg, typ string, input any) map[string]any {
	return map[string]any{"loc": loc, "msg": msg, "type": typ, "input": input}
}

// handleResult serves GET /v1/get_result?id=.
func (s *Server) handleResult(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("x-key") != s.Key {
		providertest.WriteJSON(w, http.StatusForbidden, map[string]any{"detail": "Invalid API key"})
		return
	}
	id := r.URL.Query().Get("id")
	s.mu.Lock()
	t, ok := s.tasks[id]
	var snap task
	if ok {
		snap = *t
	}
	s.mu.Unlock()
	switch {
	case !ok || snap.key != r.Header.Get("x-key"):
		providertest.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "status": StatusTaskNotFound, "result": nil})
	case time.Now().Before(snap.done):
		providertest.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "status": StatusPending, "result": nil, "progress": 0.5})
	case snap.status == StatusReady:
		providertest.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "status": StatusReady, "result": map[string]any{
			"sample":     s.sampleURL(&snap),
			"prompt":     "",
			"seed":       snap.seed,
			"start_time": snap.submitted.Unix(),
			"end_time":   snap.done.Unix(),
		}})
	case snap.status == StatusRequestModerated || snap.status == StatusContentModerated:
		providertest.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "status": snap.status, "result": nil,
			"details": map[string]any{"Moderation Reasons": []string{"Derivative Works Filter"}}})
	default:
		providertest.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "status": snap.status, "result": nil,
			"details": "Internal error while generating the image"})
	}
}

func (s *Server) sampleURL(t *task) string {
	expiry := t.done.Add(s.opt.SampleTTL).UTC().Format("2006-01-02T15:04:05Z")
	if s.opt.RedirectSample {
		return fmt.Sprintf("%s/delivery/%s?sig=%s", s.URL, t.id, t.token)
	}
	return s.fileURL(t, expiry)
}

func (s *Server) fileURL(t *task, expiry string) string {
	return fmt.Sprintf("%s/results/%s/sample.%s?se=%s&sig=%s", s.opt.SampleBase, t.id, t.format, expiry, t.token)
}

// handleDelivery serves GET /delivery/{id}: a redirect to the signed file.
func (s *Server) handleDelivery(w http.ResponseWriter, r *http.Request) {
	t, ok := s.readyTask(r.PathValue("id"), r.URL.Query().Get("sig"))
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	expiry := t.done.Add(s.opt.SampleTTL).UTC().Format("2006-01-02T15:04:05Z")
	http.Redirect(w, r, s.fileURL(t, expiry), http.StatusFound)
}

// handleSample serves GET /results/{id}/sample.{ext}: the image while the
// signature is valid, then 403 as a signed blob URL does.
func (s *Server) handleSample(w http.ResponseWriter, r *http.Request) {
	t, ok := s.readyTask(r.PathValue("id"), r.URL.Query().Get("sig"))
	if !ok {
		http.Error(w, "AuthenticationFailed: signature did not match", http.StatusForbidden)
		return
	}
	if time.Now().After(t.done.Add(s.opt.SampleTTL)) {
		http.Error(w, "AuthenticationFailed: signed expiry time has passed", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	var err error
	if t.file == nil {
		fw, fh := providertest.Fit(t.width, t.height, maxImageSide)
		t.file, err = providertest.TestImage(fw, fh, t.format, t.seed)
		if pad := s.opt.SampleBytes - len(t.file); pad > 0 && err == nil {
			t.file = append(t.file, make([]byte, pad)...)
		}
	}
	file := t.file
	s.mu.Unlock()
	if err != nil {
		http.Error(w, "InternalError: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/"+t.format)
	w.Header().Set("Content-Length", strconv.Itoa(len(file)))
	_, _ = w.Write(file)
}

func (s *Server) readyTask(id, sig string) (*task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || t.token != sig || t.status != StatusReady || time.Now().Before(t.done) {
		return nil, false
	}
	return t, true
}

func newID() string { return providertest.RandomHex(16) }
