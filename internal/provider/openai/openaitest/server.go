// Package openaitest is a local contract server for the OpenAI Images API
// (providers.md section 1): POST /v1/images/generations with Bearer auth,
// the real request validation and error envelopes, x-request-id and
// x-ratelimit-* headers, a sliding-window requests-per-minute limit, and
// injectable faults for the conformance suite.
//
// Images are real PNG, JPEG or WebP files of the requested size, scaled
// down to Options.MaxEdge on the longer side (2048 by default) so that tests
// stay fast; the answer's "size" field still names the requested size.
package openaitest

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
const DefaultKey = "sk-test-openaitest-0123456789abcdef"

// DefaultModel is a model the server accepts and tests can use.
const DefaultModel = "gpt-image-2"

// Options configures a Server. Zero values mean defaults.
type Options struct {
	// Key is the accepted API key; DefaultKey if empty.
	Key string
	// Latency is how long a successful generation takes.
	Latency time.Duration
	// RPM is the server-side requests-per-minute limit over a sliding
	// window; requests over it get the real 429 rate_limit_exceeded answer
	// with retry-after. Zero means unlimited.
	RPM int
	// Window is the length of the RPM window; one minute if zero. Tests
	// shorten it to see the budget refill.
	Window time.Duration
	// MaxEdge caps the longer side of generated images; 2048 if zero.
	MaxEdge int
	// EchoKey makes authentication errors quote the presented key in full,
	// as some gateways do, instead of masking it as OpenAI does. Tests use
	// it to check that adapters scrub keys from messages.
	EchoKey bool
}

// Reply is a canned answer that replaces the next generation calls.
type Reply struct {
	Status int
	Header http.Header
	Body   string
}

// Request is what the server decoded from the last generation call.
type Request struct {
	// Header holds the request headers (Authorization included).
	Header http.Header
	// Fields is every top-level JSON field as sent, for presence checks
	// ("was response_format sent?").
	Fields map[string]json.RawMessage
	// The decoded CreateImageRequest fields; pointers are nil when absent.
	Model             string
	Prompt            string
	N                 *int
	Size              string
	Quality           string
	OutputFormat      string
	OutputCompression *int
	Background        string
	Moderation        string
}

// Server is a running contract server. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the API root including /v1, for Config.BaseURL.
	URL string
	// Key is the accepted API key.
	Key string

	opt    Options
	srv    *httptest.Server
	images providertest.ImageCache
	done   chan struct{}

	queue providertest.Queue[answer]
	calls atomic.Int64
	rpm   *providertest.Window

	mu   sync.Mutex
	last *Request
}

// answer is one injected outcome: a conformance fault or a canned reply.
type answer struct {
	fault providertest.Fault
	reply *Reply
}

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" {
		opt.Key = DefaultKey
	}
	if opt.Window <= 0 {
		opt.Window = time.Minute
	}
	if opt.MaxEdge <= 0 {
		opt.MaxEdge = 2048
	}
	s := &Server{Key: opt.Key, opt: opt, done: make(chan struct{}), rpm: providertest.NewWindow(opt.RPM, opt.Window)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/images/generations", s.handleGenerate)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, nil, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path), "invalid_request_error", "", "")
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v1"
	tb.Cleanup(func() {
		close(s.done) // release held (Slow) handlers before Close waits for them
		s.srv.Close()
	})
	return s
}

// Inject makes the next n generation calls answer with fault f the way the
// real API does: RateLimit is 429 rate_limit_exceeded with retry-after 1,
// ServerError 500 server_error, ContentPolicy 400 moderation_blocked,
// BadAuth 401 invalid_api_key, InvalidRequest 400 invalid_value on size,
// Slow holds the answer until the client goes away (or 60 s).
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

// Throttled reports how many calls the RPM limit answered with 429.
func (s *Server) Throttled() int {
	return s.rpm.Refused()
}

// LastRequest returns the last generation call's decoded request, or nil.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// QuotaReply is the 429 an account out of credit gets: insufficient_quota,
// which clients must not retry.
func QuotaReply() Reply {
	return Reply{Status: 429, Body: errorBody("You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.", "insufficient_quota", "", "insufficient_quota")}
}

// ModelNotFoundReply is the 404 for an unknown or shut-down model.
func ModelNotFoundReply(model string) Reply {
	return Reply{Status: 404, Body: errorBody(fmt.Sprintf("The model '%s' does not exist or you do not have access to it.", model), "invalid_request_error", "", "model_not_found")}
}

// RateLimitReply is a 429 rate_limit_exceeded with the given headers (for
// example only x-ratelimit-reset-requests, or retry-after-ms).
func RateLimitReply(h http.Header) Reply {
	return Reply{Status: 429, Header: h, Body: errorBody("Rate limit reached for images per minute (IPM): Limit 5, Used 5, Requested 1. Please try again later.", "requests", "", "rate_limit_exceeded")}
}

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	w.Header().Set("X-Request-Id", newID("req_"))

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
	if !s.validate(w, req) {
		return
	}
	if !s.wait(r, s.opt.Latency) {
		return
	}
	s.success(w, req)
}

// checkAuth answers 401 unless the Bearer key matches, as the API does.
func (s *Server) checkAuth(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || key == "" {
		writeError(w, 401, nil, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", "invalid_request_error", "", "")
		return false
	}
	if key != s.Key {
		s.badKey(w, key)
		return false
	}
	return true
}

func (s *Server) badKey(w http.ResponseWriter, key string) {
	shown := key
	if !s.opt.EchoKey {
		shown = maskKey(key)
	}
	writeError(w, 401, nil, fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", shown), "invalid_request_error", "", "invalid_api_key")
}

// fault answers with f; it returns true when the call should then be
// answered normally (Slow, once released).
func (s *Server) fault(w http.ResponseWriter, r *http.Request, f providertest.Fault) bool {
	switch f {
	case providertest.RateLimit:
		h := http.Header{}
		h.Set("Retry-After", "1")
		h.Set("X-Ratelimit-Reset-Requests", "1s")
		h.Set("X-Ratelimit-Remaining-Requests", "0")
		writeReply(w, Reply{Status: 429, Header: h, Body: errorBody("Rate limit reached for images per minute (IPM): Limit 5, Used 5, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.", "requests", "", "rate_limit_exceeded")})
	case providertest.ServerError:
		writeError(w, 500, nil, "The server had an error while processing your request. Sorry about that!", "server_error", "", "")
	case providertest.ContentPolicy:
		writeError(w, 400, nil, "Your request was rejected by the safety system. If you believe this is an error, contact us at help.openai.com and include the request ID "+w.Header().Get("X-Request-Id")+". safety_violations=[violence].", "image_generation_user_error", "", "moderation_blocked")
	case providertest.BadAuth:
		s.badKey(w, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	case providertest.InvalidRequest:
		writeError(w, 400, nil, "Invalid value: '1000x1000'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.", "invalid_request_error", "size", "invalid_value")
	case providertest.Slow:
		return s.wait(r, 60*time.Second)
	default:
		return true
	}
	return false
}

// wait sleeps d unless the client goes away or the server closes; it
// reports whether the call should still be answered.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	return providertest.Sleep(r, s.done, d)
}

// admit applies the RPM limit over a sliding window. Admitted calls are
// recorded; refused ones are not (they do not use up the budget).
func (s *Server) admit(w http.ResponseWriter) bool {
	allowed, used, reset := s.rpm.Admit(time.Now())
	limit := s.opt.RPM
	if limit <= 0 {
		limit = 10000
	}
	h := w.Header()
	h.Set("X-Ratelimit-Limit-Requests", strconv.Itoa(limit))
	h.Set("X-Ratelimit-Remaining-Requests", strconv.Itoa(max(limit-used, 0)))
	h.Set("X-Ratelimit-Reset-Requests", reset.Round(time.Millisecond).String())
	h.Set("X-Ratelimit-Limit-Tokens", "1000000")
	h.Set("X-Ratelimit-Remaining-Tokens", "999000")
	h.Set("X-Ratelimit-Reset-Tokens", "60ms")
	if allowed {
		return true
	}
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(reset.Seconds()))))
	h.Set("Retry-After-Ms", strconv.FormatInt(reset.Milliseconds(), 10))
	writeError(w, 429, nil, fmt.Sprintf("Rate limit reached for images per minute (IPM): Limit %d, Used %d, Requested 1. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.", limit, used, reset.Round(time.Millisecond)), "requests", "", "rate_limit_exceeded")
	return false
}

// decode reads the JSON body; type errors get the API's wording.
func (s *Server) decode(w http.ResponseWriter, r *http.Request) (*Request, bool) {
	req := &Request{Header: r.Header.Clone()}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req.Fields); err != nil {
		writeError(w, 400, nil, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", "invalid_request_error", "", "")
		return nil, false
	}
	s.mu.Lock()
	s.last = req
	s.mu.Unlock()
	for name, dst := range map[string]any{
		"model": &req.Model, "prompt": &req.Prompt, "n": &req.N, "size": &req.Size,
		"quality": &req.Quality, "output_format": &req.OutputFormat,
		"output_compression": &req.OutputCompression, "background": &req.Background,
		"moderation": &req.Moderation,
	} {
		raw, ok := req.Fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			want := "a string"
			if name == "n" || name == "output_compression" {
				want = "an integer"
			}
			writeError(w, 400, nil, fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", name, want, jsonKind(raw)), "invalid_request_error", name, "invalid_type")
			return nil, false
		}
	}
	return req, true
}

func jsonKind(raw json.RawMessage) string {
	switch {
	case len(raw) == 0:
		return "nothing"
	case raw[0] == '"':
		return "a string"
	case raw[0] == '{':
		return "an object"
	case raw[0] == '[':
		return "an array"
	case raw[0] == 't' || raw[0] == 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

var (
	retiredModels = []string{"dall-e-2", "dall-e-3"}
	gptImage2     = []string{
		"gpt-image-2", "gpt-image-2-2026-04-21",
		"gpt-image-2.5-flare", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-sunburst-2026-09-08",
		"gpt-image-2.6-flare", "gpt-image-2.6-sunburst",
	}
	gptImage1 = []string{"gpt-image-1", "gpt-image-1.5", "gpt-image-1.5-2025-12-16", "gpt-image-1-mini", "chatgpt-image-latest"}
	// knownParams are CreateImageRequest's fields; anything else is an
	// unknown parameter.
	knownParams = []string{"model", "prompt", "n", "size", "quality", "output_format", "output_compression",
		"background", "moderation", "stream", "partial_images", "style", "response_format", "user", "complexity"}
)

// validate applies the API's request checks in the order it reports them.
func (s *Server) validate(w http.ResponseWriter, req *Request) bool {
	bad := func(status int, msg, param, code string) bool {
		writeError(w, status, nil, msg, "invalid_request_error", param, code)
		return false
	}
	for name := range req.Fields {
		if !slices.Contains(knownParams, name) {
			return bad(400, fmt.Sprintf("Unknown parameter: '%s'.", name), name, "unknown_parameter")
		}
	}
	model := req.Model
	if model == "" {
		model = "dall-e-2" // the spec's historical default, now shut down
	}
	v2 := slices.Contains(gptImage2, model)
	if slices.Contains(retiredModels, model) || (!v2 && !slices.Contains(gptImage1, model)) {
		return bad(404, fmt.Sprintf("The model '%s' does not exist or you do not have access to it.", model), "", "model_not_found")
	}
	// GPT image models answer in base64 only; dall-e-only fields are not
	// theirs. (providers.md: behaviour when sent is unconfirmed; this
	// server refuses them so that adapters are held to omitting them.)
	for _, name := range []string{"response_format", "style"} {
		if _, ok := req.Fields[name]; ok {
			return bad(400, fmt.Sprintf("Unknown parameter: '%s'.", name), name, "unknown_parameter")
		}
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return bad(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
	}
	if n := len([]rune(req.Prompt)); n > 32000 {
		return bad(400, fmt.Sprintf("Invalid 'prompt': string too long. Expected a string with maximum length 32000, but got a string with length %d instead.", n), "prompt", "string_above_max_length")
	}
	if req.N != nil && *req.N > 10 {
		return bad(400, fmt.Sprintf("Invalid 'n': integer above maximum value. Expected a value <= 10, but got %d instead.", *req.N), "n", "integer_above_max_value")
	}
	if req.N != nil && *req.N < 1 {
		return bad(400, fmt.Sprintf("Invalid 'n': integer below minimum value. Expected a value >= 1, but got %d instead.", *req.N), "n", "integer_below_min_value")
	}
	if msg := checkSize(req.Size, v2); msg != "" {
		return bad(400, msg, "size", "invalid_value")
	}
	qualities := []string{"low", "medium", "high", "auto"}
	if strings.HasPrefix(model, "gpt-image-2.5") || strings.HasPrefix(model, "gpt-image-2.6") {
		qualities = append(qualities, "xhigh", "max")
	}
	if msg := checkEnum(req.Quality, qualities); msg != "" {
		return bad(400, msg, "quality", "invalid_value")
	}
	if msg := checkEnum(req.OutputFormat, []string{"png", "jpeg", "webp"}); msg != "" {
		return bad(400, msg, "output_format", "invalid_value")
	}
	if c := req.OutputCompression; c != nil {
		if *c < 0 || *c > 100 {
			return bad(400, fmt.Sprintf("Invalid 'output_compression': expected a value between 0 and 100, but got %d instead.", *c), "output_compression", "invalid_value")
		}
		if *c < 100 && (req.OutputFormat == "" || req.OutputFormat == "png") {
			return bad(400, "Compression less than 100 is not supported for PNG output format.", "output_compression", "invalid_value")
		}
	}
	if msg := checkEnum(req.Background, []string{"transparent", "opaque", "auto"}); msg != "" {
		return bad(400, msg, "background", "invalid_value")
	}
	if req.Background == "transparent" && req.OutputFormat == "jpeg" {
		return bad(400, "Transparent background is not supported for jpeg output format. Use png or webp.", "background", "invalid_value")
	}
	if msg := checkEnum(req.Moderation, []string{"auto", "low"}); msg != "" {
		return bad(400, msg, "moderation", "invalid_value")
	}
	return true
}

func checkEnum(v string, allowed []string) string {
	if v == "" || slices.Contains(allowed, v) {
		return ""
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = "'" + a + "'"
	}
	list := strings.Join(quoted[:len(quoted)-1], ", ") + ", and " + quoted[len(quoted)-1]
	return fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", v, list)
}

// checkSize applies the size rules: the fixed list for gpt-image-1 models;
// for the gpt-image-2 family any WIDTHxHEIGHT with both edges multiples of
// 16, a ratio between 1:3 and 3:1, an edge of at most 3840 and at most
// 3840x2160 pixels in all.
func checkSize(size string, v2 bool) string {
	if size == "" || size == "auto" {
		return ""
	}
	if !v2 {
		return checkEnum(size, []string{"1024x1024", "1024x1536", "1536x1024", "auto"})
	}
	w, h, ok := parseSize(size)
	switch {
	case !ok:
		return fmt.Sprintf("Invalid value: '%s'. Size must be 'auto' or WIDTHxHEIGHT in pixels, e.g. '1024x1024'.", size)
	case w%16 != 0 || h%16 != 0:
		return fmt.Sprintf("Invalid value: '%s'. Width and height must both be multiples of 16.", size)
	case w > 3*h || h > 3*w:
		return fmt.Sprintf("Invalid value: '%s'. The aspect ratio must be between 1:3 and 3:1.", size)
	case w > 3840 || h > 3840 || w*h > 3840*2160:
		return fmt.Sprintf("Invalid value: '%s'. The maximum size is 3840x2160 (longest edge 3840 pixels).", size)
	}
	return ""
}

func parseSize(size string) (int, int, bool) {
	ws, hs, ok := strings.Cut(size, "x")
	if !ok {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return 0, 0, false
	}
	return w, h, true
}

// success answers an ImagesResponse with n real images.
func (s *Server) success(w http.ResponseWriter, req *Request) {
	n := 1
	if req.N != nil {
		n = *req.N
	}
	size := req.Size
	if size == "" || size == "auto" {
		size = "1024x1024"
	}
	width, height, _ := parseSize(size)
	width, height = providertest.Fit(width, height, s.opt.MaxEdge)
	format := req.OutputFormat
	if format == "" {
		format = "png"
	}
	// output_compression changes only the file size on the real API; one
	// cached encoding per size and format is enough for the contract.
	img, err := s.images.Get(width, height, format, 0)
	if err != nil {
		writeError(w, 500, nil, "The server had an error while processing your request: "+err.Error(), "server_error", "", "")
		return
	}
	b64 := base64.StdEncoding.EncodeToString(img)
	type datum struct {
		B64JSON string `json:"b64_json"`
	}
	data := make([]datum, n)
	for i := range data {
		data[i].B64JSON = b64
	}
	background, q := req.Background, req.Quality
	if background == "" || background == "auto" {
		background = "opaque"
	}
	if q == "" || q == "auto" {
		q = "medium"
	}
	body := map[string]any{
		"created":       time.Now().Unix(),
		"data":          data,
		"background":    background,
		"output_format": format,
		"size":          size,
		"quality":       q,
		"usage": map[string]any{
			"total_tokens": 50 + 4160*n, "input_tokens": 50, "output_tokens": 4160 * n,
			"input_tokens_details": map[string]int{"text_tokens": 50, "image_tokens": 0},
		},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func errorBody(msg, typ, param, code string) string {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if param != "" {
		e["param"] = param
	}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

func writeError(w http.ResponseWriter, status int, h http.Header, msg, typ, param, code string) {
	writeReply(w, Reply{Status: status, Header: h, Body: errorBody(msg, typ, param, code)})
}

func writeReply(w http.ResponseWriter, r Reply) {
	providertest.WriteRaw(w, r.Status, r.Header, r.Body, "application/json")
}

// maskKey shows a refused key the way OpenAI does: the first three and last
// four characters.
func maskKey(key string) string {
	if len(key) <= 8 {
		return strings.Repeat("*", len(key))
	}
	return key[:3] + strings.Repeat("*", 8) + key[len(key)-4:]
}

func newID(prefix string) string {
	return prefix + providertest.RandomHex(16)
}
