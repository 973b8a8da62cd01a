// Package preview is bulkgen's built-in image engine. It needs no network
// and no key: from the prompt, seed and size it draws a deterministic
// picture (palette and composition from the prompt's words, varied by the
// seed) with a caption naming it a preview, so that a whole batch, its
// naming, sizes and export can be rehearsed for free.
//
// Its output is never AI output and is always marked Result.Preview.
//
// It can also play a real provider for rehearsals and tests: a simulated
// latency (with jitter) and a failure rate whose failures are retryable,
// like a 503 from a hosted API.
package preview

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"bulkgen/internal/imagemeta"
	"bulkgen/internal/provider"
)

// Name is the engine's provider name.
const Name = "preview"

// Limits of a request.
const (
	// MinSize is the smallest width or height the engine draws.
	MinSize = 8
	// MaxSize is the largest width or height the engine draws.
	MaxSize = 4096
	// MaxCount is the most images one call may ask for.
	MaxCount = 16
	// DefaultSize is the side of the square image made when the request
	// gives no size.
	DefaultSize = 1024
	// maxLatency keeps a typo ("300m" for "300ms") from parking a worker
	// for hours.
	maxLatency = 10 * time.Minute
)

// Config holds the engine-wide simulation defaults; a request's options
// "latency", "jitter" and "failure_rate" override them per call.
type Config struct {
	// Latency is how long each call waits before answering.
	Latency time.Duration
	// Jitter adds a random extra wait of up to this much.
	Jitter time.Duration
	// FailureRate is the probability (0–1) that a call fails with a
	// retryable "simulated failure".
	FailureRate float64
	// RandSeed seeds the source of failures and jitter, so tests can
	// replay a sequence. Zero picks a random seed.
	RandSeed uint64
	// MaxRenders bounds the images drawn at once; 0 means DefaultRenders.
	MaxRenders int
}

// DefaultRenders is how many images an engine draws at once by default:
// half the CPUs Go may use, at least one.
//
// Drawing and encoding is CPU work, and a server runs the engine from
// dozens of image jobs at once. Unbounded, their renders filled Go's run
// queue, and every other goroutine — the one writing the jobs' shared
// transaction that all of them wait for, the HTTP handlers — waited
// behind them after each wake-up: on two cores about 5 ms per wake-up,
// and the server stayed near 800 images/s with a third of the machine
// idle. With one render at a time there, the wake-ups take a tenth of
// that and the same machine completes about a fifth more images per
// second (`bulkgen bench serve`, README). Jobs waiting for a slot are
// not runnable, so they cost nothing meanwhile; the simulated latency is
// waited outside the slot.
func DefaultRenders() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// Engine is the preview provider. It is safe for concurrent use.
type Engine struct {
	cfg Config

	mu  sync.Mutex // guards rng
	rng *rand.Rand

	// renders holds a token per image being drawn (Config.MaxRenders).
	renders chan struct{}
}

// New returns an engine with cfg's simulation defaults, or an error if they
// are out of range.
func New(cfg Config) (*Engine, error) {
	if cfg.Latency < 0 || cfg.Latency > maxLatency || cfg.Jitter < 0 || cfg.Jitter > maxLatency {
		return nil, fmt.Errorf("preview: latency and jitter must be between 0 and %s", maxLatency)
	}
	if !(cfg.FailureRate >= 0 && cfg.FailureRate <= 1) {
		return nil, fmt.Errorf("preview: failure rate %v outside 0–1", cfg.FailureRate)
	}
	if cfg.MaxRenders < 0 {
		return nil, fmt.Errorf("preview: max renders %d is negative", cfg.MaxRenders)
	}
	if cfg.MaxRenders == 0 {
		cfg.MaxRenders = DefaultRenders()
	}
	seed := cfg.RandSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Engine{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)),
		renders: make(chan struct{}, cfg.MaxRenders)}, nil
}

// Name returns "preview".
func (e *Engine) Name() string { return Name }

// simulation is the per-call latency and failure behaviour.
type simulation struct {
	latency, jitter time.Duration
	failureRate     float64
}

// option looks an option up by its bare name or its CSV column form
// "opt.<name>".
func option(opts map[string]string, name string) (string, bool) {
	if v, ok := opts[name]; ok {
		return v, true
	}
	v, ok := opts["opt."+name]
	return v, ok
}

func (e *Engine) simulation(opts map[string]string) (simulation, error) {
	sim := simulation{latency: e.cfg.Latency, jitter: e.cfg.Jitter, failureRate: e.cfg.FailureRate}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"latency", &sim.latency}, {"jitter", &sim.jitter}} {
		v, ok := option(opts, d.name)
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || dur < 0 || dur > maxLatency {
			return sim, provider.Errorf(provider.Invalid, Name,
				"option %s=%q: want a duration between 0 and %s, such as 300ms or 2s", d.name, v, maxLatency)
		}
		*d.dst = dur
	}
	if v, ok := option(opts, "failure_rate"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return sim, provider.Errorf(provider.Invalid, Name,
				"option failure_rate=%q: want a number between 0 and 1, such as 0.1", v)
		}
		sim.failureRate = f
	}
	return sim, nil
}

// size resolves the requested size: explicit width and height, else the
// aspect ratio on a DefaultSize long side, else a DefaultSize square.
func size(req provider.Request) (int, int, error) {
	w, h := req.Width, req.Height
	switch {
	case w == 0 && h == 0 && req.AspectRatio != "":
		rw, rh, ok := parseRatio(req.AspectRatio)
		if !ok {
			return 0, 0, provider.Errorf(provider.Invalid, Name, "aspect ratio %q: want W:H such as 16:9", req.AspectRatio)
		}
		if rw >= rh {
			w, h = DefaultSize, int(math.Round(DefaultSize*rh/rw))
		} else {
			w, h = int(math.Round(DefaultSize*rw/rh)), DefaultSize
		}
	case w == 0 && h == 0:
		w, h = DefaultSize, DefaultSize
	case w == 0:
		w = h
	case h == 0:
		h = w
	}
	if w < MinSize || h < MinSize || w > MaxSize || h > MaxSize {
		return 0, 0, provider.Errorf(provider.Invalid, Name,
			"size %dx%d: width and height must be between %d and %d", w, h, MinSize, MaxSize)
	}
	return w, h, nil
}

func parseRatio(s string) (float64, float64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	rw, err1 := strconv.ParseFloat(a, 64)
	rh, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil || !(rw > 0 && rh > 0 && rw/rh <= 64 && rh/rw <= 64) {
		return 0, 0, false
	}
	return rw, rh, true
}

// promptSeed is the seed used when the request has none: derived from the
// prompt, so that the output stays deterministic.
func promptSeed(prompt string) int64 {
	h := fnv.New64a()
	h.Write([]byte(prompt)) // hash writes cannot fail
	return int64(h.Sum64() & math.MaxInt32)
}

// Generate draws req.Count images (seeds Seed, Seed+1, …) after the
// simulated latency, or fails as the simulation says. Invalid options,
// sizes, formats or counts are provider.Invalid errors; simulated failures
// are provider.Retryable (HTTP 503, code "simulated_failure"); a cancelled
// ctx gives a Retryable error wrapping ctx.Err().
func (e *Engine) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	sim, err := e.simulation(req.Options)
	if err != nil {
		return provider.Result{}, err
	}
	w, h, err := size(req)
	if err != nil {
		return provider.Result{}, err
	}
	format := req.Format
	if format == "" {
		format = "png"
	}
	if format != "png" && format != "jpeg" && format != "webp" {
		return provider.Result{}, provider.Errorf(provider.Invalid, Name, "format %q: want png, jpeg or webp", req.Format)
	}
	count := max(req.Count, 1)
	if count > MaxCount {
		return provider.Result{}, provider.Errorf(provider.Invalid, Name, "count %d: at most %d images per call", count, MaxCount)
	}
	seed := req.Seed
	if !req.HasSeed {
		seed = promptSeed(req.Prompt)
	}

	// Draw the call's fate before waiting, so that a seeded engine replays
	// the same sequence however long each wait took.
	e.mu.Lock()
	fail := e.rng.Float64() < sim.failureRate
	wait := sim.latency
	if sim.jitter > 0 {
		wait += time.Duration(e.rng.Int64N(int64(sim.jitter) + 1))
	}
	e.mu.Unlock()

	reqID := requestID(req.Prompt, seed, w, h, format, count)
	if fail {
		if err := sleep(ctx, wait); err != nil {
			return provider.Result{}, err
		}
		return provider.Result{}, &provider.Error{
			Class: provider.Retryable, Provider: Name, Status: 503, Code: "simulated_failure",
			Message:   fmt.Sprintf("simulated failure (failure_rate %g)", sim.failureRate),
			RequestID: reqID,
		}
	}

	// The latency is the whole call's, as with a real provider whose answer
	// includes its rendering time: draw first, then wait out the rest.
	res := provider.Result{RequestID: reqID, Preview: true}
	for i := range count {
		if err := ctx.Err(); err != nil {
			return provider.Result{}, cancelled(err)
		}
		s := seed + int64(i)
		data, err := e.draw(ctx, req.Prompt, s, w, h, format)
		if err != nil {
			if ctx.Err() != nil {
				return provider.Result{}, cancelled(ctx.Err())
			}
			return provider.Result{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "encode image", Err: err}
		}
		res.Images = append(res.Images, provider.Image{
			Data: data, Format: format, Width: w, Height: h, Seed: s, HasSeed: true,
		})
	}
	if err := sleep(ctx, wait-time.Since(start)); err != nil {
		return provider.Result{}, err
	}
	res.Latency = time.Since(start)
	return res, nil
}

// draw is renderEncoded in one of the engine's render slots, waiting for
// one as long as ctx allows.
func (e *Engine) draw(ctx context.Context, prompt string, seed int64, width, height int, format string) ([]byte, error) {
	select {
	case e.renders <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.renders }()
	return renderEncoded(prompt, seed, width, height, format)
}

// renderEncoded returns the encoded preview image for prompt and seed: the same
// arguments always give the same bytes. Width and height are not checked
// against MinSize and MaxSize here; format is "png", "jpeg" or "webp".
func renderEncoded(prompt string, seed int64, width, height int, format string) ([]byte, error) {
	img := render(prompt, seed, width, height)
	var buf bytes.Buffer
	if err := imagemeta.Encode(&buf, img, format, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return cancelled(err)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return cancelled(ctx.Err())
	case <-t.C:
		return nil
	}
}

// cancelled classifies a cancelled or expired call as retryable: the work
// was not done, and nothing about the request was wrong.
func cancelled(err error) error {
	return &provider.Error{Class: provider.Retryable, Provider: Name, Message: "call cancelled: " + err.Error(), Err: err}
}

func requestID(prompt string, seed int64, w, h int, format string, count int) string {
	hs := fnv.New64a()
	fmt.Fprintf(hs, "%s\x00%d\x00%dx%d\x00%s\x00%d", prompt, seed, w, h, format, count)
	return fmt.Sprintf("preview-%016x", hs.Sum64())
}

var _ provider.Provider = (*Engine)(nil)
