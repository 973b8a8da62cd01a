package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"text/tabwriter"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/manifest"
	"bulkgen/internal/provider/openai/openaitest"
	"bulkgen/internal/provider/registry"
	"bulkgen/internal/ratelimit"
	"bulkgen/internal/runner"
)

// rateBench is one `bulkgen-bench ratelimit` measurement.
type rateBench struct {
	// Images is the batch size.
	Images int
	// RPM is what the server allows per minute; Window is the server's
	// sliding window (it admits RPM×Window/1m requests per window).
	RPM    int
	Window time.Duration
	// Latency is how long the server takes per image.
	Latency time.Duration
	// Concurrency is the runner's images in flight, in both modes.
	Concurrency int
	// Headroom is the fraction of RPM the configured limit stays under:
	// the limiter spaces requests evenly at 60/limit seconds, and the
	// server counts arrivals in its window, so at exactly the server's
	// rate any scheduling jitter (a request that leaves a millisecond late,
	// the next one on time) puts one request too many into some window.
	Headroom float64
	// Retries is the attempts per image; every 429 costs one.
	Retries int
	// Progress receives the runner's progress lines (may be io.Discard).
	Progress io.Writer
}

// rateResult is the outcome of one mode.
type rateResult struct {
	Mode      string
	Limit     ratelimit.Limits
	Images    int
	Succeeded int
	Failed    int
	Elapsed   time.Duration
	// Throttled is the number of 429s the server sent.
	Throttled int
	// Calls is every generation call the server received.
	Calls int
	// MaxAttempts is the most attempts one image needed.
	MaxAttempts int
}

// PerMinute is the achieved rate of finished images.
func (r rateResult) PerMinute() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Succeeded) / r.Elapsed.Minutes()
}

func benchRateLimit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ratelimit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := rateBench{Progress: stderr}
	fs.IntVar(&b.Images, "images", 300, "images per mode")
	fs.IntVar(&b.RPM, "rpm", 120, "requests per minute the test server allows")
	fs.DurationVar(&b.Window, "window", time.Minute, "the server's sliding rate window (shorter windows reach the limit with fewer images)")
	fs.DurationVar(&b.Latency, "latency", 500*time.Millisecond, "server time per image")
	fs.IntVar(&b.Concurrency, "concurrency", 16, "images in flight")
	fs.Float64Var(&b.Headroom, "headroom", 0.02, "fraction of --rpm the configured limit stays under")
	fs.IntVar(&b.Retries, "retries", 50, "attempts per image (each 429 costs one)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if b.Images < 1 || b.RPM < 1 || b.Concurrency < 1 || b.Retries < 1 || b.Headroom < 0 || b.Headroom >= 1 {
		return errors.New("bench ratelimit: --images, --rpm, --concurrency and --retries must be positive and --headroom in [0, 1)")
	}
	fmt.Fprintf(stdout, "rate-limit benchmark: %d images of openai/gpt-image-2 per mode against a local OpenAI contract server\n"+
		"that allows %d requests/min (sliding %s window) and takes %s per image; %d images in flight.\n\n",
		b.Images, b.RPM, b.Window, b.Latency, b.Concurrency)
	results, err := b.run(ctx)
	for _, r := range results {
		fmt.Fprintf(stderr, "%s: done in %s\n", r.Mode, r.Elapsed.Round(time.Millisecond))
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tclient limit\timages ok\tfailed\ttime\timages/min\tof server limit\t429s received\tmost attempts")
	for _, r := range results {
		limit := "none"
		if r.Limit.RPM > 0 {
			limit = fmt.Sprintf("%.1f/min", r.Limit.RPM)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\t%.1f\t%.1f%%\t%d\t%d\n", r.Mode, limit, r.Succeeded, r.Images, r.Failed,
			r.Elapsed.Round(100*time.Millisecond), r.PerMinute(), 100*r.PerMinute()/float64(b.RPM), r.Throttled, r.MaxAttempts)
	}
	tw.Flush()

	lim, free := results[0], results[1]
	okRate := lim.PerMinute() >= 0.95*float64(b.RPM)
	okZero := lim.Throttled == 0
	okAll := lim.Succeeded == lim.Images && free.Succeeded == free.Images
	fmt.Fprintf(stdout, "\ntargets: limit configured: at least 95%% of %d/min (%s), zero 429s (%s); no limit: every image completes (%s)\n",
		b.RPM, verdict(okRate), verdict(okZero), verdict(free.Succeeded == free.Images))
	if !okRate || !okZero || !okAll {
		return exitCode(1)
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// run measures both modes, each against a fresh server: with the limit
// configured (provider openai at RPM less Headroom), then with none.
func (b rateBench) run(ctx context.Context) ([]rateResult, error) {
	perWindow := int(float64(b.RPM) * b.Window.Minutes())
	if perWindow < 1 {
		return nil, fmt.Errorf("bench ratelimit: %d/min over a %s window admits no request", b.RPM, b.Window)
	}
	modes := []struct {
		name  string
		limit ratelimit.Limits
	}{
		{"limit configured", ratelimit.Limits{Concurrency: b.Concurrency, RPM: float64(b.RPM) * (1 - b.Headroom)}},
		// Zero overrides the catalogue's default budget for openai.
		{"no limit", ratelimit.Limits{}},
	}
	var out []rateResult
	for _, m := range modes {
		r, err := b.once(ctx, m.name, m.limit, perWindow)
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return out, nil
}

func (b rateBench) once(ctx context.Context, mode string, limit ratelimit.Limits, perWindow int) (rateResult, error) {
	res := rateResult{Mode: mode, Limit: limit, Images: b.Images}
	tb := &serverTB{}
	defer tb.close()
	srv := openaitest.NewServer(tb, openaitest.Options{RPM: perWindow, Window: b.Window, Latency: b.Latency, MaxEdge: 256})

	tmp, err := os.MkdirTemp("", "bulkgen-bench-ratelimit-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	cat, err := catalog.Open("")
	if err != nil {
		return res, err
	}
	env := map[string]string{"OPENAI_API_KEY": srv.Key, "OPENAI_BASE_URL": srv.URL}
	reg, err := registry.Build(registry.Config{
		Getenv:  func(k string) string { return env[k] },
		Catalog: cat,
		Limits:  map[string]ratelimit.Limits{"openai": limit},
	})
	if err != nil {
		return res, err
	}
	planner, err := batch.NewPlanner(batch.Config{Catalog: cat,
		Defaults: batch.Defaults{Model: "openai/gpt-image-2", Size: "1024x1024", Format: "png", N: 1}})
	if err != nil {
		return res, err
	}
	// One prompt a line; a few hundred lines are a few kilobytes.
	var prompts bytes.Buffer
	for i := range b.Images {
		fmt.Fprintf(&prompts, "rate-limit benchmark image %d, a lighthouse at dusk\n", i)
	}
	out := filepath.Join(tmp, "out")
	cfg := runner.Config{
		Inputs: []runner.Input{{Name: "bench.txt", Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(prompts.Bytes())), nil
		}}},
		OutDir:      out,
		Planner:     planner,
		Generator:   &generate.Generator{Providers: reg, Limits: reg.Limits()},
		Concurrency: b.Concurrency,
		Policy:      generate.Policy{MaxAttempts: b.Retries},
		Progress:    runner.NewLines(b.Progress, 10*time.Second),
		Problems:    b.Progress,
	}
	start := time.Now()
	sum, err := runner.Run(ctx, ctx, cfg)
	res.Elapsed = time.Since(start)
	res.Throttled, res.Calls = srv.Throttled(), srv.Calls()
	if err != nil {
		return res, err
	}
	res.Succeeded, res.Failed = sum.Succeeded, sum.Failed
	res.MaxAttempts, err = maxAttempts(filepath.Join(out, "manifest.jsonl"))
	return res, err
}

// maxAttempts reads the most attempts any image of a manifest needed.
func maxAttempts(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	most := 0
	dec := json.NewDecoder(f)
	for {
		var r manifest.Record
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return most, nil
		} else if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
		most = max(most, r.Attempts)
	}
}

// serverTB lets the benchmark start a contract server outside a test. The
// servers call only Helper and Cleanup on their testing.TB; any other
// method would reach the nil embedded interface and panic, which is the
// right outcome for a server that tries to fail a test that is not there.
type serverTB struct {
	testing.TB
	cleanups []func()
}

func (s *serverTB) Helper() {}

func (s *serverTB) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

// close runs the cleanups in reverse order, as testing does.
func (s *serverTB) close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}
