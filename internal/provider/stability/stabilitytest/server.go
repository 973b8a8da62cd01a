// Package stabilitytest is a local contract server for the Stability AI
// REST v2beta "Stable Image generate" endpoints (providers.md section 3):
// multipart requests validated per endpoint, JSON or raw-byte answers with
// real images, the {id,name,errors} error shape, CONTENT_FILTERED answers,
// 403 content moderation and the 150-requests-per-10-seconds limit with its
// 60-second lockout. Tests of the stability adapter and end-to-end tests
// that need a Stability-speaking server use it.
package stabilitytest

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"mime"
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

// Options tunes a Server. Zero values give the real API's behaviour with
// test-friendly speed.
type Options struct {
	// Key is the accepted API key; empty means a generated "sk-…" key.
	Key string
	// Latency delays every generation answer (network and queueing time).
	Latency time.Duration
	// ProcessingTime is how long a generation takes before it answers.
	ProcessingTime time.Duration
	// MaxSide caps the longer side of generated images (the real API makes
	// about one megapixel); zero means 1024. Smaller values speed tests up.
	MaxSide int
	// RateLimit is the number of generation calls allowed per RateWindow
	// before the lockout starts; zero means the real 150.
	RateLimit int
	// RateWindow is the sliding window RateLimit counts in; zero means the
	// real 10 seconds.
	RateWindow time.Duration
	// Lockout is how long every call is refused after the rate limit was
	// exceeded (or a RateLimit fault was injected); zero means the real 60
	// seconds.
	Lockout time.Duration
	// RetryAfterHeader makes 429 answers carry Retry-After with the seconds
	// left in the lockout. Whether the real API sends it is unconfirmed, so
	// it is off by default.
	RetryAfterHeader bool
	// OutputPadding adds that many bytes inside every image file, keeping
	// it valid, for oversized-output tests.
	OutputPadding int
	// EchoKey makes 401 answers quote the key they refused, as some APIs
	// do, to test that adapters scrub it from their errors.
	EchoKey bool
	// SlowHold is how long a Slow fault holds the answer when the client
	// does not leave first; zero means ten minutes.
	SlowHold time.Duration
}

// Response is a canned answer for InjectResponse.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Request is a generation call as the server received it.
type Request struct {
	Method string
	// Path is the URL path, e.g. "/v2beta/stable-image/generate/sd3".
	Path   string
	Header http.Header
	// ContentType is the media type of the body ("multipart/form-data").
	ContentType string
	// Fields holds the form fields (first value of each).
	Fields map[string]string
}

// Server is a running contract server. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the base URL to configure the adapter with.
	URL string
	// Key is the API key the server accepts.
	Key string

	opt  Options
	done chan struct{}

	queue providertest.Queue[answer]
	calls atomic.Int64

	mu          sync.Mutex
	filter      int
	last        Request
	recent      []time.Time
	lockedUntil time.Time
}

// answer is one injected situation: a fault or a canned response.
type answer struct {
	fault providertest.Fault
	resp  *Response
}

var _ providertest.Controller = (*Server)(nil)

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" {
		opt.Key = "sk-" + providertest.RandomHex(24)
	}
	if opt.MaxSide == 0 {
		opt.MaxSide = 1024
	}
	if opt.RateLimit == 0 {
		opt.RateLimit = 150
	}
	if opt.RateWindow == 0 {
		opt.RateWindow = 10 * time.Second
	}
	if opt.Lockout == 0 {
		opt.Lockout = time.Minute
	}
	if opt.SlowHold == 0 {
		opt.SlowHold = 10 * time.Minute
	}
	s := &Server{Key: opt.Key, opt: opt, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2beta/stable-image/generate/{endpoint}", s.handleGenerate)
	hs := httptest.NewServer(mux)
	s.URL = hs.URL
	tb.Cleanup(func() {
		close(s.done) // release held answers so Close does not wait on them
		hs.Close()
	})
	return s
}

// Inject makes the next n generation calls answer with f.
func (s *Server) Inject(f providertest.Fault, n int) {
	s.queue.Push(answer{fault: f}, n)
}

// InjectResponse makes the next n generation calls (after the key check)
// answer with r verbatim, for error shapes the faults do not cover.
func (s *Server) InjectResponse(r Response, n int) {
	s.queue.Push(answer{resp: &r}, n)
}

// Filter makes the next n generated images come back blurred with
// finish_reason CONTENT_FILTERED, as the real moderation does.
func (s *Server) Filter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filter += n
}

// Calls reports how many generation calls the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// LastRequest returns the most recent generation call (zero if none).
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// endpoint is what one generate endpoint accepts.
type endpoint struct {
	megapixels float64
	models     []string // sd3 only; the first is the default
}

var endpoints = map[string]endpoint{
	"ultra": {megapixels: 1},
	"core":  {megapixels: 1.5},
	"sd3": {megapixels: 1, models: []string{
		"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash",
		// Legacy names, re-routed to 3.5 since 2025-04-17.
		"sd3-large", "sd3-large-turbo", "sd3-medium",
	}},
}

var (
	aspectRatios = []string{"16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"}
	formats      = []string{"png", "jpeg", "webp"}
	stylePresets = []string{
		"3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
		"fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk",
		"origami", "photographic", "pixel-art", "tile-texture",
	}
)

// maxBody is the request size limit (about 10 MiB, unconfirmed).
const maxBody = 10 << 20

// handleGenerate handles POST /v2beta/stable-image/generate/{endpoint}.
func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	reqID := providertest.RandomHex(16)
	w.Header().Set("X-Request-Id", reqID)
	s.calls.Add(1)
	if !s.sleep(r, s.opt.Latency) {
		return
	}

	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || got != s.Key {
		msg := "authentication failed: missing or invalid API key"
		if s.opt.EchoKey && got != "" {
			msg = fmt.Sprintf("authentication failed: API key %s is invalid", got)
		}
		writeError(w, reqID, http.StatusUnauthorized, "unauthorized", msg)
		return
	}

	ep, ok := endpoints[r.PathValue("endpoint")]
	if !ok {
		writeError(w, reqID, http.StatusNotFound, "not_found", "the requested endpoint does not exist")
		return
	}

	req := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Fields: map[string]string{}}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req.ContentType = mt
	var parseErr error
	if mt == "multipart/form-data" {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		parseErr = r.ParseMultipartForm(maxBody)
		if r.MultipartForm != nil {
			for k, v := range r.MultipartForm.Value {
				if len(v) > 0 {
					req.Fields[k] = v[0]
				}
			}
		}
	}
	s.mu.Lock()
	s.last = req
	s.mu.Unlock()

	if a, ok := s.throttle(); !ok {
		s.writeRateLimited(w, reqID, a)
		return
	}
	next := s.next()
	switch {
	case next.resp != nil:
		for k, v := range next.resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(next.resp.Status)
		_, _ = w.Write([]byte(next.resp.Body))
		return
	case next.fault == providertest.BadAuth:
		writeError(w, reqID, http.StatusUnauthorized, "unauthorized", "authentication failed: the API key was revoked")
		return
	case next.fault == providertest.RateLimit:
		s.mu.Lock()
		s.lockedUntil = time.Now().Add(s.opt.Lockout)
		s.mu.Unlock()
		s.writeRateLimited(w, reqID, s.opt.Lockout)
		return
	}

	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(parseErr, &tooLarge):
		writeError(w, reqID, http.StatusRequestEntityTooLarge, "payload_too_large", "request body exceeds 10 MiB")
		return
	case mt != "multipart/form-data":
		writeError(w, reqID, http.StatusBadRequest, "bad_request", "content-type: must be multipart/form-data")
		return
	case parseErr != nil:
		writeError(w, reqID, http.StatusBadRequest, "bad_request", "malformed multipart body")
		return
	}
	if problems := validate(r.PathValue("endpoint"), ep, req.Fields); len(problems) > 0 {
		writeError(w, reqID, http.StatusBadRequest, "bad_request", problems...)
		return
	}
	accept := r.Header.Get("Accept")
	wantJSON := accept == "application/json"
	if !wantJSON && accept != "" && !strings.HasPrefix(accept, "image/") && accept != "*/*" {
		writeError(w, reqID, http.StatusBadRequest, "bad_request", "accept: must be image/* or application/json")
		return
	}

	switch next.fault {
	case providertest.ServerError:
		writeError(w, reqID, http.StatusInternalServerError, "internal_error", "An unexpected server error occurred, please try again.")
		return
	case providertest.ContentPolicy:
		writeError(w, reqID, http.StatusForbidden, "content_moderation",
			"Your request was flagged by our content moderation system, as a result your request was denied and you were not charged.")
		return
	case providertest.InvalidRequest:
		writeError(w, reqID, http.StatusBadRequest, "bad_request", "prompt: the prompt could not be processed")
		return
	case providertest.Slow:
		if !s.sleep(r, s.opt.SlowHold) {
			return
		}
	}
	if !s.sleep(r, s.opt.ProcessingTime) {
		return
	}

	format := cmp.Or(req.Fields["output_format"], "png")
	width, height := size(cmp.Or(req.Fields["aspect_ratio"], "1:1"), ep.megapixels, s.opt.MaxSide)
	seed, _ := strconv.ParseUint(req.Fields["seed"], 10, 64)
	if seed == 0 {
		seed = mathrand.Uint64N(4294967295)
	}
	finish := "SUCCESS"
	var data []byte
	s.mu.Lock()
	filtered := s.filter > 0
	if filtered {
		s.filter--
	}
	s.mu.Unlock()
	var err error
	if filtered {
		finish = "CONTENT_FILTERED"
		data, err = providertest.BlankImage(width, height, format)
	} else {
		data, err = providertest.PaddedImage(width, height, format, int64(seed), s.opt.OutputPadding)
	}
	if err != nil {
		writeError(w, reqID, http.StatusInternalServerError, "internal_error", "encode image: "+err.Error())
		return
	}
	mimeType := "image/" + format
	if wantJSON {
		w.Header().Set("Content-Type", "application/json; type="+mimeType)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"image":         base64.StdEncoding.EncodeToString(data),
			"finish_reason": finish,
			"seed":          seed,
		})
		return
	}
	w.Header().Set("Content-Type", mimeType)
	w.Header().Set("Finish-Reason", finish)
	w.Header().Set("Seed", strconv.FormatUint(seed, 10))
	_, _ = w.Write(data)
}

// throttle applies the sliding window and the lockout; it returns the
// time left in the lockout when the call is refused.
func (s *Server) throttle() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Before(s.lockedUntil) {
		return s.lockedUntil.Sub(now), false
	}
	s.recent = slices.DeleteFunc(s.recent, func(t time.Time) bool { return now.Sub(t) > s.opt.RateWindow })
	s.recent = append(s.recent, now)
	if len(s.recent) > s.opt.RateLimit {
		s.lockedUntil = now.Add(s.opt.Lockout)
		return s.opt.Lockout, false
	}
	return 0, true
}

func (s *Server) writeRateLimited(w http.ResponseWriter, reqID string, left time.Duration) {
	if s.opt.RetryAfterHeader {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(left.Seconds()))))
	}
	writeError(w, reqID, http.StatusTooManyRequests, "rate_limit_exceeded",
		"You have exceeded the rate limit of 150 requests within a 10 second period, and have been timed out for 60 seconds.")
}

// next pops the next injected answer (the zero answer means normal).
func (s *Server) next() answer {
	a, _ := s.queue.Next()
	return a
}

// sleep waits d, returning false when the client left or the server is
// closing (the handler should then just return).
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	return providertest.Sleep(r, s.done, d)
}

// validate checks the form fields the way the real endpoint does and
// returns one message per problem.
func validate(name string, ep endpoint, f map[string]string) []string {
	var p []string
	switch prompt := f["prompt"]; {
	case prompt == "":
		p = append(p, "prompt: cannot be empty")
	case len([]rune(prompt)) > 10000:
		p = append(p, "prompt: must be at most 10000 characters")
	}
	if len([]rune(f["negative_prompt"])) > 10000 {
		p = append(p, "negative_prompt: must be at most 10000 characters")
	}
	p = enum(p, f, "aspect_ratio", aspectRatios)
	p = enum(p, f, "output_format", formats)
	p = enum(p, f, "style_preset", stylePresets)
	if v, ok := f["seed"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 || n > 4294967294 {
			p = append(p, "seed: must be an integer between 0 and 4294967294")
		}
	}
	if name == "sd3" {
		p = enum(p, f, "model", ep.models)
		p = enum(p, f, "mode", []string{"text-to-image", "image-to-image"})
		if f["mode"] == "image-to-image" {
			p = append(p, "image: required when mode is image-to-image")
		}
		if v, ok := f["cfg_scale"]; ok {
			if n, err := strconv.ParseFloat(v, 64); err != nil || n < 1 || n > 10 {
				p = append(p, "cfg_scale: must be a number between 1 and 10")
			}
		}
	}
	return p
}

func enum(p []string, f map[string]string, field string, allowed []string) []string {
	if v, ok := f[field]; ok && !slices.Contains(allowed, v) {
		p = append(p, fmt.Sprintf("%s: must be one of %s", field, strings.Join(allowed, ", ")))
	}
	return p
}

// size turns a ratio into the pixel size the endpoint makes (about mp
// megapixels, sides multiples of 64), capped at maxSide.
func size(ratio string, mp float64, maxSide int) (int, int) {
	rw, rh := 1.0, 1.0
	if a, b, ok := strings.Cut(ratio, ":"); ok {
		rw, _ = strconv.ParseFloat(a, 64)
		rh, _ = strconv.ParseFloat(b, 64)
	}
	w := math.Sqrt(mp * 1024 * 1024 * rw / rh)
	h := w * rh / rw
	w, h = math.Round(w/64)*64, math.Round(h/64)*64
	if long := math.Max(w, h); long > float64(maxSide) {
		w, h = w*float64(maxSide)/long, h*float64(maxSide)/long
	}
	return max(int(w), 1), max(int(h), 1)
}

func writeError(w http.ResponseWriter, id string, status int, name string, msgs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "name": name, "errors": msgs})
}
