package fal_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/fal"
	"bulkgen/internal/provider/fal/faltest"
	"bulkgen/internal/provider/providertest"
)

const schnell = "fal-ai/flux/schnell"

// setup starts a contract server with opt and a client against it that
// polls every few milliseconds; edit adjusts the Config before New.
func setup(t *testing.T, opt faltest.Options, edit ...func(*fal.Config)) (*fal.Client, *faltest.Server) {
	t.Helper()
	if opt.MaxSide == 0 {
		opt.MaxSide = 96
	}
	srv := faltest.NewServer(t, opt)
	cfg := fal.Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL, PollInterval: 5 * time.Millisecond}
	for _, e := range edit {
		e(&cfg)
	}
	return fal.New(cfg), srv
}

func baseRequest() provider.Request {
	return provider.Request{Model: schnell, Prompt: "a lighthouse at dusk", AspectRatio: "16:9", Format: "png", Count: 2}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			c, srv := setup(t, faltest.Options{})
			return c, srv
		},
		Request: baseRequest(),
		// fal documents no retry delay for its (rare) 429s.
		RetryAfter: false,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		req    provider.Request
		want   map[string]any
		absent []string
		format string
		size   [2]int
	}{
		{
			name:   "named size from ratio",
			req:    provider.Request{Model: schnell, Prompt: "a cat", AspectRatio: "9:16", Format: "jpeg", Count: 1, Seed: 7, HasSeed: true},
			want:   map[string]any{"prompt": "a cat", "image_size": "portrait_16_9", "output_format": "jpeg", "num_images": 1.0, "seed": 7.0},
			format: "jpeg",
			size:   [2]int{54, 96},
		},
		{
			name:   "explicit pixel size wins",
			req:    provider.Request{Model: "fal-ai/flux/dev", Prompt: "a cat", Width: 64, Height: 48, AspectRatio: "4:3", Format: "png", Count: 3},
			want:   map[string]any{"num_images": 3.0, "output_format": "png"},
			absent: []string{"seed"},
			format: "png",
			size:   [2]int{64, 48},
		},
		{
			name: "options",
			req: provider.Request{Model: schnell, Prompt: "a cat", Count: 1, Options: map[string]string{
				"enable_safety_checker": "false", "num_inference_steps": "4", "guidance_scale": "3.5", "acceleration": "high",
			}},
			want: map[string]any{"enable_safety_checker": false, "num_inference_steps": 4.0, "guidance_scale": 3.5, "acceleration": "high"},
			// No ratio, size or format: the model's defaults.
			absent: []string{"image_size", "output_format"},
			format: "jpeg",
			size:   [2]int{96, 72},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, faltest.Options{})
			res, err := c.Generate(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			providertest.CheckResult(t, tt.req, res)
			img := res.Images[0]
			if img.Format != tt.format || img.Width != tt.size[0] || img.Height != tt.size[1] {
				t.Errorf("image %s %dx%d, want %s %dx%d", img.Format, img.Width, img.Height, tt.format, tt.size[0], tt.size[1])
			}
			last := srv.LastRequest()
			if last.Path != "/"+tt.req.Model {
				t.Errorf("path = %q, want /%s", last.Path, tt.req.Model)
			}
			if got := last.Header.Get("Authorization"); got != "Key "+srv.Key {
				t.Errorf("Authorization = %q, want the Key scheme", got)
			}
			for k, v := range tt.want {
				if got := last.Input[k]; got != v {
					t.Errorf("input.%s = %#v, want %#v", k, got, v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := last.Input[k]; ok {
					t.Errorf("input.%s = %#v, want it absent", k, v)
				}
			}
			if tt.req.HasSeed && (!img.HasSeed || img.Seed != tt.req.Seed) {
				t.Errorf("seed = %d (%v), want %d", img.Seed, img.HasSeed, tt.req.Seed)
			}
		})
	}
	t.Run("pixel size object", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, faltest.Options{})
		req := baseRequest()
		req.Width, req.Height = 64, 48
		if _, err := c.Generate(context.Background(), req); err != nil {
			t.Fatalf("Generate: %v", err)
		}
		size, _ := srv.LastRequest().Input["image_size"].(map[string]any)
		if size["width"] != 64.0 || size["height"] != 48.0 {
			t.Errorf("image_size = %#v, want {width:64,height:48}", srv.LastRequest().Input["image_size"])
		}
	})
}

func TestSyncModeDataURIs(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, faltest.Options{})
	req := baseRequest()
	req.Options = map[string]string{"sync_mode": "true"}
	res, err := c.Generate(context.Background(), req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, req, res)

	c, _ = setup(t, faltest.Options{OutputPadding: 8192}, func(cfg *fal.Config) {
		cfg.Fetcher = provider.NewFetcher(provider.AllowBase(cfg.BaseURL)...)
		cfg.Fetcher.MaxBytes = 4096
	})
	if _, err := c.Generate(context.Background(), req); !errors.Is(err, provider.ErrTooLarge) {
		t.Errorf("oversized data URI: err = %v, want one wrapping provider.ErrTooLarge", err)
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		submit  *faltest.Response
		result  *faltest.Response
		req     func(*provider.Request)
		class   provider.Class
		code    string
		mention string
	}{
		{name: "401", submit: &faltest.Response{Status: 401, Body: `{"detail":"No user found for Key ID and Secret"}`}, class: provider.Auth, mention: "No user found"},
		{name: "403", submit: &faltest.Response{Status: 403, Body: `{"detail":"User is locked. Reason: Exhausted balance."}`}, class: provider.Auth, mention: "Exhausted balance"},
		{name: "429", submit: &faltest.Response{Status: 429, Body: `{"detail":"Too many requests"}`}, class: provider.Retryable, mention: "Too many"},
		{name: "422 content policy", result: &faltest.Response{Status: 422, Body: `{"detail":[{"loc":["body","prompt"],"msg":"flagged","type":"content_policy_violation"}]}`}, class: provider.Rejected, code: "content_policy_violation", mention: "body.prompt: flagged"},
		{name: "422 validation", result: &faltest.Response{Status: 422, Body: `{"detail":[{"loc":["body","num_images"],"msg":"ensure this value is less than or equal to 4","type":"value_error.number.not_le"}]}`}, class: provider.Invalid, code: "value_error.number.not_le", mention: "body.num_images"},
		{name: "422 from the server's own validation", req: func(r *provider.Request) { r.Count = 5 }, class: provider.Invalid, mention: "body.num_images"},
		{name: "422 detail string", result: &faltest.Response{Status: 422, Body: `{"detail":"Unsupported image"}`}, class: provider.Invalid, mention: "Unsupported image"},
		{name: "422 marked retryable", result: &faltest.Response{Status: 422, Header: http.Header{"X-Fal-Retryable": {"true"}}, Body: `{"detail":"transient model error"}`}, class: provider.Retryable},
		{name: "500 marked not retryable", result: &faltest.Response{Status: 500, Header: http.Header{"X-Fal-Retryable": {"false"}}, Body: `{"detail":"model crashed on this input"}`}, class: provider.Invalid},
		{name: "503 startup timeout", result: &faltest.Response{Status: 503, Header: http.Header{"X-Fal-Error-Type": {"startup_timeout"}}, Body: `{"detail":"Runner did not start","error_type":"startup_timeout"}`}, class: provider.Retryable, code: "startup_timeout"},
		{name: "504 request timeout", result: &faltest.Response{Status: 504, Body: `{"detail":"Request timed out","error_type":"request_timeout"}`}, class: provider.Retryable, code: "request_timeout"},
		{name: "504 caller's own timeout", result: &faltest.Response{Status: 504, Header: http.Header{"X-Fal-Request-Timeout-Type": {"user"}}, Body: `{"detail":"Request timed out","error_type":"request_timeout"}`}, class: provider.Invalid, code: "request_timeout"},
		{name: "404 unknown model", req: func(r *provider.Request) { r.Model = "fal-ai/nothing" }, class: provider.Invalid, mention: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, faltest.Options{})
			if tt.submit != nil {
				srv.InjectSubmitResponse(*tt.submit, 1)
			}
			if tt.result != nil {
				srv.InjectResultResponse(*tt.result, 1)
			}
			req := baseRequest()
			if tt.req != nil {
				tt.req(&req)
			}
			_, err := c.Generate(context.Background(), req)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Class != tt.class {
				t.Errorf("class = %s, want %s (%v)", pe.Class, tt.class, err)
			}
			if tt.code != "" && pe.Code != tt.code {
				t.Errorf("code = %q, want %q", pe.Code, tt.code)
			}
			if !strings.Contains(pe.Message, tt.mention) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.mention)
			}
			if tt.result != nil && pe.RequestID == "" {
				t.Errorf("result error has no request id")
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, faltest.Options{})
	srv.InjectSubmitResponse(faltest.Response{Status: 429, Header: http.Header{"Retry-After": {"7"}}, Body: `{"detail":"Too many requests"}`}, 1)
	_, err := c.Generate(context.Background(), baseRequest())
	if got := provider.RetryAfterOf(err); got != 7*time.Second {
		t.Errorf("RetryAfter = %s, want 7s (%v)", got, err)
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, faltest.Options{})
	srv.Inject(providertest.RateLimit, 1)
	ctx := context.Background()
	if _, err := c.Generate(ctx, baseRequest()); provider.ClassOf(err) != provider.Retryable {
		t.Fatalf("first call: err = %v, want retryable", err)
	}
	res, err := c.Generate(ctx, baseRequest())
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	providertest.CheckResult(t, baseRequest(), res)
	if srv.Calls() != 2 {
		t.Errorf("calls = %d, want 2", srv.Calls())
	}
}

func TestConcurrencyCapQueues(t *testing.T) {
	t.Parallel()
	// With one runner, two requests both finish: the second waits in the
	// queue instead of being refused.
	c, srv := setup(t, faltest.Options{Concurrency: 1})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Generate(context.Background(), baseRequest())
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Generate: %v", err)
		}
	}
	if srv.Calls() != 2 {
		t.Errorf("calls = %d, want 2", srv.Calls())
	}
}

func TestCancelMidPoll(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, faltest.Options{})
	providertest.CheckCancelMidPoll(t, c, srv, baseRequest())
}

func TestPollTimeout(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, faltest.Options{}, func(cfg *fal.Config) { cfg.Timeout = 150 * time.Millisecond })
	providertest.CheckPollTimeout(t, c, srv, baseRequest())
}

func TestDownloads(t *testing.T) {
	t.Parallel()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the internal server was reached: %s", r.URL)
	}))
	t.Cleanup(elsewhere.Close)
	tests := []struct {
		name    string
		opt     faltest.Options
		edit    func(*fal.Config)
		wantErr error
		status  int
	}{
		{name: "oversized", opt: faltest.Options{OutputPadding: 8192}, edit: func(cfg *fal.Config) {
			cfg.Fetcher = provider.NewFetcher(provider.AllowBase(cfg.BaseURL)...)
			cfg.Fetcher.MaxBytes = 4096
		}, wantErr: provider.ErrTooLarge},
		{name: "redirect to a private address", opt: faltest.Options{RedirectOutputs: elsewhere.URL}, wantErr: provider.ErrPrivateAddress},
		{name: "expired URL", opt: faltest.Options{OutputTTL: time.Nanosecond}, status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var edits []func(*fal.Config)
			if tt.edit != nil {
				edits = append(edits, tt.edit)
			}
			c, _ := setup(t, tt.opt, edits...)
			_, err := c.Generate(context.Background(), baseRequest())
			providertest.CheckDownloadError(t, err, tt.wantErr, tt.status)
		})
	}
}

func TestNSFWFiltered(t *testing.T) {
	t.Parallel()
	t.Run("some", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, faltest.Options{})
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
		c, srv := setup(t, faltest.Options{})
		srv.Filter(2)
		if _, err := c.Generate(context.Background(), baseRequest()); provider.ClassOf(err) != provider.Rejected {
			t.Fatalf("err = %v, want rejected", err)
		}
	})
}

func TestBadModelIsInvalidLocally(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, faltest.Options{})
	for _, model := range []string{"", "flux", "/fal-ai/flux", "fal-ai/flux?x=1"} {
		req := baseRequest()
		req.Model = model
		if _, err := c.Generate(context.Background(), req); provider.ClassOf(err) != provider.Invalid {
			t.Errorf("model %q: err = %v, want invalid", model, err)
		}
	}
	if srv.Calls() != 0 {
		t.Errorf("calls = %d, want none", srv.Calls())
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	const key = "0123abcd-key-id:fedcba9876543210secret"
	srv := faltest.NewServer(t, faltest.Options{Key: "other:key", EchoKey: true})
	c := fal.New(fal.Config{APIKey: key, BaseURL: srv.URL})
	_, err := c.Generate(context.Background(), baseRequest())
	if provider.ClassOf(err) != provider.Auth {
		t.Fatalf("err = %v, want auth", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("error shows the key: %v", err)
	}
	c = fal.New(fal.Config{APIKey: key, BaseURL: "http://127.0.0.1:1"})
	if _, err = c.Generate(context.Background(), baseRequest()); err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("err = %v, want an error without the key", err)
	}
}
