// Package providertest is the conformance suite every provider adapter runs
// against its local contract server: success shape, each error class,
// Retry-After, retry-then-success, cancellation, slow answers.
//
// An adapter's test calls Run with a Harness whose Controller drives the
// adapter's contract server (package <name>test) into each situation the
// way the real API would behave in it.
package providertest

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/jpeg" // decoders for checking returned images
	_ "image/png"
	"testing"
	"time"

	_ "golang.org/x/image/webp"

	"bulkgen/internal/provider"
)

// Fault is a situation the contract server answers the next call with.
type Fault int

const (
	// None: answer normally.
	None Fault = iota
	// RateLimit: the provider's throttling answer (429 or its equivalent),
	// with a retry delay of one second where the provider gives delays.
	RateLimit
	// ServerError: a 5xx (or the provider's transient failure state).
	ServerError
	// ContentPolicy: the provider's content-policy refusal.
	ContentPolicy
	// BadAuth: the provider's answer to a wrong or revoked key.
	BadAuth
	// InvalidRequest: the provider's answer to a request it finds invalid.
	InvalidRequest
	// Slow: the server holds the answer (or keeps an async task pending)
	// for at least 30 seconds, so that the caller's cancellation is tested.
	Slow
)

func (f Fault) String() string {
	return [...]string{"none", "rate-limit", "server-error", "content-policy", "bad-auth", "invalid-request", "slow"}[f]
}

// Controller steers a contract server.
type Controller interface {
	// Inject makes the server answer the next n generation calls with f
	// (for async providers: the next n tasks end in f, or their submit is
	// refused with f, as the real API would do it). Then it answers
	// normally again.
	Inject(f Fault, n int)
	// Calls reports how many generation calls (submits) the server has
	// received so far.
	Calls() int
}

// Harness builds one adapter against a fresh contract server.
type Harness struct {
	// New starts a contract server (closed by t.Cleanup) and returns an
	// adapter configured against it plus the server's controller.
	New func(t *testing.T) (provider.Provider, Controller)
	// Request is a valid request for the server's default model.
	Request provider.Request
	// Unsupported lists faults the provider cannot produce (e.g. ComfyUI
	// has no auth and no rate limit); their subtests are skipped.
	Unsupported []Fault
	// RetryAfter is true when the provider communicates a retry delay on
	// throttling, so the suite checks the adapter reports it.
	RetryAfter bool
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	unsupported := map[Fault]bool{}
	for _, f := range h.Unsupported {
		unsupported[f] = true
	}

	t.Run("success", func(t *testing.T) {
		t.Parallel()
		p, _ := h.New(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := p.Generate(ctx, h.Request)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		CheckResult(t, h.Request, res)
	})

	classes := []struct {
		fault Fault
		class provider.Class
	}{
		{RateLimit, provider.Retryable},
		{ServerError, provider.Retryable},
		{ContentPolicy, provider.Rejected},
		{BadAuth, provider.Auth},
		{InvalidRequest, provider.Invalid},
	}
	for _, c := range classes {
		t.Run("error/"+c.fault.String(), func(t *testing.T) {
			t.Parallel()
			if unsupported[c.fault] {
				t.Skipf("%s cannot happen with this provider", c.fault)
			}
			p, ctl := h.New(t)
			ctl.Inject(c.fault, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := p.Generate(ctx, h.Request)
			if err == nil {
				t.Fatalf("Generate succeeded, want a %s error", c.class)
			}
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
			}
			if pe.Class != c.class {
				t.Fatalf("class = %s, want %s (error: %v)", pe.Class, c.class, err)
			}
			if pe.Message == "" && pe.Err == nil {
				t.Errorf("error carries no message from the provider")
			}
			if c.fault == RateLimit && h.RetryAfter && pe.RetryAfter <= 0 {
				t.Errorf("rate limit error has no RetryAfter: %v", err)
			}
		})
	}

	t.Run("retry-then-success", func(t *testing.T) {
		t.Parallel()
		if unsupported[ServerError] {
			t.Skip("no server errors with this provider")
		}
		p, ctl := h.New(t)
		ctl.Inject(ServerError, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := p.Generate(ctx, h.Request); provider.ClassOf(err) != provider.Retryable {
			t.Fatalf("first call: err = %v, want retryable", err)
		}
		res, err := p.Generate(ctx, h.Request)
		if err != nil {
			t.Fatalf("second call: %v", err)
		}
		CheckResult(t, h.Request, res)
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		if unsupported[Slow] {
			t.Skip("cannot hold an answer")
		}
		p, ctl := h.New(t)
		ctl.Inject(Slow, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := p.Generate(ctx, h.Request)
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Generate succeeded after cancel")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want one wrapping context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Generate did not return within 10s of cancel")
		}
	})
}

// CheckResult asserts that res holds req.Count (or, for providers that
// filter, at least one) decodable images whose reported format matches.
func CheckResult(t testing.TB, req provider.Request, res provider.Result) {
	t.Helper()
	want := max(req.Count, 1)
	if len(res.Images)+res.Filtered != want {
		t.Errorf("got %d images + %d filtered, want %d", len(res.Images), res.Filtered, want)
	}
	if len(res.Images) == 0 {
		t.Fatal("no images")
	}
	for i, img := range res.Images {
		cfg, format, err := image.DecodeConfig(bytes.NewReader(img.Data))
		if err != nil {
			t.Fatalf("image %d does not decode: %v", i, err)
		}
		if format != img.Format {
			t.Errorf("image %d: Format = %q, data is %q", i, img.Format, format)
		}
		if img.Width != 0 && (img.Width != cfg.Width || img.Height != cfg.Height) {
			t.Errorf("image %d: reported %dx%d, decoded %dx%d", i, img.Width, img.Height, cfg.Width, cfg.Height)
		}
	}
	if res.Preview {
		t.Errorf("an adapter result is marked Preview")
	}
}
