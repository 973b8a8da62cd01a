// Package replicatetest is a local contract server for Replicate's
// predictions API (providers.md section 4): create by model or by version,
// "Prefer: wait", predictions that move starting → processing → succeeded
// (or failed, canceled) as time passes, cancel, output files served by the
// server itself under URLs that expire, input validation against the
// flux-schnell schema with 422 invalid_fields, problem-details errors and
// 429 throttling. Tests of the replicate adapter and end-to-end tests use
// it.
package replicatetest

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
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

// Options tunes a Server. Zero values give the real API's behaviour with
// test-friendly speed.
type Options struct {
	// Key is the accepted API token; empty means a generated "r8_…" token.
	Key string
	// Latency delays every API answer (not file downloads).
	Latency time.Duration
	// StartTime is how long a prediction stays "starting"; zero means 20ms.
	StartTime time.Duration
	// ProcessingTime is how long it then stays "processing"; zero means
	// 100ms.
	ProcessingTime time.Duration
	// MaxSide caps the longer side of generated images; zero means 1024.
	MaxSide int
	// OutputTTL is how long output URLs work after the prediction ends;
	// zero means an hour. Use a nanosecond to test expired URLs.
	OutputTTL time.Duration
	// OutputPadding adds that many bytes inside every output file, keeping
	// it valid, for oversized-download tests.
	OutputPadding int
	// RedirectOutputs, when set, makes the output URLs answer with a 302
	// redirect to RedirectOutputs + the same path: a server that must not
	// be reachable (a private address) for redirect-refusal tests.
	RedirectOutputs string
	// StringOutput makes output a single URL string instead of an array,
	// as most non-FLUX models do.
	StringOutput bool
	// Models lists the "owner/name" models served; nil means
	// black-forest-labs/flux-schnell and black-forest-labs/flux-dev.
	Models []string
	// RateLimit is the number of creates allowed per RateWindow before 429;
	// zero means 600 per minute.
	RateLimit  int
	RateWindow time.Duration
	// RetryAfterHeader adds Retry-After to 429 answers (whether Replicate
	// sends it is unconfirmed; the body always says "resets in ~Ns").
	RetryAfterHeader bool
	// EchoKey makes 401 answers quote the token they refused.
	EchoKey bool
}

// Response is a canned answer for InjectResponse.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Request is a create call as the server received it.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Body is the decoded JSON body; Input its "input" object and Version
	// its "version" field.
	Body    map[string]any
	Input   map[string]any
	Version string
}

// Server is a running contract server. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the base URL to configure the adapter with (paths start with
	// /v1).
	URL string
	// Key is the API token the server accepts.
	Key string

	opt  Options
	done chan struct{}

	queue   providertest.Queue[answer]
	calls   atomic.Int64
	polls   atomic.Int64
	cancels atomic.Int64
	creates *providertest.Window

	mu          sync.Mutex
	filter      int
	last        Request
	predictions map[string]*prediction
	files       map[string]file
}

type answer struct {
	fault   providertest.Fault
	resp    *Response
	failure string
}

type file struct {
	data    []byte
	ctype   string
	expires time.Time
}

type prediction struct {
	id, model, version string
	input              map[string]any
	created            time.Time
	slow               bool
	failure            string // the error the prediction ends with
	canceled           time.Time
	outputs            int
	filtered           int
	format             string
	width, height      int
	finished           bool // outputs materialised
	urls               []string
}

var _ providertest.Controller = (*Server)(nil)

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" {
		opt.Key = "r8_" + providertest.RandomHex(18)
	}
	if opt.StartTime == 0 {
		opt.StartTime = 20 * time.Millisecond
	}
	if opt.ProcessingTime == 0 {
		opt.ProcessingTime = 100 * time.Millisecond
	}
	if opt.MaxSide == 0 {
		opt.MaxSide = 1024
	}
	if opt.OutputTTL == 0 {
		opt.OutputTTL = time.Hour
	}
	if opt.Models == nil {
		opt.Models = []string{"black-forest-labs/flux-schnell", "black-forest-labs/flux-dev"}
	}
	if opt.RateLimit == 0 {
		opt.RateLimit = 600
	}
	if opt.RateWindow == 0 {
		opt.RateWindow = time.Minute
	}
	s := &Server{Key: opt.Key, opt: opt, done: make(chan struct{}),
		creates:     providertest.NewWindow(opt.RateLimit, opt.RateWindow),
		predictions: map[string]*prediction{}, files: map[string]file{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/models/{owner}/{name}/predictions", s.handleCreate)
	mux.HandleFunc("POST /v1/predictions", s.handleCreate)
	mux.HandleFunc("GET /v1/predictions/{id}", s.handleGet)
	mux.HandleFunc("POST /v1/predictions/{id}/cancel", s.handleCancel)
	mux.HandleFunc("GET /files/{id}/{file}", s.handleFile)
	hs := httptest.NewServer(mux)
	s.URL = hs.URL
	tb.Cleanup(func() {
		close(s.done)
		hs.Close()
	})
	return s
}

// Version returns the 64-hex version id the server gives model.
func (s *Server) Version(model string) string {
	sum := sha256.Sum256([]byte(model))
	return hex.EncodeToString(sum[:])
}

// Inject makes the next n creates answer with f: BadAuth, RateLimit and
// InvalidRequest refuse the create; ServerError and ContentPolicy make the
// prediction end failed (interrupted, NSFW); Slow keeps it processing.
func (s *Server) Inject(f providertest.Fault, n int) {
	s.push(answer{fault: f}, n)
}

// InjectResponse makes the next n creates answer with r verbatim.
func (s *Server) InjectResponse(r Response, n int) {
	s.push(answer{resp: &r}, n)
}

// InjectFailure makes the next n predictions end "failed" with errText.
func (s *Server) InjectFailure(errText string, n int) {
	s.push(answer{failure: errText}, n)
}

func (s *Server) push(a answer, n int) {
	s.queue.Push(a, n)
}

// Filter makes the safety checker flag the next n output images: they are
// left out of output, and a prediction whose every output is flagged fails
// with an NSFW error, as FLUX does.
func (s *Server) Filter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filter += n
}

// Calls reports how many create calls the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// Polls reports how many GET /v1/predictions/{id} calls it has received.
func (s *Server) Polls() int {
	return int(s.polls.Load())
}

// Cancels reports how many cancel calls it has received.
func (s *Server) Cancels() int {
	return int(s.cancels.Load())
}

// LastRequest returns the most recent create call (zero if none).
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// handleCreate handles POST /v1/models/{owner}/{name}/predictions and
// POST /v1/predictions.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if !s.sleep(r, s.opt.Latency) || !s.authorized(w, r) {
		return
	}
	var body map[string]any
	decodeErr := json.NewDecoder(http.MaxBytesReader(w, r.Body, 10<<20)).Decode(&body)
	input, _ := body["input"].(map[string]any)
	version, _ := body["version"].(string)
	s.mu.Lock()
	s.last = Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Input: input, Version: version}
	s.mu.Unlock()

	if !s.allow() {
		s.writeThrottled(w)
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
		writeProblem(w, http.StatusUnauthorized, "Unauthenticated", "You did not pass a valid authentication token", nil)
		return
	case next.fault == providertest.RateLimit:
		s.writeThrottled(w)
		return
	case next.fault == providertest.InvalidRequest:
		writeInvalidVersion(w)
		return
	}

	if decodeErr != nil {
		writeProblem(w, http.StatusBadRequest, "Bad request", "The request body is not valid JSON", nil)
		return
	}
	model := ""
	if owner := r.PathValue("owner"); owner != "" {
		model = owner + "/" + r.PathValue("name")
		if !slices.Contains(s.opt.Models, model) {
			writeProblem(w, http.StatusNotFound, "Not found", "The requested resource could not be found.", nil)
			return
		}
		version = "hidden" // official models hide their version
	} else {
		var ok bool
		if model, version, ok = s.resolveVersion(version); !ok {
			writeInvalidVersion(w)
			return
		}
	}
	if body["input"] == nil {
		writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", "- input: input is required\n",
			[]invalidField{{Type: "required", Field: "input", Description: "input is required"}})
		return
	}
	if input == nil {
		writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", "- input: Invalid type. Expected: object\n",
			[]invalidField{{Type: "invalid_type", Field: "input", Description: "Invalid type. Expected: object"}})
		return
	}
	if problems := validate(model, input); len(problems) > 0 {
		var detail strings.Builder
		for _, p := range problems {
			fmt.Fprintf(&detail, "- %s: %s\n", p.Field, p.Description)
		}
		writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", detail.String(), problems)
		return
	}

	p := &prediction{
		id: randomID(), model: model, version: version, input: input, created: time.Now(),
		outputs: int(number(input["num_outputs"], 1)),
		format:  cmp.Or(str(input["output_format"]), "webp"),
	}
	p.width, p.height = size(cmp.Or(str(input["aspect_ratio"]), "1:1"), cmp.Or(str(input["megapixels"]), "1"), s.opt.MaxSide)
	switch {
	case next.failure != "":
		p.failure = next.failure
	case next.fault == providertest.ServerError:
		p.failure = "Prediction interrupted; please retry (code: PA)"
	case next.fault == providertest.ContentPolicy:
		p.failure = nsfwError
	case next.fault == providertest.Slow:
		p.slow = true
	}
	s.mu.Lock()
	p.filtered = min(s.filter, p.outputs)
	s.filter -= p.filtered
	if p.filtered == p.outputs && p.failure == "" {
		p.failure = nsfwError
	}
	s.predictions[p.id] = p
	s.mu.Unlock()

	if wait, ok := preferWait(r.Header.Get("Prefer")); ok {
		s.waitFor(r, p, wait)
		if r.Context().Err() != nil {
			return
		}
	}
	s.writePrediction(w, r, http.StatusCreated, p)
}

const nsfwError = "All generated images contained NSFW content. Try running it again with a different prompt."

// handleGet handles GET /v1/predictions/{id}.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	s.polls.Add(1)
	s.mu.Lock()
	p := s.predictions[r.PathValue("id")]
	s.mu.Unlock()
	if !s.sleep(r, s.opt.Latency) || !s.authorized(w, r) {
		return
	}
	if p == nil {
		writeProblem(w, http.StatusNotFound, "Not found", "The requested resource could not be found.", nil)
		return
	}
	s.writePrediction(w, r, http.StatusOK, p)
}

// handleCancel handles POST /v1/predictions/{id}/cancel.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	s.cancels.Add(1)
	s.mu.Lock()
	p := s.predictions[r.PathValue("id")]
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	if p == nil {
		writeProblem(w, http.StatusNotFound, "Not found", "The requested resource could not be found.", nil)
		return
	}
	s.mu.Lock()
	if st := s.status(p, time.Now()); st == "starting" || st == "processing" {
		p.canceled = time.Now()
	}
	s.mu.Unlock()
	s.writePrediction(w, r, http.StatusOK, p)
}

// handleFile handles GET /files/{id}/{file}, the output URLs.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	if s.opt.RedirectOutputs != "" {
		http.Redirect(w, r, strings.TrimRight(s.opt.RedirectOutputs, "/")+r.URL.Path, http.StatusFound)
		return
	}
	s.mu.Lock()
	f, ok := s.files[r.URL.Path]
	s.mu.Unlock()
	if !ok || time.Now().After(f.expires) {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	_, _ = w.Write(f.data)
}

// status computes p's state at now, materialising its outputs the first
// time it is seen finished. The caller holds s.mu.
func (s *Server) status(p *prediction, now time.Time) string {
	if !p.canceled.IsZero() {
		return "canceled"
	}
	if now.Before(p.created.Add(s.opt.StartTime)) {
		return "starting"
	}
	if p.slow || now.Before(p.doneAt(s.opt)) {
		return "processing"
	}
	if p.failure != "" {
		return "failed"
	}
	if !p.finished {
		p.finished = true
		ext := map[string]string{"jpg": "jpg", "png": "png", "webp": "webp"}[p.format]
		encoding := map[string]string{"jpg": "jpeg", "png": "png", "webp": "webp"}[p.format]
		seed := int64(number(p.input["seed"], float64(now.UnixNano()&0xffffff)))
		for i := range p.outputs - p.filtered {
			path := fmt.Sprintf("/files/%s/out-%d.%s", p.id, i, ext)
			data, err := providertest.PaddedImage(p.width, p.height, encoding, seed+int64(i), s.opt.OutputPadding)
			if err != nil {
				p.failure = "encode output: " + err.Error()
				p.urls = nil
				return "failed"
			}
			s.files[path] = file{data: data, ctype: "image/" + encoding, expires: p.doneAt(s.opt).Add(s.opt.OutputTTL)}
			p.urls = append(p.urls, s.URL+path)
		}
	}
	return "succeeded"
}

func (p *prediction) doneAt(opt Options) time.Time {
	return p.created.Add(opt.StartTime + opt.ProcessingTime)
}

// waitFor implements "Prefer: wait": hold until p ends, wait passes or the
// client leaves.
func (s *Server) waitFor(r *http.Request, p *prediction, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		st := s.status(p, time.Now())
		s.mu.Unlock()
		if st != "starting" && st != "processing" {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		if !s.sleep(r, min(left, 10*time.Millisecond)) {
			return
		}
	}
}

// preferWait parses "Prefer: wait" or "wait=N" (N 1–60 seconds).
func preferWait(h string) (time.Duration, bool) {
	for part := range strings.SplitSeq(h, ",") {
		part = strings.TrimSpace(part)
		if part == "wait" {
			return 60 * time.Second, true
		}
		if v, ok := strings.CutPrefix(part, "wait="); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return 0, false
			}
			return time.Duration(min(n, 60)) * time.Second, true
		}
	}
	return 0, false
}

func (s *Server) writePrediction(w http.ResponseWriter, r *http.Request, code int, p *prediction) {
	s.mu.Lock()
	now := time.Now()
	st := s.status(p, now)
	obj := map[string]any{
		"id": p.id, "model": p.model, "version": p.version, "input": p.input,
		"status": st, "output": nil, "error": nil, "logs": "", "data_removed": false,
		"created_at": stamp(p.created),
		"urls": map[string]string{
			"get":    s.URL + "/v1/predictions/" + p.id,
			"cancel": s.URL + "/v1/predictions/" + p.id + "/cancel",
			"web":    "https://replicate.com/p/" + p.id,
		},
	}
	if st != "starting" {
		obj["started_at"] = stamp(p.created.Add(s.opt.StartTime))
		obj["logs"] = fmt.Sprintf("Using seed: %.0f\n", number(p.input["seed"], 0))
	}
	switch st {
	case "succeeded":
		obj["completed_at"] = stamp(p.doneAt(s.opt))
		obj["metrics"] = map[string]any{"predict_time": s.opt.ProcessingTime.Seconds(), "total_time": (s.opt.StartTime + s.opt.ProcessingTime).Seconds()}
		if s.opt.StringOutput {
			if len(p.urls) > 0 {
				obj["output"] = p.urls[0]
			}
		} else {
			obj["output"] = p.urls
		}
	case "failed":
		obj["completed_at"] = stamp(p.doneAt(s.opt))
		obj["error"] = p.failure
	case "canceled":
		obj["completed_at"] = stamp(p.canceled)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(obj)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// resolveVersion accepts a 64-hex id, "owner/name" or "owner/name:id".
func (s *Server) resolveVersion(v string) (model, version string, ok bool) {
	name, id, hasID := strings.Cut(v, ":")
	for _, m := range s.opt.Models {
		switch {
		case !strings.Contains(v, "/") && v == s.Version(m):
			return m, v, true
		case name == m && (!hasID || id == s.Version(m)):
			return m, s.Version(m), true
		}
	}
	return "", "", false
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && got == s.Key {
		return true
	}
	detail := "You did not pass a valid authentication token"
	if s.opt.EchoKey && got != "" {
		detail = fmt.Sprintf("Invalid token %q", got)
	}
	writeProblem(w, http.StatusUnauthorized, "Unauthenticated", detail, nil)
	return false
}

// allow applies the create rate limit.
func (s *Server) allow() bool {
	ok, _, _ := s.creates.Admit(time.Now())
	return ok
}

func (s *Server) writeThrottled(w http.ResponseWriter) {
	if s.opt.RetryAfterHeader {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"detail":"Request was throttled. Your rate limit resets in ~1s."}`))
}

func (s *Server) next() answer {
	a, _ := s.queue.Next()
	return a
}

func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	return providertest.Sleep(r, s.done, d)
}

type invalidField struct {
	Type        string `json:"type"`
	Field       string `json:"field"`
	Description string `json:"description"`
}

func writeProblem(w http.ResponseWriter, status int, title, detail string, fields []invalidField) {
	body := map[string]any{"title": title, "status": status, "detail": detail}
	if fields != nil {
		body["invalid_fields"] = fields
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeInvalidVersion(w http.ResponseWriter) {
	writeProblem(w, http.StatusUnprocessableEntity, "Invalid version or not permitted",
		"The specified version does not exist (or perhaps you don't have permission to use it?)", nil)
}

var aspectRatios = []string{"1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"}

// validate checks input against the FLUX schema (schnell; dev allows up
// to 50 steps), the way Replicate's model server does.
func validate(model string, in map[string]any) []invalidField {
	var p []invalidField
	add := func(typ, field, desc string) {
		p = append(p, invalidField{Type: typ, Field: "input." + field, Description: desc})
	}
	checkType := func(field, want string) bool {
		v, ok := in[field]
		if !ok {
			return false
		}
		got := jsonType(v)
		if got == want || (want == "number" && got == "integer") {
			return true
		}
		add("invalid_type", field, fmt.Sprintf("Invalid type. Expected: %s, given: %s", want, got))
		return false
	}
	if _, ok := in["prompt"]; !ok {
		add("required", "prompt", "prompt is required")
	} else {
		checkType("prompt", "string")
	}
	intRange := func(field string, lo, hi float64) {
		if checkType(field, "integer") {
			v := in[field].(float64)
			if v < lo {
				add("number_gte", field, fmt.Sprintf("Must be greater than or equal to %g", lo))
			} else if v > hi {
				add("number_lte", field, fmt.Sprintf("Must be less than or equal to %g", hi))
			}
		}
	}
	enum := func(field string, allowed []string) {
		if checkType(field, "string") && !slices.Contains(allowed, in[field].(string)) {
			quoted := make([]string, len(allowed))
			for i, a := range allowed {
				quoted[i] = strconv.Quote(a)
			}
			add("enum", field, field+" must be one of the following: "+strings.Join(quoted, ", "))
		}
	}
	maxSteps := 4.0
	if strings.HasSuffix(model, "flux-dev") {
		maxSteps = 50
	}
	enum("aspect_ratio", aspectRatios)
	intRange("num_outputs", 1, 4)
	intRange("num_inference_steps", 1, maxSteps)
	intRange("output_quality", 0, 100)
	checkType("seed", "integer")
	enum("output_format", []string{"webp", "jpg", "png"})
	enum("megapixels", []string{"1", "0.25"})
	checkType("go_fast", "boolean")
	checkType("disable_safety_checker", "boolean")
	return p
}

func jsonType(v any) string {
	switch v := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return "null"
	}
}

func number(v any, def float64) float64 {
	if f, ok := v.(float64); ok {
		return f
	}
	return def
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// size is the pixel size FLUX makes for a ratio at "1" or "0.25"
// megapixels (sides multiples of 16), capped at maxSide.
func size(ratio, megapixels string, maxSide int) (int, int) {
	mp, _ := strconv.ParseFloat(megapixels, 64)
	rw, rh := 1.0, 1.0
	if a, b, ok := strings.Cut(ratio, ":"); ok {
		rw, _ = strconv.ParseFloat(a, 64)
		rh, _ = strconv.ParseFloat(b, 64)
	}
	w := math.Sqrt(mp * 1024 * 1024 * rw / rh)
	h := w * rh / rw
	w, h = math.Round(w/16)*16, math.Round(h/16)*16
	if long := math.Max(w, h); long > float64(maxSide) {
		w, h = w*float64(maxSide)/long, h*float64(maxSide)/long
	}
	return max(int(w), 1), max(int(h), 1)
}

var idAlphabet = regexp.MustCompile(`[^a-z0-9]`)

// randomID makes a Replicate-looking prediction id (26 lowercase chars).
func randomID() string {
	id := strings.ToLower(idAlphabet.ReplaceAllString(rand.Text(), ""))
	return (id + providertest.RandomHex(13))[:26]
}
