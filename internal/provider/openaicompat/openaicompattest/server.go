// Package openaicompattest is a local contract server modelled on LocalAI's
// OpenAI-compatible images endpoint (providers.md section 9): required
// model, the 512x512 fallback for sizes without "x", the "positive|negative"
// prompt split, numeric error codes, 503 + Retry-After while a model loads,
// 429 + Retry-After on the per-user quota, and images served from
// /generated-images/ when b64_json is not asked for.
//
// Images are real PNGs of the requested size, scaled down to
// Options.MaxEdge on the longer side (2048 by default) to keep tests fast.
package openaicompattest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// DefaultKey is the API key the server accepts when Options.Key is empty.
const DefaultKey = "localai-test-key-0123456789abcdef"

// DefaultModel is a model the server has configured.
const DefaultModel = "stablediffusion"

// Output says how the server returns images.
type Output int

const (
	// OutputAsAsked is LocalAI's behaviour: b64_json when
	// response_format is "b64_json", a /generated-images/ URL otherwise.
	OutputAsAsked Output = iota
	// OutputURL always answers with a URL, like servers that ignore
	// response_format.
	OutputURL
	// OutputDataURI puts a data: URI in data[].url, as bridges such as
	// OpenedAI Images do.
	OutputDataURI
)

// Options configures a Server. Zero values mean defaults.
type Options struct {
	// Key is the accepted API key; DefaultKey if empty.
	Key string
	// NoAuth serves without keys, as LocalAI does when none are configured.
	NoAuth bool
	// EchoKey makes authentication errors quote the presented key, to test
	// that adapters scrub keys from messages.
	EchoKey bool
	// Latency is how long one image takes to generate (n images take n
	// times as long, as LocalAI loops).
	Latency time.Duration
	// RPM is the per-user request quota over a sliding window; calls over
	// it get 429 quota_exceeded with Retry-After. Zero means unlimited.
	RPM int
	// Window is the length of the RPM window; one minute if zero.
	Window time.Duration
	// MaxEdge caps the longer side of generated images; 2048 if zero.
	MaxEdge int
	// Models are the configured model names; DefaultModel and "flux.1-dev"
	// if empty.
	Models []string
	// Output selects how images are returned.
	Output Output
	// URLPrefix replaces "<server URL>/generated-images/" in URL outputs:
	// another server's URL, or "/generated-images/" for server-relative
	// URLs.
	URLPrefix string
	// RedirectImages, when set, makes /generated-images/<file> answer a
	// 302 to RedirectImages+<file>.
	RedirectImages string
	// JPEG returns JPEG bytes (under the same .png names), as some
	// backends do, so that format sniffing is exercised.
	JPEG bool
}

// Reply is a canned answer that replaces the next generation calls.
type Reply struct {
	Status int
	Header http.Header
	Body   string
}

// Request is what the server decoded from the last generation call.
type Request struct {
	Header http.Header
	// Fields is every top-level JSON field as sent.
	Fields         map[string]json.RawMessage
	Model          string
	Prompt         string
	ResponseFormat string
	Size           string
	N              int
	// Positive and Negative are Prompt split at the first "|".
	Positive, Negative string
	// Width and Height are the size the server will generate (after the
	// 512x512 fallback).
	Width, Height int
}

// Server is a running contract server, safe for concurrent use.
type Server struct {
	// URL is the API root including /v1, for Config.BaseURL.
	URL string
	// Key is the accepted API key ("" with NoAuth).
	Key string

	opt    Options
	srv    *httptest.Server
	images providertest.ImageCache
	done   chan struct{}

	queue providertest.Queue[answer]
	calls atomic.Int64
	rpm   *providertest.Window

	mu        sync.Mutex
	files     map[string][]byte
	last      *Request
	downloads int
}

type answer struct {
	fault providertest.Fault
	reply *Reply
}

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" && !opt.NoAuth {
		opt.Key = DefaultKey
	}
	if opt.NoAuth {
		opt.Key = ""
	}
	if opt.Window <= 0 {
		opt.Window = time.Minute
	}
	if opt.MaxEdge <= 0 {
		opt.MaxEdge = 2048
	}
	if len(opt.Models) == 0 {
		opt.Models = []string{DefaultModel, "flux.1-dev"}
	}
	s := &Server{Key: opt.Key, opt: opt, done: make(chan struct{}), files: map[string][]byte{},
		rpm: providertest.NewWindow(opt.RPM, opt.Window)}
	mux := http.NewServeMux()
	for _, p := range []string{"/v1/images/generations", "/images/generations"} {
		mux.HandleFunc("POST "+p, s.handleGenerate)
	}
	for _, p := range []string{"/v1/models", "/models"} {
		mux.HandleFunc("GET "+p, s.handleModels)
	}
	mux.HandleFunc("GET /generated-images/{file}", s.handleFile)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v1"
	tb.Cleanup(func() {
		close(s.done)
		s.srv.Close()
	})
	return s
}

// Inject makes the next n generation calls answer with fault f as LocalAI
// would: RateLimit is 429 quota_exceeded with Retry-After 1, ServerError a
// 500 with numeric code, BadAuth a 401, InvalidRequest a 400, Slow holds the
// answer until the client goes away (or 60 s). LocalAI has no content
// filter; ContentPolicy answers as an OpenAI-compatible gateway relaying a
// hosted model's refusal: 400 with code "moderation_blocked".
func (s *Server) Inject(f providertest.Fault, n int) {
	s.queue.Push(answer{fault: f}, n)
}

// InjectReply makes the next n generation calls answer with r.
func (s *Server) InjectReply(r Reply, n int) {
	s.queue.Push(answer{reply: &r}, n)
}

// Calls reports how many generation calls the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// Throttled reports how many calls the RPM quota answered with 429.
func (s *Server) Throttled() int {
	return s.rpm.Refused()
}

// Downloads reports how many generated files were served.
func (s *Server) Downloads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downloads
}

// LastRequest returns the last generation call's decoded request, or nil.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// ModelLoadingReply is LocalAI's 503 while a model is still loading.
func ModelLoadingReply(retryAfter int) Reply {
	h := http.Header{}
	h.Set("Retry-After", strconv.Itoa(retryAfter))
	return Reply{Status: 503, Header: h, Body: `{"error":{"code":"model_loading","message":"model stablediffusion is loading, please retry later","type":"model_loading"},"loading":{"progress":0.42,"stage":"loading weights"}}`}
}

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)

	if !s.checkAuth(w, r) {
		return
	}
	req, ok := s.decode(w, r)
	if !ok {
		return
	}

	if next, ok := s.queue.Next(); ok {
		if next.reply != nil {
			writeReply(w, *next.reply)
			return
		}
		if !s.fault(w, r, next.fault) {
			return
		}
	}
	if !s.admit(w) {
		return
	}
	if req.Model == "" {
		writeError(w, 400, "model is required", "")
		return
	}
	if !slices.Contains(s.opt.Models, req.Model) {
		// LocalAI tries to load an unknown name as a model file and fails
		// inside the backend: a 500, not a 404.
		writeError(w, 500, fmt.Sprintf("could not load model %s: model not found in the model path", req.Model), "")
		return
	}
	if !s.wait(r, time.Duration(req.N)*s.opt.Latency) {
		return
	}
	s.success(w, r, req)
}

// checkAuth accepts the key as Bearer, x-api-key or xi-api-key.
func (s *Server) checkAuth(w http.ResponseWriter, r *http.Request) bool {
	if s.opt.NoAuth {
		return true
	}
	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if key == "" {
		key = r.Header.Get("X-Api-Key")
	}
	if key == "" {
		key = r.Header.Get("Xi-Api-Key")
	}
	if key == "" {
		writeError(w, 401, "An authentication key is required", "invalid_request_error")
		return false
	}
	if key != s.Key {
		s.badKey(w, key)
		return false
	}
	return true
}

func (s *Server) badKey(w http.ResponseWriter, key string) {
	msg := "Invalid authentication key"
	if s.opt.EchoKey {
		msg += ": " + key
	}
	writeError(w, 401, msg, "invalid_request_error")
}

func (s *Server) fault(w http.ResponseWriter, r *http.Request, f providertest.Fault) bool {
	switch f {
	case providertest.RateLimit:
		h := http.Header{}
		h.Set("Retry-After", "1")
		writeReply(w, Reply{Status: 429, Header: h, Body: `{"error":{"code":429,"message":"request quota exceeded for this key, retry later","type":"quota_exceeded"}}`})
	case providertest.ServerError:
		writeError(w, 500, "rpc error: code = Unknown desc = inference failed: CUDA out of memory", "")
	case providertest.ContentPolicy:
		writeReply(w, Reply{Status: 400, Body: `{"error":{"code":"moderation_blocked","message":"Your request was rejected by the safety system. safety_violations=[violence].","type":"image_generation_user_error"}}`})
	case providertest.BadAuth:
		key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.badKey(w, key)
	case providertest.InvalidRequest:
		writeError(w, 400, "failed parsing request body: json: cannot unmarshal string into Go struct field OpenAIRequest.n of type int", "")
	case providertest.Slow:
		return s.wait(r, 60*time.Second)
	default:
		return true
	}
	return false
}

func (s *Server) wait(r *http.Request, d time.Duration) bool {
	return providertest.Sleep(r, s.done, d)
}

// admit applies the RPM quota over a sliding window.
func (s *Server) admit(w http.ResponseWriter) bool {
	if s.opt.RPM <= 0 {
		return true
	}
	allowed, _, reset := s.rpm.Admit(time.Now())
	if allowed {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(reset.Seconds())))))
	writeReply(w, Reply{Status: 429, Body: `{"error":{"code":429,"message":"request quota exceeded for this key, retry later","type":"quota_exceeded"}}`})
	return false
}

// decode reads the body the way LocalAI does: JSON into its request
// struct, the size parsed leniently.
func (s *Server) decode(w http.ResponseWriter, r *http.Request) (*Request, bool) {
	req := &Request{Header: r.Header.Clone()}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req.Fields); err != nil {
		writeError(w, 400, "failed parsing request body: "+err.Error(), "")
		return nil, false
	}
	s.mu.Lock()
	s.last = req
	s.mu.Unlock()
	for name, dst := range map[string]any{"model": &req.Model, "prompt": &req.Prompt, "response_format": &req.ResponseFormat, "size": &req.Size, "n": &req.N} {
		if raw, ok := req.Fields[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				writeError(w, 400, fmt.Sprintf("failed parsing request body: json: cannot unmarshal %s into Go struct field OpenAIRequest.%s", raw, name), "")
				return nil, false
			}
		}
	}
	req.Positive, req.Negative, _ = strings.Cut(req.Prompt, "|")
	req.Width, req.Height = 512, 512
	if ws, hs, ok := strings.Cut(req.Size, "x"); ok {
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if err1 == nil && err2 == nil && w > 0 && h > 0 {
			req.Width, req.Height = w, h
		}
	}
	if req.N <= 0 {
		req.N = 1
	}
	return req, true
}

func (s *Server) success(w http.ResponseWriter, r *http.Request, req *Request) {
	width, height := providertest.Fit(req.Width, req.Height, s.opt.MaxEdge)
	format := "png"
	if s.opt.JPEG {
		format = "jpeg"
	}
	img, err := s.images.Get(width, height, format, 0)
	if err != nil {
		writeError(w, 500, "inference failed: "+err.Error(), "")
		return
	}
	type datum struct {
		B64JSON string `json:"b64_json,omitempty"`
		URL     string `json:"url,omitempty"`
	}
	data := make([]datum, req.N)
	for i := range data {
		switch {
		case s.opt.Output == OutputDataURI:
			mime := "image/png"
			if s.opt.JPEG {
				mime = "image/jpeg"
			}
			data[i].URL = "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(img)
		case s.opt.Output == OutputAsAsked && req.ResponseFormat == "b64_json":
			data[i].B64JSON = base64.StdEncoding.EncodeToString(img)
		default:
			name := newID("b64") + ".png"
			s.mu.Lock()
			s.files[name] = img
			s.mu.Unlock()
			prefix := s.opt.URLPrefix
			if prefix == "" {
				prefix = s.srv.URL + "/generated-images/"
			}
			data[i].URL = prefix + name
		}
	}
	body := map[string]any{
		"id":      newID(""),
		"created": time.Now().Unix(),
		"data":    data,
		"usage": map[string]any{
			"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
			"input_tokens_details": map[string]int{"text_tokens": 0, "image_tokens": 0},
		},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// handleModels serves GET /v1/models.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if !s.checkAuth(w, r) {
		return
	}
	type model struct {
		ID     string `json:"id"`
		Object string `json:"object"`
	}
	list := make([]model, len(s.opt.Models))
	for i, m := range s.opt.Models {
		list[i] = model{ID: m, Object: "model"}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": list})
}

// handleFile serves GET /generated-images/{file}, LocalAI's static folder
// of outputs.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if s.opt.RedirectImages != "" {
		http.Redirect(w, r, s.opt.RedirectImages+name, http.StatusFound)
		return
	}
	s.mu.Lock()
	data, ok := s.files[name]
	if ok {
		s.downloads++
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}

// writeError writes LocalAI's error envelope: code is the HTTP status as a
// number, type often empty.
func writeError(w http.ResponseWriter, status int, msg, typ string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": status, "message": msg, "type": typ}})
	writeReply(w, Reply{Status: status, Body: string(b)})
}

func writeReply(w http.ResponseWriter, r Reply) {
	providertest.WriteRaw(w, r.Status, r.Header, r.Body, "application/json")
}

func newID(prefix string) string {
	return prefix + providertest.RandomHex(12)
}
