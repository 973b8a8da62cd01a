package stability_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/providertest"
	"bulkgen/internal/provider/stability"
	"bulkgen/internal/provider/stability/stabilitytest"
)

// setup starts a contract server with opt and a client against it; edit
// adjusts the client's Config before New.
func setup(t *testing.T, opt stabilitytest.Options, edit ...func(*stability.Config)) (*stability.Client, *stabilitytest.Server) {
	t.Helper()
	if opt.MaxSide == 0 {
		opt.MaxSide = 96 // small images keep the suite fast
	}
	srv := stabilitytest.NewServer(t, opt)
	cfg := stability.Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL}
	for _, e := range edit {
		e(&cfg)
	}
	return stability.New(cfg), srv
}

func baseRequest() provider.Request {
	return provider.Request{Model: "core", Prompt: "a lighthouse at dusk", AspectRatio: "1:1", Format: "png", Count: 1}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			c, srv := setup(t, stabilitytest.Options{})
			return c, srv
		},
		Request:    baseRequest(),
		RetryAfter: true,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      provider.Request
		wantPath string
		want     map[string]string
		absent   []string
		format   string
	}{
		{
			name:     "core minimal",
			req:      provider.Request{Model: "core", Prompt: "a cat"},
			wantPath: "/v2beta/stable-image/generate/core",
			want:     map[string]string{"prompt": "a cat"},
			absent:   []string{"seed", "model", "negative_prompt", "aspect_ratio", "style_preset", "output_format"},
			format:   "png",
		},
		{
			name: "ultra with every field",
			req: provider.Request{Model: "ultra", Prompt: "a cat", NegativePrompt: "dogs", AspectRatio: "16:9",
				Format: "webp", Style: "anime", Seed: 42, HasSeed: true, Count: 1},
			wantPath: "/v2beta/stable-image/generate/ultra",
			want: map[string]string{"prompt": "a cat", "negative_prompt": "dogs", "aspect_ratio": "16:9",
				"output_format": "webp", "style_preset": "anime", "seed": "42"},
			absent: []string{"model"},
			format: "webp",
		},
		{
			name: "sd3 model name and cfg_scale option",
			req: provider.Request{Model: "sd3.5-large-turbo", Prompt: "a cat", Format: "jpeg", AspectRatio: "9:21",
				Options: map[string]string{"cfg_scale": "2.5"}},
			wantPath: "/v2beta/stable-image/generate/sd3",
			want:     map[string]string{"model": "sd3.5-large-turbo", "cfg_scale": "2.5", "output_format": "jpeg", "aspect_ratio": "9:21"},
			format:   "jpeg",
		},
		{
			name:     "explicit zero seed is sent",
			req:      provider.Request{Model: "sd3", Prompt: "a cat", HasSeed: true},
			wantPath: "/v2beta/stable-image/generate/sd3",
			want:     map[string]string{"seed": "0"},
			absent:   []string{"model"},
			format:   "png",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, stabilitytest.Options{})
			res, err := c.Generate(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			providertest.CheckResult(t, tt.req, res)
			if got := res.Images[0].Format; got != tt.format {
				t.Errorf("format = %q, want %q", got, tt.format)
			}
			last := srv.LastRequest()
			if last.Path != tt.wantPath {
				t.Errorf("path = %q, want %q", last.Path, tt.wantPath)
			}
			if last.ContentType != "multipart/form-data" {
				t.Errorf("content type = %q, want multipart/form-data", last.ContentType)
			}
			if got := last.Header.Get("Accept"); got != "application/json" {
				t.Errorf("Accept = %q, want application/json", got)
			}
			if got := last.Header.Get("Authorization"); got != "Bearer "+srv.Key {
				t.Errorf("Authorization = %q, want the bearer key", got)
			}
			for k, v := range tt.want {
				if got := last.Fields[k]; got != v {
					t.Errorf("field %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := last.Fields[k]; ok {
					t.Errorf("field %s = %q, want it absent", k, v)
				}
			}
			if tt.req.HasSeed && tt.req.Seed != 0 && (!res.Images[0].HasSeed || res.Images[0].Seed != tt.req.Seed) {
				t.Errorf("image seed = %d (%v), want %d", res.Images[0].Seed, res.Images[0].HasSeed, tt.req.Seed)
			}
		})
	}
}

func TestSeveralImagesAreSeveralCalls(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, stabilitytest.Options{})
	req := baseRequest()
	req.Count, req.Seed, req.HasSeed = 3, 4294967293, true
	res, err := c.Generate(context.Background(), req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, req, res)
	if got := srv.Calls(); got != 3 {
		t.Errorf("calls = %d, want 3", got)
	}
	// Seeds step by one and wrap inside the accepted range.
	for i, want := range []int64{4294967293, 4294967294, 1} {
		if got := res.Images[i].Seed; got != want {
			t.Errorf("image %d seed = %d, want %d", i, got, want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	body := func(name, msg string) string {
		return `{"id":"abc123","name":"` + name + `","errors":["` + msg + `"]}`
	}
	tests := []struct {
		name  string
		resp  stabilitytest.Response
		class provider.Class
		code  string
	}{
		{"400 bad request", stabilitytest.Response{Status: 400, Body: body("bad_request", "aspect_ratio: invalid")}, provider.Invalid, "bad_request"},
		{"401 unauthorized", stabilitytest.Response{Status: 401, Body: body("unauthorized", "bad key")}, provider.Auth, "unauthorized"},
		{"402 no credit", stabilitytest.Response{Status: 402, Body: body("payment_required", "insufficient credits")}, provider.Auth, "payment_required"},
		{"403 moderation", stabilitytest.Response{Status: 403, Body: body("content_moderation", "flagged")}, provider.Rejected, "content_moderation"},
		{"403 other", stabilitytest.Response{Status: 403, Body: body("forbidden", "account disabled")}, provider.Auth, "forbidden"},
		{"413 too large", stabilitytest.Response{Status: 413, Body: body("payload_too_large", "too big")}, provider.Invalid, "payload_too_large"},
		{"422 language", stabilitytest.Response{Status: 422, Body: body("invalid_language", "English only")}, provider.Invalid, "invalid_language"},
		{"429 throttled", stabilitytest.Response{Status: 429, Body: body("rate_limit_exceeded", "slow down")}, provider.Retryable, "rate_limit_exceeded"},
		{"500 internal", stabilitytest.Response{Status: 500, Body: body("internal_error", "oops")}, provider.Retryable, "internal_error"},
		{"502 not JSON", stabilitytest.Response{Status: 502, Body: "<html>bad gateway</html>"}, provider.Retryable, ""},
		{"200 unknown finish", stabilitytest.Response{Status: 200, Body: `{"image":"","finish_reason":"ERROR","seed":1}`}, provider.Retryable, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, stabilitytest.Options{})
			srv.InjectResponse(tt.resp, 1)
			_, err := c.Generate(context.Background(), baseRequest())
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Class != tt.class || pe.Code != tt.code {
				t.Errorf("class, code = %s, %q; want %s, %q (%v)", pe.Class, pe.Code, tt.class, tt.code, err)
			}
			if pe.Message == "" {
				t.Errorf("empty message")
			}
			if pe.Status == 200 || pe.Status == 0 {
				return
			}
			if pe.Status != tt.resp.Status {
				t.Errorf("status = %d, want %d", pe.Status, tt.resp.Status)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"header honoured", http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"no header means the documented lockout", nil, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, stabilitytest.Options{})
			srv.InjectResponse(stabilitytest.Response{Status: 429, Header: tt.header, Body: `{"id":"x","name":"rate_limit_exceeded","errors":["slow down"]}`}, 1)
			_, err := c.Generate(context.Background(), baseRequest())
			if got := provider.RetryAfterOf(err); got != tt.want {
				t.Errorf("RetryAfter = %s, want %s (%v)", got, tt.want, err)
			}
		})
	}
}

func TestRateLimitLockout(t *testing.T) {
	t.Parallel()
	// The server refuses every call during the lockout, and reports the
	// time left when asked to send Retry-After.
	c, srv := setup(t, stabilitytest.Options{Lockout: time.Hour, RetryAfterHeader: true})
	srv.Inject(providertest.RateLimit, 1)
	for i := range 2 {
		_, err := c.Generate(context.Background(), baseRequest())
		if provider.ClassOf(err) != provider.Retryable {
			t.Fatalf("call %d: err = %v, want retryable", i, err)
		}
		if got := provider.RetryAfterOf(err); got < 59*time.Minute {
			t.Errorf("call %d: RetryAfter = %s, want about an hour", i, got)
		}
	}
}

func TestRateLimitWindow(t *testing.T) {
	t.Parallel()
	// Exceeding the window starts the lockout: the third call is refused.
	c, srv := setup(t, stabilitytest.Options{RateLimit: 2, RateWindow: time.Hour, Lockout: time.Hour})
	ctx := context.Background()
	for i := range 2 {
		if _, err := c.Generate(ctx, baseRequest()); err != nil {
			t.Fatalf("call %d within the limit: %v", i, err)
		}
	}
	_, err := c.Generate(ctx, baseRequest())
	if provider.ClassOf(err) != provider.Retryable || provider.RetryAfterOf(err) != 60*time.Second {
		t.Fatalf("third call: err = %v, want retryable after the 60s lockout", err)
	}
	if srv.Calls() != 3 {
		t.Errorf("calls = %d, want 3", srv.Calls())
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, stabilitytest.Options{Lockout: 100 * time.Millisecond})
	srv.Inject(providertest.RateLimit, 1)
	ctx := context.Background()
	if _, err := c.Generate(ctx, baseRequest()); provider.ClassOf(err) != provider.Retryable {
		t.Fatalf("first call: err = %v, want retryable", err)
	}
	// Wait out the (shortened) lockout, as the queue would.
	time.Sleep(150 * time.Millisecond)
	res, err := c.Generate(ctx, baseRequest())
	if err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	providertest.CheckResult(t, baseRequest(), res)
	if srv.Calls() != 2 {
		t.Errorf("calls = %d, want 2", srv.Calls())
	}
}

func TestContentFiltered(t *testing.T) {
	t.Parallel()
	t.Run("some", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, stabilitytest.Options{})
		srv.Filter(1)
		req := baseRequest()
		req.Count = 3
		res, err := c.Generate(context.Background(), req)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if len(res.Images) != 2 || res.Filtered != 1 {
			t.Errorf("got %d images, %d filtered; want 2, 1", len(res.Images), res.Filtered)
		}
		providertest.CheckResult(t, req, res)
	})
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, stabilitytest.Options{})
		srv.Filter(2)
		req := baseRequest()
		req.Count = 2
		_, err := c.Generate(context.Background(), req)
		if provider.ClassOf(err) != provider.Rejected {
			t.Fatalf("err = %v, want rejected", err)
		}
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, stabilitytest.Options{}, func(cfg *stability.Config) { cfg.Timeout = 100 * time.Millisecond })
	srv.Inject(providertest.Slow, 1)
	_, err := c.Generate(context.Background(), baseRequest())
	if !errors.Is(err, provider.ErrTimeout) || provider.ClassOf(err) != provider.Retryable {
		t.Fatalf("err = %v, want retryable wrapping provider.ErrTimeout", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("a timeout must not look like the caller's cancellation: %v", err)
	}
}

func TestOversizedImageRefused(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, stabilitytest.Options{OutputPadding: 4096}, func(cfg *stability.Config) {
		cfg.Fetcher = &provider.Fetcher{MaxBytes: 2048}
	})
	_, err := c.Generate(context.Background(), baseRequest())
	if !errors.Is(err, provider.ErrTooLarge) {
		t.Fatalf("err = %v, want one wrapping provider.ErrTooLarge", err)
	}
}

func TestLocalValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*provider.Request)
	}{
		{"unknown model", func(r *provider.Request) { r.Model = "dall-e-3" }},
		{"seed too large", func(r *provider.Request) { r.Seed, r.HasSeed = 4294967295, true }},
		{"negative seed", func(r *provider.Request) { r.Seed, r.HasSeed = -1, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, stabilitytest.Options{})
			req := baseRequest()
			tt.edit(&req)
			if _, err := c.Generate(context.Background(), req); provider.ClassOf(err) != provider.Invalid {
				t.Errorf("err = %v, want invalid", err)
			}
			if srv.Calls() != 0 {
				t.Errorf("calls = %d, want none", srv.Calls())
			}
		})
	}
}

func TestServerValidationIsInvalid(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, stabilitytest.Options{})
	req := baseRequest()
	req.AspectRatio = "7:3"
	_, err := c.Generate(context.Background(), req)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.Invalid || pe.Status != 400 || !strings.Contains(pe.Message, "aspect_ratio") {
		t.Fatalf("err = %v, want invalid 400 naming aspect_ratio", err)
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	const key = "sk-secret-0123456789abcdef"
	srv := stabilitytest.NewServer(t, stabilitytest.Options{Key: key + "-other", EchoKey: true, MaxSide: 64})
	c := stability.New(stability.Config{APIKey: key, BaseURL: srv.URL})
	_, err := c.Generate(context.Background(), baseRequest())
	if provider.ClassOf(err) != provider.Auth {
		t.Fatalf("err = %v, want auth", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("error shows the key: %v", err)
	}

	// Unreachable server: the network error must not show it either.
	c = stability.New(stability.Config{APIKey: key, BaseURL: "http://127.0.0.1:1"})
	_, err = c.Generate(context.Background(), baseRequest())
	if err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("err = %v, want an error without the key", err)
	}
}
