// Package faltest is a local contract server for fal.ai's queue API
// (providers.md section 5): submit on the full model path, status, result
// and cancel under owner/app, requests that wait IN_QUEUE (with a falling
// queue_position and a concurrency cap) then run IN_PROGRESS and end
// COMPLETED as time passes, FLUX input validation answered at the result
// call with 422 detail[] items, content-policy and infrastructure errors,
// has_nsfw_concepts, and output files served by the server itself under
// URLs that expire (or as data URIs with sync_mode). Tests of the fal
// adapter and end-to-end tests use it.
package faltest

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	mathrand "math/rand/v2"
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
	// Key is the accepted key ("Authorization: Key <key>"); empty means a
	// generated "<id>:<secret>" key.
	Key string
	// Latency delays every API answer (not file downloads).
	Latency time.Duration
	// QueueTime is how long a request waits IN_QUEUE before it may start;
	// zero means 30ms. QueuePosition is the queue_position it starts with
	// (falling to 0 over QueueTime); zero means 2.
	QueueTime     time.Duration
	QueuePosition int
	// ProcessingTime is how long a request stays IN_PROGRESS; zero means
	// 80ms.
	ProcessingTime time.Duration
	// Concurrency caps simultaneous IN_PROGRESS requests (the account's
	// runner limit); others wait IN_QUEUE. Zero means 10.
	Concurrency int
	// MaxSide caps the longer side of generated images; zero means 1024.
	MaxSide int
	// OutputTTL is how long output URLs work after the request completes;
	// zero means an hour.
	OutputTTL time.Duration
	// OutputPadding adds that many bytes inside every output file, keeping
	// it valid, for oversized-download tests.
	OutputPadding int
	// RedirectOutputs, when set, makes output URLs answer with a 302
	// redirect to RedirectOutputs + the same path (a server that must not
	// be reachable, for redirect-refusal tests).
	RedirectOutputs string
	// Models lists the model ids served; nil means fal-ai/flux/schnell and
	// fal-ai/flux/dev.
	Models []string
	// EchoKey makes 401 answers quote the key they refused.
	EchoKey bool
}

// Response is a canned answer for InjectSubmitResponse and
// InjectResultResponse.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Request is a submit call as the server received it.
type Request struct {
	Method string
	// Path is the submit path, "/" + the model id.
	Path   string
	Header http.Header
	// Input is the decoded JSON body.
	Input map[string]any
}

// Server is a running contract server. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the base URL to configure the adapter with.
	URL string
	// Key is the key the server accepts.
	Key string

	opt  Options
	done chan struct{}

	submits providertest.Queue[answer]
	results providertest.Queue[answer]
	calls   atomic.Int64
	polls   atomic.Int64
	cancels atomic.Int64

	mu       sync.Mutex
	filter   int
	last     Request
	requests []*request // in submission order
	byID     map[string]*request
	files    map[string]file
}

type answer struct {
	fault providertest.Fault
	resp  *Response
}

type file struct {
	data    []byte
	ctype   string
	expires time.Time
}

type request struct {
	id, app   string
	input     map[string]any
	problems  []detail
	submitted time.Time
	started   time.Time // zero while queued
	canceled  bool
	result    answer
	flagged   int
	output    []byte // the result body, made once
}

var _ providertest.Controller = (*Server)(nil)

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" {
		opt.Key = providertest.RandomHex(16) + ":" + providertest.RandomHex(16)
	}
	if opt.QueueTime == 0 {
		opt.QueueTime = 30 * time.Millisecond
	}
	if opt.QueuePosition == 0 {
		opt.QueuePosition = 2
	}
	if opt.ProcessingTime == 0 {
		opt.ProcessingTime = 80 * time.Millisecond
	}
	if opt.Concurrency == 0 {
		opt.Concurrency = 10
	}
	if opt.MaxSide == 0 {
		opt.MaxSide = 1024
	}
	if opt.OutputTTL == 0 {
		opt.OutputTTL = time.Hour
	}
	if opt.Models == nil {
		opt.Models = []string{"fal-ai/flux/schnell", "fal-ai/flux/dev"}
	}
	s := &Server{Key: opt.Key, opt: opt, done: make(chan struct{}), byID: map[string]*request{}, files: map[string]file{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{model...}", s.handleSubmit)
	mux.HandleFunc("GET /{owner}/{app}/requests/{id}/status", s.handleStatus)
	mux.HandleFunc("GET /{owner}/{app}/requests/{id}", s.handleResult)
	mux.HandleFunc("PUT /{owner}/{app}/requests/{id}/cancel", s.handleCancel)
	mux.HandleFunc("GET /files/{name}", s.handleFile)
	hs := httptest.NewServer(mux)
	s.URL = hs.URL
	tb.Cleanup(func() {
		close(s.done)
		hs.Close()
	})
	return s
}

// Inject makes the next n submits go the way f does on fal: BadAuth and
// RateLimit refuse the submit; ServerError (503 startup_timeout),
// ContentPolicy (422 content_policy_violation) and InvalidRequest (422
// validation detail) come from the result call after the request ran; a
// Slow request stays IN_QUEUE until cancelled.
func (s *Server) Inject(f providertest.Fault, n int) {
	s.submits.Push(answer{fault: f}, n)
}

// InjectSubmitResponse makes the next n submits answer with r verbatim.
func (s *Server) InjectSubmitResponse(r Response, n int) {
	s.submits.Push(answer{resp: &r}, n)
}

// InjectResultResponse makes the result call of the next n submitted
// requests answer with r verbatim, once they completed.
func (s *Server) InjectResultResponse(r Response, n int) {
	s.results.Push(answer{resp: &r}, n)
}

// Filter makes the safety checker flag the next n images: they are
// replaced by black images and marked in has_nsfw_concepts.
func (s *Server) Filter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filter += n
}

// Calls reports how many submits the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// Polls reports how many status calls it has received.
func (s *Server) Polls() int {
	return int(s.polls.Load())
}

// Cancels reports how many cancel calls it has received.
func (s *Server) Cancels() int {
	return int(s.cancels.Load())
}

// LastRequest returns the most recent submit (zero if none).
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// handleSubmit handles POST /{model id}.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if !s.sleep(r, s.opt.Latency) || !s.authorized(w, r) {
		return
	}
	model := r.PathValue("model")
	var input map[string]any
	decodeErr := json.NewDecoder(http.MaxBytesReader(w, r.Body, 10<<20)).Decode(&input)
	s.mu.Lock()
	s.last = Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Input: input}
	s.mu.Unlock()
	next, _ := s.submits.Next()

	switch {
	case next.resp != nil:
		writeRaw(w, *next.resp)
		return
	case next.fault == providertest.BadAuth:
		providertest.WriteJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Authentication failed: the key was revoked"})
		return
	case next.fault == providertest.RateLimit:
		providertest.WriteJSON(w, http.StatusTooManyRequests, map[string]any{"detail": "Too many requests, slow down"})
		return
	}
	if !slices.Contains(s.opt.Models, model) {
		providertest.WriteJSON(w, http.StatusNotFound, map[string]any{"detail": fmt.Sprintf("Application %q not found", model)})
		return
	}
	if decodeErr != nil {
		providertest.WriteJSON(w, http.StatusBadRequest, map[string]any{"detail": "Request body must be a JSON object"})
		return
	}

	parts := strings.SplitN(model, "/", 3)
	req := &request{id: providertest.UUID(), app: parts[0] + "/" + parts[1], input: input, submitted: time.Now(), result: next}
	req.problems = validate(model, input)
	s.mu.Lock()
	if next.fault == providertest.None {
		if res, ok := s.results.Next(); ok {
			req.result = res
		}
	}
	req.flagged = s.filter // capped when the images are made
	s.filter = max(s.filter-int(number(input["num_images"], 1)), 0)
	s.requests = append(s.requests, req)
	s.byID[req.id] = req
	body := s.statusBody(req, "IN_QUEUE", time.Now())
	s.mu.Unlock()
	providertest.WriteJSON(w, http.StatusOK, body)
}

// handleStatus handles GET /{owner}/{app}/requests/{id}/status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	s.polls.Add(1)
	req, ok := s.find(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	now := time.Now()
	st := s.state(req, now)
	body := s.statusBody(req, st, now)
	s.mu.Unlock()
	code := http.StatusAccepted
	if st == "COMPLETED" {
		code = http.StatusOK
	}
	providertest.WriteJSON(w, code, body)
}

// handleResult handles GET /{owner}/{app}/requests/{id}.
func (s *Server) handleResult(w http.ResponseWriter, r *http.Request) {
	req, ok := s.find(w, r)
	if !ok {
		return
	}
	w.Header().Set("X-Fal-Request-Id", req.id)
	s.mu.Lock()
	st := s.state(req, time.Now())
	s.mu.Unlock()
	switch {
	case req.canceled:
		providertest.WriteJSON(w, http.StatusBadRequest, map[string]any{"detail": "Request was cancelled"})
		return
	case st != "COMPLETED":
		providertest.WriteJSON(w, http.StatusBadRequest, map[string]any{"detail": "Request is still in progress"})
		return
	case req.result.resp != nil:
		writeRaw(w, *req.result.resp)
		return
	}
	switch req.result.fault {
	case providertest.ServerError:
		w.Header().Set("X-Fal-Error-Type", "startup_timeout")
		providertest.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"detail": "The runner did not start in time", "error_type": "startup_timeout"})
		return
	case providertest.ContentPolicy:
		w.Header().Set("X-Fal-Retryable", "false")
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []detail{{
			Loc: []string{"body", "prompt"}, Msg: "The content could not be processed because it contained material flagged by a content checker.",
			Type: "content_policy_violation", Ctx: map[string]any{"categories": []string{"sexual"}},
		}}})
		return
	case providertest.InvalidRequest:
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []detail{{
			Loc: []string{"body", "image_size"}, Msg: "image size is not supported by this model", Type: "value_error",
		}}})
		return
	}
	if len(req.problems) > 0 {
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": req.problems})
		return
	}
	s.mu.Lock()
	var err error
	if req.output == nil {
		req.output, err = s.makeOutput(req)
	}
	out := req.output
	s.mu.Unlock()
	if err != nil {
		providertest.WriteJSON(w, http.StatusInternalServerError, map[string]any{"detail": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// handleCancel handles PUT /{owner}/{app}/requests/{id}/cancel: only a
// request that has not started can be cancelled.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	s.cancels.Add(1)
	req, ok := s.find(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	st := s.state(req, time.Now())
	if st == "IN_QUEUE" {
		req.canceled = true
	}
	s.mu.Unlock()
	if st != "IN_QUEUE" {
		providertest.WriteJSON(w, http.StatusBadRequest, map[string]any{"status": "ALREADY_COMPLETED"})
		return
	}
	providertest.WriteJSON(w, http.StatusAccepted, map[string]any{"status": "CANCELLATION_REQUESTED"})
}

// handleFile handles GET /files/{name}, the output URLs.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	if s.opt.RedirectOutputs != "" {
		http.Redirect(w, r, strings.TrimRight(s.opt.RedirectOutputs, "/")+r.URL.Path, http.StatusFound)
		return
	}
	s.mu.Lock()
	f, ok := s.files[r.PathValue("name")]
	s.mu.Unlock()
	if !ok || time.Now().After(f.expires) {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	_, _ = w.Write(f.data)
}

// find authorizes the call and looks up its request.
func (s *Server) find(w http.ResponseWriter, r *http.Request) (*request, bool) {
	if !s.sleep(r, s.opt.Latency) || !s.authorized(w, r) {
		return nil, false
	}
	s.mu.Lock()
	req := s.byID[r.PathValue("id")]
	s.mu.Unlock()
	if req == nil || req.app != r.PathValue("owner")+"/"+r.PathValue("app") {
		providertest.WriteJSON(w, http.StatusNotFound, map[string]any{"detail": "Request not found"})
		return nil, false
	}
	return req, true
}

// state advances the queue to now and returns req's state. A cancelled
// request reports COMPLETED (the official clients know no other final
// state; its result call then fails). The caller holds s.mu.
func (s *Server) state(req *request, now time.Time) string {
	running := 0
	for _, q := range s.requests {
		if !q.started.IsZero() && now.Before(q.started.Add(s.opt.ProcessingTime)) {
			running++
		}
	}
	for _, q := range s.requests {
		if q.started.IsZero() && !q.canceled && q.result.fault != providertest.Slow &&
			!now.Before(q.submitted.Add(s.opt.QueueTime)) && running < s.opt.Concurrency {
			q.started = now
			running++
		}
	}
	switch {
	case req.canceled:
		return "COMPLETED"
	case req.started.IsZero():
		return "IN_QUEUE"
	case now.Before(req.started.Add(s.opt.ProcessingTime)):
		return "IN_PROGRESS"
	default:
		return "COMPLETED"
	}
}

// statusBody is the status object; the caller holds s.mu.
func (s *Server) statusBody(req *request, st string, now time.Time) map[string]any {
	base := s.URL + "/" + req.app + "/requests/" + req.id
	body := map[string]any{
		"status": st, "request_id": req.id,
		"response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel",
	}
	switch st {
	case "IN_QUEUE":
		ahead := 0
		for _, q := range s.requests {
			if q == req {
				break
			}
			if q.started.IsZero() && !q.canceled {
				ahead++
			}
		}
		left := req.submitted.Add(s.opt.QueueTime).Sub(now)
		pos := ahead + int(math.Ceil(float64(s.opt.QueuePosition)*max(left.Seconds(), 0)/s.opt.QueueTime.Seconds()))
		if req.result.fault == providertest.Slow {
			pos = max(pos, 1) // stuck behind other work
		}
		body["queue_position"] = pos
	case "IN_PROGRESS":
		body["logs"] = []map[string]any{{"message": "Generating...", "level": "INFO", "source": "user", "timestamp": stamp(req.started)}}
	case "COMPLETED":
		body["logs"] = []any{}
		body["metrics"] = map[string]any{"inference_time": s.opt.ProcessingTime.Seconds()}
	}
	return body
}

// namedSizes are FLUX's image_size presets.
var namedSizes = map[string][2]int{
	"square_hd": {1024, 1024}, "square": {512, 512},
	"portrait_4_3": {768, 1024}, "portrait_16_9": {576, 1024},
	"landscape_4_3": {1024, 768}, "landscape_16_9": {1024, 576},
}

// makeOutput draws the images and builds the result body. The caller
// holds s.mu.
func (s *Server) makeOutput(req *request) ([]byte, error) {
	in := req.input
	w, h := 1024, 768
	switch v := in["image_size"].(type) {
	case string:
		w, h = namedSizes[v][0], namedSizes[v][1]
	case map[string]any:
		w, h = int(number(v["width"], 1024)), int(number(v["height"], 768))
	}
	if long := max(w, h); long > s.opt.MaxSide {
		w, h = max(w*s.opt.MaxSide/long, 1), max(h*s.opt.MaxSide/long, 1)
	}
	format := cmp.Or(str(in["output_format"]), "jpeg")
	seed := int64(number(in["seed"], float64(mathrand.Int64N(1<<31))))
	sync, _ := in["sync_mode"].(bool)
	safety, hasSafety := in["enable_safety_checker"].(bool)
	n := int(number(in["num_images"], 1))
	images := make([]map[string]any, 0, n)
	nsfw := make([]bool, 0, n)
	for i := range n {
		flagged := i < req.flagged && (!hasSafety || safety)
		data, err := providertest.PaddedImage(w, h, format, seed+int64(i), s.opt.OutputPadding)
		if flagged {
			data, err = providertest.BlankImage(w, h, format) // the flat replacement the checker returns
		}
		if err != nil {
			return nil, err
		}
		ctype := "image/" + format
		var u string
		if sync {
			u = "data:" + ctype + ";base64," + base64.StdEncoding.EncodeToString(data)
		} else {
			name := fmt.Sprintf("%s-%d.%s", providertest.RandomHex(8), i, map[string]string{"jpeg": "jpg", "png": "png"}[format])
			s.files[name] = file{data: data, ctype: ctype, expires: time.Now().Add(s.opt.OutputTTL)}
			u = s.URL + "/files/" + name
		}
		images = append(images, map[string]any{"url": u, "width": w, "height": h, "content_type": ctype})
		nsfw = append(nsfw, flagged)
	}
	out, _ := json.Marshal(map[string]any{
		"images": images, "timings": map[string]any{"inference": s.opt.ProcessingTime.Seconds()},
		"seed": seed, "has_nsfw_concepts": nsfw, "prompt": in["prompt"],
	})
	return out, nil
}

// detail is one item of a 422 "detail" list.
type detail struct {
	Loc  []string       `json:"loc"`
	Msg  string         `json:"msg"`
	Type string         `json:"type"`
	Ctx  map[string]any `json:"ctx,omitempty"`
}

// validate checks input against the FLUX schema.
func validate(model string, in map[string]any) []detail {
	var p []detail
	add := func(field, msg, typ string, ctx map[string]any) {
		p = append(p, detail{Loc: []string{"body", field}, Msg: msg, Type: typ, Ctx: ctx})
	}
	if v, ok := in["prompt"]; !ok {
		add("prompt", "field required", "value_error.missing", nil)
	} else if _, isStr := v.(string); !isStr {
		add("prompt", "str type expected", "type_error.str", nil)
	}
	intRange := func(field string, lo, hi float64) {
		v, ok := in[field]
		if !ok {
			return
		}
		f, isNum := v.(float64)
		switch {
		case !isNum || f != math.Trunc(f):
			add(field, "value is not a valid integer", "type_error.integer", nil)
		case f < lo:
			add(field, fmt.Sprintf("ensure this value is greater than or equal to %g", lo), "value_error.number.not_ge", map[string]any{"limit_value": lo})
		case f > hi:
			add(field, fmt.Sprintf("ensure this value is less than or equal to %g", hi), "value_error.number.not_le", map[string]any{"limit_value": hi})
		}
	}
	enum := func(field string, allowed []string) {
		if v, ok := in[field]; ok && !slices.Contains(allowed, str(v)) {
			add(field, "value is not a valid enumeration member; permitted: '"+strings.Join(allowed, "', '")+"'",
				"type_error.enum", map[string]any{"enum_values": allowed})
		}
	}
	boolean := func(field string) {
		if v, ok := in[field]; ok {
			if _, isBool := v.(bool); !isBool {
				add(field, "value could not be parsed to a boolean", "type_error.bool", nil)
			}
		}
	}
	switch v := in["image_size"].(type) {
	case nil:
	case string:
		if _, ok := namedSizes[v]; !ok {
			add("image_size", "value is not a valid enumeration member", "type_error.enum", nil)
		}
	case map[string]any:
		for _, k := range []string{"width", "height"} {
			if f, ok := v[k].(float64); !ok || f != math.Trunc(f) || f < 1 || f > 14142 {
				p = append(p, detail{Loc: []string{"body", "image_size", k}, Msg: "ensure this value is an integer between 1 and 14142", Type: "value_error"})
			}
		}
	default:
		add("image_size", "value is not a valid image size", "type_error", nil)
	}
	maxSteps := 12.0
	if strings.HasSuffix(model, "/dev") {
		maxSteps = 50
	}
	intRange("num_images", 1, 4)
	intRange("num_inference_steps", 1, maxSteps)
	intRange("seed", 0, math.MaxInt64)
	enum("output_format", []string{"jpeg", "png"})
	enum("acceleration", []string{"none", "regular", "high"})
	boolean("enable_safety_checker")
	boolean("sync_mode")
	if v, ok := in["guidance_scale"]; ok {
		if f, isNum := v.(float64); !isNum || f < 1 || f > 20 {
			add("guidance_scale", "ensure this value is a number between 1 and 20", "value_error", nil)
		}
	}
	return p
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Key ")
	if ok && got == s.Key {
		return true
	}
	msg := "No user found for Key ID and Secret"
	if s.opt.EchoKey && got != "" {
		msg = fmt.Sprintf("No user found for key %s", got)
	}
	providertest.WriteJSON(w, http.StatusUnauthorized, map[string]any{"detail": msg})
	return false
}

func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	return providertest.Sleep(r, s.done, d)
}

func writeRaw(w http.ResponseWriter, r Response) {
	providertest.WriteRaw(w, r.Status, r.Header, r.Body, "")
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

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
