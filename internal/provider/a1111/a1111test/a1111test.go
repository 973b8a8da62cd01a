// Package a1111test is a local contract server for the AUTOMATIC1111 /
// Forge API (section 8 of shared/docs/providers.md): a synchronous
// POST /sdapi/v1/txt2img serialised by one global lock, base64 PNGs and an
// info JSON string with all_seeds, errors in the {error, detail, body,
// errors} shape, optional HTTP Basic auth, /progress reflecting the
// running job, /interrupt ending it early, /sd-models and /samplers.
package a1111test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// Defaults for Options.Models and Options.Samplers.
var (
	DefaultModels   = []string{"sd_xl_base_1.0", "v1-5-pruned-emaonly"}
	DefaultSamplers = []string{"Euler", "Euler a", "DPM++ 2M", "DDIM"}
)

const (
	defaultLatency = 10 * time.Millisecond
	slowLatency    = time.Hour
	maxImageSide   = 1024
)

// Options configures the server. Zero values mean the defaults.
type Options struct {
	// Username and Password turn on HTTP Basic auth (--api-auth).
	Username, Password string
	// Models are the checkpoints (model_name) the server has; the first is
	// loaded.
	Models []string
	// Samplers are the accepted sampler names.
	Samplers []string
	// Latency is how long one generation takes. Default 10 ms.
	Latency time.Duration
	// Grid prepends a grid image when a call makes more than one image, as
	// with the "return grid" setting (index_of_first_image is then 1).
	Grid bool
}

// Request is a txt2img call as the server received it.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// Server is a running contract server.
type Server struct {
	// URL is the base URL to configure the adapter with.
	URL string

	opt  Options
	gen  sync.Mutex // the process-wide generation lock
	stop chan struct{}

	faults providertest.Queue[providertest.Fault]
	calls  atomic.Int64

	mu         sync.Mutex
	last       Request
	job        *job // the running generation, or nil
	interrupts int
}

type job struct {
	started   time.Time
	latency   time.Duration
	steps     int
	interrupt chan struct{}
}

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Models == nil {
		opt.Models = DefaultModels
	}
	if opt.Samplers == nil {
		opt.Samplers = DefaultSamplers
	}
	if opt.Latency == 0 {
		opt.Latency = defaultLatency
	}
	s := &Server{opt: opt, stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sdapi/v1/txt2img", s.handleTxt2img)
	mux.HandleFunc("GET /sdapi/v1/progress", s.handleProgress)
	mux.HandleFunc("POST /sdapi/v1/interrupt", s.handleInterrupt)
	mux.HandleFunc("GET /sdapi/v1/sd-models", s.handleModels)
	mux.HandleFunc("GET /sdapi/v1/samplers", s.handleSamplers)
	hs := httptest.NewServer(s.auth(mux))
	s.URL = hs.URL
	tb.Cleanup(func() {
		close(s.stop) // ends held generations so that Close does not wait an hour
		hs.Close()
	})
	return s
}

// Inject makes the next n txt2img calls end in f the way A1111 produces
// it: ServerError is a 500 for running out of GPU memory, BadAuth a 401,
// InvalidRequest a 404 "Sampler not found", Slow a generation that runs for
// an hour unless interrupted. RateLimit and ContentPolicy cannot happen
// with A1111 and are ignored.
func (s *Server) Inject(f providertest.Fault, n int) {
	switch f {
	case providertest.ServerError, providertest.BadAuth, providertest.InvalidRequest, providertest.Slow:
	default:
		return
	}
	s.faults.Push(f, n)
}

// Calls reports how many txt2img calls the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// LastRequest returns the last txt2img call received.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Header = r.Header.Clone()
	r.Body = slices.Clone(r.Body)
	return r
}

// Interrupts reports how many POST /sdapi/v1/interrupt calls arrived.
func (s *Server) Interrupts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interrupts
}

// Busy reports whether a generation is running.
func (s *Server) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.job != nil
}

// auth enforces Basic auth on every route when configured, answering as
// FastAPI's HTTPBasic does.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opt.Username != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != s.opt.Username || p != s.opt.Password {
				unauthorized(w)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Basic")
	providertest.WriteJSON(w, http.StatusUnauthorized, map[string]any{"detail": "Incorrect username or password"})
}

// writeHandled answers in the shape of A1111's exception handler.
func writeHandled(w http.ResponseWriter, status int, errName, detail, errs string) {
	providertest.WriteJSON(w, status, map[string]any{"error": errName, "detail": detail, "body": "", "errors": errs})
}

// txt2img are the request fields the fake reads; FastAPI rejects wrong
// types with 422 before the handler runs, and so does decoding here.
type txt2img struct {
	Prompt           string         `json:"prompt"`
	NegativePrompt   string         `json:"negative_prompt"`
	Seed             *int64         `json:"seed"`
	Width            *int           `json:"width"`
	Height           *int           `json:"height"`
	BatchSize        *int           `json:"batch_size"`
	NIter            *int           `json:"n_iter"`
	Steps            *int           `json:"steps"`
	CfgScale         *float64       `json:"cfg_scale"`
	SamplerName      string         `json:"sampler_name"`
	SamplerIndex     string         `json:"sampler_index"`
	Scheduler        string         `json:"scheduler"`
	OverrideSettings map[string]any `json:"override_settings"`
}

// handleTxt2img serves POST /sdapi/v1/txt2img.
func (s *Server) handleTxt2img(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.calls.Add(1)
	s.last = Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	fault, _ := s.faults.Next()
	s.mu.Unlock()

	switch fault {
	case providertest.BadAuth:
		unauthorized(w)
		return
	case providertest.ServerError:
		writeHandled(w, http.StatusInternalServerError, "OutOfMemoryError", "",
			"CUDA out of memory. Tried to allocate 2.00 GiB")
		return
	case providertest.InvalidRequest:
		writeHandled(w, http.StatusNotFound, "HTTPException", "Sampler not found", "")
		return
	}

	var in txt2img
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{
			map[string]any{"loc": []any{"body"}, "msg": err.Error(), "type": "type_error"}}})
		return
	}
	sampler := in.SamplerName
	if sampler == "" {
		sampler = in.SamplerIndex
	}
	if sampler == "" {
		sampler = "Euler"
	}
	if !slices.Contains(s.opt.Samplers, sampler) {
		writeHandled(w, http.StatusNotFound, "HTTPException", "Sampler not found", "")
		return
	}
	width, height, batch, iters, steps := val(in.Width, 512), val(in.Height, 512), val(in.BatchSize, 1), val(in.NIter, 1), val(in.Steps, 50)
	if width < 64 || height < 64 || batch < 1 || iters < 1 || steps < 1 {
		providertest.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{
			map[string]any{"loc": []any{"body"}, "msg": "value out of range", "type": "value_error"}}})
		return
	}
	model := s.opt.Models[0]
	if ckpt, ok := in.OverrideSettings["sd_model_checkpoint"].(string); ok && slices.Contains(s.opt.Models, ckpt) {
		model = ckpt // an unknown checkpoint falls back to the loaded one
	}
	seed := val(in.Seed, -1)
	if seed == -1 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		seed = int64(binary.BigEndian.Uint32(b[:]))
	}

	// The global lock: one generation at a time, others wait.
	s.gen.Lock()
	defer s.gen.Unlock()
	j := &job{started: time.Now(), latency: s.opt.Latency, steps: steps, interrupt: make(chan struct{})}
	if fault == providertest.Slow {
		j.latency = slowLatency
	}
	s.mu.Lock()
	s.job = j
	s.mu.Unlock()
	t := time.NewTimer(j.latency)
	interrupted := false
	select {
	case <-t.C:
	case <-j.interrupt:
		interrupted = true
	case <-s.stop:
		interrupted = true
	}
	t.Stop()
	s.mu.Lock()
	s.job = nil
	s.mu.Unlock()

	n := batch * iters
	if interrupted {
		n = 1 // the images finished so far: here the partly denoised first one
	}
	seeds := make([]int64, batch*iters)
	for i := range seeds {
		seeds[i] = seed + int64(i)
	}
	var images []string
	first := 0
	add := func(w, h int, seed int64) error {
		w, h = providertest.Fit(w, h, maxImageSide)
		data, err := providertest.TestImage(w, h, "png", seed)
		images = append(images, base64.StdEncoding.EncodeToString(data))
		return err
	}
	if s.opt.Grid && n > 1 {
		if err := add(width*2, height, -1); err != nil {
			writeHandled(w, http.StatusInternalServerError, "RuntimeError", err.Error(), "")
			return
		}
		first = 1
	}
	for i := range n {
		if err := add(width, height, seeds[i]); err != nil {
			writeHandled(w, http.StatusInternalServerError, "RuntimeError", err.Error(), "")
			return
		}
	}
	infotexts := make([]string, n)
	for i := range infotexts {
		infotexts[i] = in.Prompt
	}
	info, _ := json.Marshal(map[string]any{
		"prompt": in.Prompt, "negative_prompt": in.NegativePrompt,
		"all_prompts": repeat(in.Prompt, len(seeds)), "all_negative_prompts": repeat(in.NegativePrompt, len(seeds)),
		"seed": seed, "all_seeds": seeds, "subseed": -1, "all_subseeds": seeds,
		"width": width, "height": height, "sampler_name": sampler, "scheduler": in.Scheduler,
		"cfg_scale": val(in.CfgScale, 7.0), "steps": steps, "batch_size": batch,
		"sd_model_name": model, "infotexts": infotexts, "index_of_first_image": first,
	})
	var params map[string]any
	_ = json.Unmarshal(body, &params)
	providertest.WriteJSON(w, http.StatusOK, map[string]any{"images": images, "parameters": params, "info": string(info)})
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func val[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// handleProgress serves GET /sdapi/v1/progress.
func (s *Server) handleProgress(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	j := s.job
	s.mu.Unlock()
	state := map[string]any{"skipped": false, "interrupted": false, "stopping_generation": false,
		"job": "", "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
	progress, eta := 0.0, 0.0
	if j != nil {
		elapsed := time.Since(j.started)
		progress = min(0.99, float64(elapsed)/float64(j.latency))
		eta = max(0, (j.latency - elapsed).Seconds())
		select {
		case <-j.interrupt:
			state["interrupted"] = true
		default:
		}
		state["job"] = "txt2img"
		state["job_count"] = 1
		state["job_timestamp"] = j.started.Format("20060102150405")
		state["sampling_steps"] = j.steps
		state["sampling_step"] = int(progress * float64(j.steps))
	}
	providertest.WriteJSON(w, http.StatusOK, map[string]any{"progress": progress, "eta_relative": eta, "state": state,
		"current_image": nil, "textinfo": nil})
}

// handleInterrupt serves POST /sdapi/v1/interrupt: it ends the running
// generation, whoever started it.
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.interrupts++
	if s.job != nil {
		select {
		case <-s.job.interrupt:
		default:
			close(s.job.interrupt)
		}
	}
	s.mu.Unlock()
	providertest.WriteJSON(w, http.StatusOK, map[string]any{})
}

// handleModels serves GET /sdapi/v1/sd-models.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	var out []any
	for _, m := range s.opt.Models {
		out = append(out, map[string]any{"title": m + ".safetensors [31e35c80fc]", "model_name": m,
			"hash": "31e35c80fc", "sha256": nil, "filename": "/models/Stable-diffusion/" + m + ".safetensors", "config": nil})
	}
	providertest.WriteJSON(w, http.StatusOK, out)
}

// handleSamplers serves GET /sdapi/v1/samplers.
func (s *Server) handleSamplers(w http.ResponseWriter, r *http.Request) {
	var out []any
	for _, name := range s.opt.Samplers {
		out = append(out, map[string]any{"name": name, "aliases": []string{}, "options": map[string]any{}})
	}
	providertest.WriteJSON(w, http.StatusOK, out)
}
