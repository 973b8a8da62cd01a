package preview

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"strings"
	"testing"
	"time"

	_ "golang.org/x/image/webp"

	"bulkgen/internal/provider"
)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.RandSeed == 0 {
		cfg.RandSeed = 1
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func generate(t testing.TB, e *Engine, req provider.Request) provider.Result {
	t.Helper()
	res, err := e.Generate(context.Background(), req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return res
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	e1, e2 := newEngine(t, Config{RandSeed: 1}), newEngine(t, Config{RandSeed: 2})
	for _, format := range []string{"png", "jpeg", "webp"} {
		req := provider.Request{Prompt: "a red fox in a snowy forest", Seed: 7, HasSeed: true, Width: 96, Height: 64, Format: format}
		a, b := generate(t, e1, req), generate(t, e2, req)
		if !bytes.Equal(a.Images[0].Data, b.Images[0].Data) {
			t.Errorf("%s: two calls gave different bytes", format)
		}
		if a.RequestID != b.RequestID {
			t.Errorf("%s: request IDs %q and %q differ", format, a.RequestID, b.RequestID)
		}
	}
}

func TestVariesWithSeedAndPrompt(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	base := provider.Request{Prompt: "a lighthouse at dusk", Seed: 1, HasSeed: true, Width: 64, Height: 64}
	other := base
	other.Seed = 2
	reworded := base
	reworded.Prompt = "a lighthouse at dawn"
	a := generate(t, e, base).Images[0].Data
	if bytes.Equal(a, generate(t, e, other).Images[0].Data) {
		t.Error("seeds 1 and 2 gave the same image")
	}
	if bytes.Equal(a, generate(t, e, reworded).Images[0].Data) {
		t.Error("different prompts gave the same image")
	}
}

func TestSizesAndFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		req          provider.Request
		wantW, wantH int
		wantFormat   string
	}{
		{"default", provider.Request{Prompt: "p"}, DefaultSize, DefaultSize, "png"},
		{"png", provider.Request{Prompt: "p", Width: 8, Height: 8, Format: "png"}, 8, 8, "png"},
		{"jpeg odd", provider.Request{Prompt: "p", Width: 33, Height: 17, Format: "jpeg"}, 33, 17, "jpeg"},
		{"webp", provider.Request{Prompt: "一只猫", Width: 129, Height: 65, Format: "webp"}, 129, 65, "webp"},
		{"ratio", provider.Request{Prompt: "p", AspectRatio: "16:9", Format: "jpeg"}, 1024, 576, "jpeg"},
		{"ratio tall", provider.Request{Prompt: "p", AspectRatio: "2:3"}, 683, 1024, "png"},
		{"width only", provider.Request{Prompt: "p", Width: 40}, 40, 40, "png"},
		{"max", provider.Request{Prompt: "p", Width: MaxSize, Height: MinSize, Format: "jpeg"}, MaxSize, MinSize, "jpeg"},
	}
	e := newEngine(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := generate(t, e, tt.req)
			if !res.Preview {
				t.Error("Result.Preview is false")
			}
			if len(res.Images) != 1 {
				t.Fatalf("%d images, want 1", len(res.Images))
			}
			img := res.Images[0]
			cfg, format, err := image.DecodeConfig(bytes.NewReader(img.Data))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if format != tt.wantFormat || img.Format != tt.wantFormat {
				t.Errorf("format: data %q, reported %q, want %q", format, img.Format, tt.wantFormat)
			}
			if cfg.Width != tt.wantW || cfg.Height != tt.wantH || img.Width != tt.wantW || img.Height != tt.wantH {
				t.Errorf("size: data %dx%d, reported %dx%d, want %dx%d", cfg.Width, cfg.Height, img.Width, img.Height, tt.wantW, tt.wantH)
			}
			if !img.HasSeed {
				t.Error("image has no seed")
			}
		})
	}
}

func TestCountSeeds(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	res := generate(t, e, provider.Request{Prompt: "p", Seed: 41, HasSeed: true, Count: 3, Width: 16, Height: 16})
	if len(res.Images) != 3 {
		t.Fatalf("%d images, want 3", len(res.Images))
	}
	for i, img := range res.Images {
		if img.Seed != 41+int64(i) {
			t.Errorf("image %d seed = %d, want %d", i, img.Seed, 41+i)
		}
	}
	single := generate(t, e, provider.Request{Prompt: "p", Seed: 42, HasSeed: true, Width: 16, Height: 16})
	if !bytes.Equal(res.Images[1].Data, single.Images[0].Data) {
		t.Error("second image of a batch differs from a single call with its seed")
	}

	// Without a seed one is derived from the prompt, and reported.
	a := generate(t, e, provider.Request{Prompt: "p", Width: 16, Height: 16}).Images[0]
	b := generate(t, e, provider.Request{Prompt: "p", Width: 16, Height: 16}).Images[0]
	if !a.HasSeed || a.Seed != b.Seed || !bytes.Equal(a.Data, b.Data) {
		t.Errorf("unseeded calls: seeds %d/%d (HasSeed %v), equal bytes %v", a.Seed, b.Seed, a.HasSeed, bytes.Equal(a.Data, b.Data))
	}
}

func TestInvalidRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     provider.Request
		wantMsg string
	}{
		{"too big", provider.Request{Width: MaxSize + 1, Height: 512}, "between 8 and 4096"},
		{"too small", provider.Request{Width: 7, Height: 512}, "between 8 and 4096"},
		{"format", provider.Request{Format: "gif"}, "png, jpeg or webp"},
		{"count", provider.Request{Count: MaxCount + 1}, "at most"},
		{"ratio", provider.Request{AspectRatio: "wide"}, "W:H"},
		{"latency", provider.Request{Options: map[string]string{"latency": "abc"}}, "latency=\"abc\""},
		{"negative latency", provider.Request{Options: map[string]string{"latency": "-1s"}}, "duration"},
		{"jitter", provider.Request{Options: map[string]string{"opt.jitter": "soon"}}, "jitter"},
		{"failure rate", provider.Request{Options: map[string]string{"failure_rate": "2"}}, "between 0 and 1"},
		{"failure rate word", provider.Request{Options: map[string]string{"failure_rate": "often"}}, "failure_rate"},
	}
	e := newEngine(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.req.Prompt = "p"
			_, err := e.Generate(context.Background(), tt.req)
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != provider.Invalid {
				t.Fatalf("err = %v, want a provider.Invalid error", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("message %q does not mention %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{FailureRate: 1.5}, {FailureRate: -0.1}, {Latency: -time.Second}, {Jitter: time.Hour}, {MaxRenders: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestRenderSlots: an image is drawn only in a free render slot. With the
// engine's one slot taken, a call waits for it (and gives up, retryable,
// when its context ends); once freed, calls draw again.
func TestRenderSlots(t *testing.T) {
	t.Parallel()
	if DefaultRenders() < 1 {
		t.Fatalf("DefaultRenders() = %d, want at least 1", DefaultRenders())
	}
	e := newEngine(t, Config{MaxRenders: 1})
	if cap(e.renders) != 1 {
		t.Fatalf("%d render slots, want 1", cap(e.renders))
	}
	req := provider.Request{Prompt: "p", Width: 8, Height: 8}
	e.renders <- struct{}{} // another call is drawing
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Generate(ctx, req)
	if !errors.Is(err, context.DeadlineExceeded) || provider.ClassOf(err) != provider.Retryable {
		t.Fatalf("Generate with no free slot = %v (class %s), want a retryable deadline error", err, provider.ClassOf(err))
	}
	<-e.renders
	if _, err := e.Generate(t.Context(), req); err != nil {
		t.Fatalf("Generate with the slot free: %v", err)
	}
	if len(e.renders) != 0 {
		t.Errorf("%d slots still taken after the call, want 0", len(e.renders))
	}
	if def := newEngine(t, Config{}); cap(def.renders) != DefaultRenders() {
		t.Errorf("default engine has %d slots, want %d", cap(def.renders), DefaultRenders())
	}
}

func TestLatencyCancel(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Generate(ctx, provider.Request{Prompt: "p", Width: 8, Height: 8, Options: map[string]string{"latency": "1m"}})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want one wrapping context.Canceled", err)
		}
		if provider.ClassOf(err) != provider.Retryable {
			t.Errorf("class = %s, want retryable", provider.ClassOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Generate kept waiting after cancel")
	}
}

func TestLatencyHonoured(t *testing.T) {
	t.Parallel()
	// Only a lower bound: the wait must happen. No upper bound, because the
	// machine may be slow.
	e := newEngine(t, Config{Latency: 30 * time.Millisecond})
	start := time.Now()
	res := generate(t, e, provider.Request{Prompt: "p", Width: 8, Height: 8})
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("call took %s, want at least the 30ms latency", el)
	}
	if res.Latency < 30*time.Millisecond {
		t.Errorf("Result.Latency = %s, want at least 30ms", res.Latency)
	}
}

func TestFailureRateAlways(t *testing.T) {
	t.Parallel()
	e := newEngine(t, Config{})
	for range 20 {
		_, err := e.Generate(context.Background(), provider.Request{Prompt: "p", Width: 8, Height: 8,
			Options: map[string]string{"failure_rate": "1"}})
		var pe *provider.Error
		if !errors.As(err, &pe) {
			t.Fatalf("err = %v, want a *provider.Error", err)
		}
		if pe.Class != provider.Retryable || pe.Status != 503 || !strings.Contains(pe.Message, "simulated failure") {
			t.Fatalf("err = %+v, want retryable 503 simulated failure", pe)
		}
	}
}

func TestFailureRateSometimes(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		e := newEngine(t, Config{FailureRate: 0.3, RandSeed: seed})
		failed := 0
		for range 100 {
			_, err := e.Generate(context.Background(), provider.Request{Prompt: "p", Width: 8, Height: 8})
			if err != nil {
				if provider.ClassOf(err) != provider.Retryable {
					t.Fatalf("failure class %s, want retryable: %v", provider.ClassOf(err), err)
				}
				failed++
			}
		}
		// With p=0.3 over 100 calls, 10..50 failures covers far beyond 4
		// standard deviations; the seeded source makes it repeatable.
		if failed < 10 || failed > 50 {
			t.Errorf("seed %d: %d of 100 calls failed, want about 30", seed, failed)
		}
	}
}

func TestSeededFailuresReplay(t *testing.T) {
	t.Parallel()
	pattern := func() string {
		e := newEngine(t, Config{FailureRate: 0.5, RandSeed: 99})
		var b strings.Builder
		for range 40 {
			if _, err := e.Generate(context.Background(), provider.Request{Prompt: "p", Width: 8, Height: 8}); err != nil {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	if a, b := pattern(), pattern(); a != b {
		t.Errorf("same RandSeed gave different failure sequences:\n%s\n%s", a, b)
	}
}

func TestCaptionDrawn(t *testing.T) {
	t.Parallel()
	// The caption strip at the bottom carries light text pixels (the
	// picture above it is drawn in palette colours, never this grey).
	img := render("a blue sea", 5, 256, 128)
	light := 0
	for y := 128 - 19; y < 128; y++ {
		for x := 0; x < 256; x++ {
			if img.RGBAAt(x, y).R == 0xf0 && img.RGBAAt(x, y).G == 0xf0 {
				light++
			}
		}
	}
	if light < 100 {
		t.Errorf("found %d caption text pixels, want a line of text", light)
	}
}

func BenchmarkGenerate64PNG(b *testing.B) {
	benchmarkGenerate(b, 64, "png")
}

func BenchmarkGenerate256PNG(b *testing.B) {
	benchmarkGenerate(b, 256, "png")
}

func BenchmarkGenerate1024JPEG(b *testing.B) {
	benchmarkGenerate(b, 1024, "jpeg")
}

func benchmarkGenerate(b *testing.B, size int, format string) {
	e := newEngine(b, Config{})
	req := provider.Request{Prompt: "a red fox in a snowy forest at dusk, oil painting", Seed: 3, HasSeed: true,
		Width: size, Height: size, Format: format}
	for b.Loop() {
		if _, err := e.Generate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
