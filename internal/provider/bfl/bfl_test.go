package bfl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/bfl"
	"bulkgen/internal/provider/bfl/bfltest"
	"bulkgen/internal/provider/providertest"
)

// baseRequest is valid for flux-2-pro on the contract server.
var baseRequest = provider.Request{
	Model:  "flux-2-pro",
	Prompt: "a lighthouse at dusk",
	Width:  512,
	Height: 384,
	Format: "png",
	Count:  1,
}

type bundle struct {
	srv    *bfltest.Server
	client *bfl.Client
}

// setup starts a contract server with opt and an adapter pointed at it.
// mod, if given, adjusts the adapter's config.
func setup(t testing.TB, opt bfltest.Options, mod ...func(*bfl.Config)) *bundle {
	t.Helper()
	if opt.PendingFor == 0 {
		opt.PendingFor = 20 * time.Millisecond
	}
	srv := bfltest.NewServer(t, opt)
	cfg := bfl.Config{
		APIKey:       provider.Secret(srv.Key),
		BaseURL:      srv.URL,
		PollInterval: 5 * time.Millisecond,
		Timeout:      10 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	return &bundle{srv: srv, client: bfl.New(cfg)}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			b := setup(t, bfltest.Options{})
			return b.client, b.srv
		},
		Request:    baseRequest,
		RetryAfter: true,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      provider.Request
		wantPath string
		want     map[string]any // expected body fields (JSON-decoded)
		absent   []string
		wantW    int
		wantFmt  string
	}{
		{
			name: "flux-2 size seed format options",
			req: provider.Request{Model: "flux-2-pro", Prompt: "a red fox", Width: 1440, Height: 816,
				Seed: 42, HasSeed: true, Format: "png", Count: 1,
				Options: map[string]string{"safety_tolerance": "4", "unknown": "x"}},
			wantPath: "/v1/flux-2-pro",
			want: map[string]any{"prompt": "a red fox", "width": 1440.0, "height": 816.0, "seed": 42.0,
				"output_format": "png", "safety_tolerance": 4.0},
			absent:  []string{"unknown", "aspect_ratio", "negative_prompt"},
			wantW:   1024, // the fake caps its images at 1024 px
			wantFmt: "png",
		},
		{
			name: "flux 1.1 pro default format",
			req: provider.Request{Model: "flux-pro-1.1", Prompt: "a red fox", Width: 512, Height: 768, Count: 1,
				Options: map[string]string{"prompt_upsampling": "true"}},
			wantPath: "/v1/flux-pro-1.1",
			want:     map[string]any{"width": 512.0, "height": 768.0, "prompt_upsampling": true},
			absent:   []string{"seed", "output_format"},
			wantW:    512,
			wantFmt:  "jpeg",
		},
		{
			name: "ultra takes a ratio",
			req: provider.Request{Model: "flux-pro-1.1-ultra", Prompt: "a red fox", Width: 2752, Height: 1536,
				AspectRatio: "16:9", Format: "jpeg", Count: 1, Options: map[string]string{"raw": "true"}},
			wantPath: "/v1/flux-pro-1.1-ultra",
			want:     map[string]any{"aspect_ratio": "16:9", "raw": true, "output_format": "jpeg"},
			absent:   []string{"width", "height"},
			wantW:    1024,
			wantFmt:  "jpeg",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bfltest.Options{})
			res, err := providertest.Generate(t, b.client, tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			providertest.CheckResult(t, tt.req, res)
			last := b.srv.LastRequest()
			if last.Path != tt.wantPath {
				t.Errorf("path = %q, want %q", last.Path, tt.wantPath)
			}
			if got := last.Header.Get("x-key"); got != b.srv.Key {
				t.Errorf("x-key = %q, want the configured key", got)
			}
			var body map[string]any
			if err := json.Unmarshal(last.Body, &body); err != nil {
				t.Fatalf("body: %v", err)
			}
			for k, v := range tt.want {
				if body[k] != v {
					t.Errorf("body[%q] = %#v, want %#v", k, body[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := body[k]; ok {
					t.Errorf("body has %q, want it absent", k)
				}
			}
			img := res.Images[0]
			if img.Width != tt.wantW || img.Format != tt.wantFmt {
				t.Errorf("image %s %dpx wide, want %s %dpx", img.Format, img.Width, tt.wantFmt, tt.wantW)
			}
			if res.RequestID == "" {
				t.Error("no RequestID")
			}
			if tt.req.HasSeed && (!img.HasSeed || img.Seed != tt.req.Seed) {
				t.Errorf("seed = %d (has %v), want %d", img.Seed, img.HasSeed, tt.req.Seed)
			}
		})
	}
}

func TestCountMakesOneTaskPerImage(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{})
	req := baseRequest
	req.Count, req.Seed, req.HasSeed = 3, 100, true
	res, err := providertest.Generate(t, b.client, req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, req, res)
	if got := b.srv.Calls(); got != 3 {
		t.Errorf("submits = %d, want 3", got)
	}
	seen := map[int64]bool{}
	for _, img := range res.Images {
		seen[img.Seed] = true
	}
	for _, s := range []int64{100, 101, 102} {
		if !seen[s] {
			t.Errorf("no image with seed %d (got %v)", s, seen)
		}
	}
}

func TestModeratedImageIsFiltered(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{})
	b.srv.InjectStatus(bfltest.StatusContentModerated, 1)
	req := baseRequest
	req.Count = 2
	res, err := providertest.Generate(t, b.client, req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(res.Images) != 1 || res.Filtered != 1 {
		t.Errorf("got %d images, %d filtered; want 1 and 1", len(res.Images), res.Filtered)
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		httpStatus int
		taskStatus string
		wrongKey   bool
		class      provider.Class
		code       string
	}{
		{name: "401 missing key", httpStatus: 401, class: provider.Auth},
		{name: "402 out of credits", httpStatus: 402, class: provider.Auth},
		{name: "403 forbidden", httpStatus: 403, class: provider.Auth},
		{name: "wrong key", wrongKey: true, class: provider.Auth},
		{name: "422 invalid", httpStatus: 422, class: provider.Invalid},
		{name: "400 bad request", httpStatus: 400, class: provider.Invalid},
		{name: "429 too many tasks", httpStatus: 429, class: provider.Retryable, code: "rate_limit_exceeded"},
		{name: "500", httpStatus: 500, class: provider.Retryable},
		{name: "503", httpStatus: 503, class: provider.Retryable},
		{name: "request moderated", taskStatus: bfltest.StatusRequestModerated, class: provider.Rejected, code: "Request Moderated"},
		{name: "content moderated", taskStatus: bfltest.StatusContentModerated, class: provider.Rejected, code: "Content Moderated"},
		{name: "task error", taskStatus: bfltest.StatusError, class: provider.Retryable, code: "Error"},
		{name: "task not found", taskStatus: bfltest.StatusTaskNotFound, class: provider.Retryable, code: "Task not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bfltest.Options{}, func(c *bfl.Config) {
				if tt.wrongKey {
					c.APIKey = "not-the-key-0123456789"
				}
			})
			if tt.httpStatus != 0 {
				b.srv.InjectHTTP(tt.httpStatus, 1)
			}
			if tt.taskStatus != "" {
				b.srv.InjectStatus(tt.taskStatus, 1)
			}
			_, err := providertest.Generate(t, b.client, baseRequest)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Class != tt.class {
				t.Errorf("class = %s, want %s (%v)", pe.Class, tt.class, err)
			}
			if tt.httpStatus != 0 && pe.Status != tt.httpStatus {
				t.Errorf("status = %d, want %d", pe.Status, tt.httpStatus)
			}
			if tt.code != "" && pe.Code != tt.code {
				t.Errorf("code = %q, want %q", pe.Code, tt.code)
			}
			if pe.Message == "" {
				t.Error("no message")
			}
		})
	}
}

func TestInvalidDetailIsSummarised(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{})
	b.srv.InjectHTTP(422, 1)
	_, err := providertest.Generate(t, b.client, baseRequest)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Message != "width: Input should be a multiple of 16" {
		t.Errorf("err = %v, want the FastAPI detail as 'width: Input should be a multiple of 16'", err)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  bfltest.Options
		want time.Duration
	}{
		{"header", bfltest.Options{RetryAfter: 3}, 3 * time.Second},
		{"body only", bfltest.Options{RetryAfter: 4, RetryAfterInBody: true}, 4 * time.Second},
		{"none given", bfltest.Options{RetryAfter: -1}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opt)
			b.srv.InjectHTTP(http.StatusTooManyRequests, 1)
			_, err := providertest.Generate(t, b.client, baseRequest)
			if got := provider.RetryAfterOf(err); got != tt.want {
				t.Errorf("RetryAfter = %s, want %s (err %v)", got, tt.want, err)
			}
		})
	}
}

func TestActiveTaskLimitThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{MaxActive: 1, PendingFor: 500 * time.Millisecond})
	// Occupy the only slot with a task of our own.
	hreq, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/flux-2-pro", bytes.NewReader([]byte(`{"prompt":"x"}`)))
	hreq.Header.Set("x-key", b.srv.Key)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("occupying submit: %s", resp.Status)
	}

	_, err = providertest.Generate(t, b.client, baseRequest)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Status != 429 || pe.Class != provider.Retryable || pe.RetryAfter <= 0 {
		t.Fatalf("err = %v, want a retryable 429 with a delay", err)
	}
	// Retry as the queue would, until the slot frees up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := providertest.Generate(t, b.client, baseRequest)
		if err == nil {
			providertest.CheckResult(t, baseRequest, res)
			return
		}
		if provider.ClassOf(err) != provider.Retryable || time.Now().After(deadline) {
			t.Fatalf("retry: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCreditBudget(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{Credits: 1})
	if _, err := providertest.Generate(t, b.client, baseRequest); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err := providertest.Generate(t, b.client, baseRequest)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Status != 402 || pe.Class != provider.Auth {
		t.Fatalf("err = %v, want 402 auth", err)
	}
}

func TestCancelMidPoll(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{})
	b.srv.Inject(providertest.Slow, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(ctx, baseRequest)
		done <- err
	}()
	for b.srv.Active(b.srv.Key) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want one wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Generate did not return after cancel")
	}
}

func TestPollTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{}, func(c *bfl.Config) { c.Timeout = 150 * time.Millisecond })
	b.srv.Inject(providertest.Slow, 1)
	_, err := providertest.Generate(t, b.client, baseRequest)
	if provider.ClassOf(err) != provider.Retryable || !errors.Is(err, provider.ErrTimeout) {
		t.Fatalf("err = %v, want retryable wrapping ErrTimeout", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("a timeout must not look like a cancellation: %v", err)
	}
}

func TestOversizedSampleRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{SampleBytes: 200_000}, func(c *bfl.Config) {
		c.Fetcher = &provider.Fetcher{MaxBytes: 100_000, AllowAddrs: provider.AllowBase(c.BaseURL)}
	})
	_, err := providertest.Generate(t, b.client, baseRequest)
	if !errors.Is(err, provider.ErrTooLarge) {
		t.Fatalf("err = %v, want one wrapping ErrTooLarge", err)
	}
}

func TestSampleRedirectFollowed(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{RedirectSample: true})
	res, err := providertest.Generate(t, b.client, baseRequest)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, baseRequest, res)
}

func TestSampleOnPrivateAddressRefused(t *testing.T) {
	t.Parallel()
	for _, redirect := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "redirect"}[redirect]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Another loopback server: internal, and not the provider's own
			// address, so the default fetcher must not touch it.
			var hits atomic.Int32
			internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
			}))
			t.Cleanup(internal.Close)
			b := setup(t, bfltest.Options{SampleBase: internal.URL, RedirectSample: redirect})
			_, err := providertest.Generate(t, b.client, baseRequest)
			if !errors.Is(err, provider.ErrPrivateAddress) {
				t.Fatalf("err = %v, want one wrapping ErrPrivateAddress", err)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("internal server got %d requests, want 0", n)
			}
		})
	}
}

func TestExpiredSample(t *testing.T) {
	t.Parallel()
	b := setup(t, bfltest.Options{SampleTTL: time.Nanosecond})
	_, err := providertest.Generate(t, b.client, baseRequest)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.Retryable || pe.Status != http.StatusForbidden {
		t.Fatalf("err = %v, want a retryable 403 from the expired sample URL", err)
	}
}

func TestBadSizeRefusedBeforeSubmit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  provider.Request
	}{
		{"flux-2 not multiple of 16", provider.Request{Model: "flux-2-pro", Prompt: "x", Width: 1000, Height: 1000}},
		{"flux-2 over 4MP", provider.Request{Model: "flux-2-pro", Prompt: "x", Width: 4096, Height: 2048}},
		{"flux-2 under 64", provider.Request{Model: "flux-2-pro", Prompt: "x", Width: 48, Height: 64}},
		{"flux 1.1 not multiple of 32", provider.Request{Model: "flux-pro-1.1", Prompt: "x", Width: 1008, Height: 1024}},
		{"flux 1.1 over 1440", provider.Request{Model: "flux-pro-1.1", Prompt: "x", Width: 1472, Height: 1024}},
		{"webp", provider.Request{Model: "flux-2-pro", Prompt: "x", Format: "webp"}},
		{"bad option", provider.Request{Model: "flux-2-pro", Prompt: "x", Options: map[string]string{"safety_tolerance": "9"}}},
		{"empty prompt", provider.Request{Model: "flux-2-pro"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bfltest.Options{})
			_, err := providertest.Generate(t, b.client, tt.req)
			if provider.ClassOf(err) != provider.Invalid {
				t.Errorf("err = %v, want invalid", err)
			}
			if n := b.srv.Calls(); n != 0 {
				t.Errorf("server got %d submits, want 0", n)
			}
		})
	}
}
