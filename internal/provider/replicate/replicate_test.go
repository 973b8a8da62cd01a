package replicate_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/providertest"
	"bulkgen/internal/provider/replicate"
	"bulkgen/internal/provider/replicate/replicatetest"
)

const schnell = "black-forest-labs/flux-schnell"

// setup starts a contract server with opt and a client against it that
// polls every few milliseconds without "Prefer: wait"; edit adjusts the
// Config before New.
func setup(t *testing.T, opt replicatetest.Options, edit ...func(*replicate.Config)) (*replicate.Client, *replicatetest.Server) {
	t.Helper()
	if opt.MaxSide == 0 {
		opt.MaxSide = 96
	}
	srv := replicatetest.NewServer(t, opt)
	cfg := replicate.Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL, PollInterval: 5 * time.Millisecond, Wait: -1}
	for _, e := range edit {
		e(&cfg)
	}
	return replicate.New(cfg), srv
}

func baseRequest() provider.Request {
	return provider.Request{Model: schnell, Prompt: "a lighthouse at dusk", AspectRatio: "16:9", Format: "png", Count: 2}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			// Prefer: wait=1 while the model takes 100ms: the create call
			// answers finished, as with the real fast models.
			c, srv := setup(t, replicatetest.Options{}, func(cfg *replicate.Config) { cfg.Wait = time.Second })
			return c, srv
		},
		Request:    baseRequest(),
		RetryAfter: true,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	probe := replicatetest.NewServer(t, replicatetest.Options{})
	version := probe.Version(schnell)
	tests := []struct {
		name        string
		req         provider.Request
		wantPath    string
		wantVersion string
		want        map[string]any
		absent      []string
		format      string
	}{
		{
			name:     "official model",
			req:      provider.Request{Model: schnell, Prompt: "a cat", AspectRatio: "21:9", Format: "jpeg", Count: 3, Seed: 42, HasSeed: true},
			wantPath: "/v1/models/black-forest-labs/flux-schnell/predictions",
			want:     map[string]any{"prompt": "a cat", "aspect_ratio": "21:9", "output_format": "jpg", "num_outputs": 3.0, "seed": 42.0},
			format:   "jpeg",
		},
		{
			name:        "version id",
			req:         provider.Request{Model: version, Prompt: "a cat", Format: "webp", Count: 1},
			wantPath:    "/v1/predictions",
			wantVersion: version,
			want:        map[string]any{"output_format": "webp", "num_outputs": 1.0},
			absent:      []string{"seed", "aspect_ratio"},
			format:      "webp",
		},
		{
			name:        "owner/name:version",
			req:         provider.Request{Model: schnell + ":" + version, Prompt: "a cat", Width: 1024, Height: 768, Count: 1},
			wantPath:    "/v1/predictions",
			wantVersion: version,
			want:        map[string]any{"aspect_ratio": "4:3"},
			absent:      []string{"output_format"},
			format:      "webp",
		},
		{
			name: "typed options",
			req: provider.Request{Model: schnell, Prompt: "a cat", Count: 1, Format: "png", Options: map[string]string{
				"num_inference_steps": "3", "go_fast": "false", "megapixels": "0.25", "output_quality": "90",
				"disable_safety_checker": "true", "prompt": "overridden by the request",
			}},
			wantPath: "/v1/models/black-forest-labs/flux-schnell/predictions",
			want: map[string]any{"prompt": "a cat", "num_inference_steps": 3.0, "go_fast": false, "megapixels": "0.25",
				"output_quality": 90.0, "disable_safety_checker": true},
			format: "png",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, replicatetest.Options{})
			res, err := c.Generate(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			providertest.CheckResult(t, tt.req, res)
			if got := res.Images[0].Format; got != tt.format {
				t.Errorf("format = %q, want %q", got, tt.format)
			}
			last := srv.LastRequest()
			if last.Path != tt.wantPath || last.Version != tt.wantVersion {
				t.Errorf("path, version = %q, %q; want %q, %q", last.Path, last.Version, tt.wantPath, tt.wantVersion)
			}
			if got := last.Header.Get("Authorization"); got != "Bearer "+srv.Key {
				t.Errorf("Authorization = %q", got)
			}
			if got := last.Header.Get("Prefer"); got != "" {
				t.Errorf("Prefer = %q with Wait < 0", got)
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
			if res.RequestID == "" {
				t.Errorf("no request id")
			}
		})
	}
}

func TestPreferWait(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{}, func(cfg *replicate.Config) { cfg.Wait = 1500 * time.Millisecond })
	res, err := c.Generate(context.Background(), baseRequest())
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, baseRequest(), res)
	if got := srv.LastRequest().Header.Get("Prefer"); got != "wait=2" {
		t.Errorf("Prefer = %q, want wait=2 (seconds rounded up)", got)
	}
	if srv.Polls() != 0 {
		t.Errorf("polls = %d, want none after a held create", srv.Polls())
	}
}

func TestPollsUntilDone(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{StartTime: 30 * time.Millisecond, ProcessingTime: 300 * time.Millisecond})
	res, err := c.Generate(context.Background(), baseRequest())
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, baseRequest(), res)
	if srv.Polls() == 0 {
		t.Errorf("no polls")
	}
}

func TestStringOutput(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, replicatetest.Options{StringOutput: true})
	req := baseRequest()
	req.Count = 1
	res, err := c.Generate(context.Background(), req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, req, res)
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		resp    *replicatetest.Response
		failure string
		req     func(*provider.Request)
		class   provider.Class
		mention string
	}{
		{name: "401", resp: &replicatetest.Response{Status: 401, Body: `{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}`}, class: provider.Auth, mention: "authentication token"},
		{name: "402", resp: &replicatetest.Response{Status: 402, Body: `{"title":"Payment required","detail":"You have insufficient credit","status":402}`}, class: provider.Auth, mention: "credit"},
		{name: "422 invalid fields", resp: &replicatetest.Response{Status: 422, Body: `{"title":"Input validation failed","status":422,"detail":"- input.num_inference_steps: Must be less than or equal to 4\n","invalid_fields":[{"type":"number_lte","field":"input.num_inference_steps","description":"Must be less than or equal to 4"}]}`}, class: provider.Invalid, mention: "input.num_inference_steps: Must be less than or equal to 4"},
		{name: "422 from the server's own validation", req: func(r *provider.Request) { r.Count = 5 }, class: provider.Invalid, mention: "input.num_outputs"},
		{name: "404 unknown model", req: func(r *provider.Request) { r.Model = "someone/nothing" }, class: provider.Invalid, mention: "could not be found"},
		{name: "429", resp: &replicatetest.Response{Status: 429, Body: `{"detail":"Request was throttled. Your rate limit resets in ~30s."}`}, class: provider.Retryable, mention: "throttled"},
		{name: "500", resp: &replicatetest.Response{Status: 500, Body: `{"detail":"Internal server error"}`}, class: provider.Retryable, mention: "Internal"},
		{name: "503 not JSON", resp: &replicatetest.Response{Status: 503, Body: "upstream unavailable"}, class: provider.Retryable, mention: "upstream"},
		{name: "failed NSFW", failure: "All generated images contained NSFW content. Try running it again with a different prompt.", class: provider.Rejected, mention: "NSFW"},
		{name: "failed safety", failure: "Output flagged by the safety checker", class: provider.Rejected, mention: "safety"},
		{name: "failed other", failure: "CUDA out of memory", class: provider.Retryable, mention: "CUDA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, replicatetest.Options{})
			if tt.resp != nil {
				srv.InjectResponse(*tt.resp, 1)
			}
			if tt.failure != "" {
				srv.InjectFailure(tt.failure, 1)
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
			if !strings.Contains(pe.Message, tt.mention) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.mention)
			}
			if tt.failure != "" && pe.RequestID == "" {
				t.Errorf("failed prediction error has no request id")
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
		detail string
		want   time.Duration
	}{
		{"header", http.Header{"Retry-After": {"7"}}, "Request was throttled. Your rate limit resets in ~30s.", 7 * time.Second},
		{"from detail", nil, "Request was throttled. Your rate limit resets in ~30s.", 30 * time.Second},
		{"none", nil, "Request was throttled.", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, srv := setup(t, replicatetest.Options{})
			srv.InjectResponse(replicatetest.Response{Status: 429, Header: tt.header, Body: `{"detail":"` + tt.detail + `"}`}, 1)
			_, err := c.Generate(context.Background(), baseRequest())
			if provider.ClassOf(err) != provider.Retryable {
				t.Fatalf("err = %v, want retryable", err)
			}
			if got := provider.RetryAfterOf(err); got != tt.want {
				t.Errorf("RetryAfter = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{RetryAfterHeader: true})
	srv.Inject(providertest.RateLimit, 1)
	ctx := context.Background()
	_, err := c.Generate(ctx, baseRequest())
	if provider.ClassOf(err) != provider.Retryable || provider.RetryAfterOf(err) != time.Second {
		t.Fatalf("first call: err = %v (retry after %s), want retryable after 1s", err, provider.RetryAfterOf(err))
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

func TestCreateRateLimitWindow(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{RateLimit: 1, RateWindow: time.Hour})
	ctx := context.Background()
	if _, err := c.Generate(ctx, baseRequest()); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err := c.Generate(ctx, baseRequest())
	if provider.ClassOf(err) != provider.Retryable || provider.RetryAfterOf(err) != time.Second {
		t.Fatalf("second call: err = %v (retry after %s), want retryable after ~1s from the detail", err, provider.RetryAfterOf(err))
	}
	if srv.Calls() != 2 {
		t.Errorf("calls = %d, want 2", srv.Calls())
	}
}

func TestCancelMidPoll(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{})
	providertest.CheckCancelMidPoll(t, c, srv, baseRequest())
}

func TestPollTimeout(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{}, func(cfg *replicate.Config) { cfg.Timeout = 150 * time.Millisecond })
	providertest.CheckPollTimeout(t, c, srv, baseRequest())
}

func TestDownloads(t *testing.T) {
	t.Parallel()
	// elsewhere stands for an internal service: an address that is not the
	// provider's and not public.
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the internal server was reached: %s", r.URL)
	}))
	t.Cleanup(elsewhere.Close)
	tests := []struct {
		name    string
		opt     replicatetest.Options
		edit    func(*replicate.Config)
		wantErr error
		status  int
	}{
		{name: "oversized", opt: replicatetest.Options{OutputPadding: 8192}, edit: func(cfg *replicate.Config) {
			cfg.Fetcher = provider.NewFetcher(provider.AllowBase(cfg.BaseURL)...)
			cfg.Fetcher.MaxBytes = 4096
		}, wantErr: provider.ErrTooLarge},
		{name: "redirect to a private address", opt: replicatetest.Options{RedirectOutputs: elsewhere.URL}, wantErr: provider.ErrPrivateAddress},
		{name: "expired URL", opt: replicatetest.Options{OutputTTL: time.Nanosecond}, status: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var edits []func(*replicate.Config)
			if tt.edit != nil {
				edits = append(edits, tt.edit)
			}
			c, _ := setup(t, tt.opt, edits...)
			_, err := c.Generate(context.Background(), baseRequest())
			providertest.CheckDownloadError(t, err, tt.wantErr, tt.status)
		})
	}
}

func TestPartialOutputs(t *testing.T) {
	t.Parallel()
	t.Run("some filtered", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, replicatetest.Options{})
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
	t.Run("all filtered", func(t *testing.T) {
		t.Parallel()
		c, srv := setup(t, replicatetest.Options{})
		srv.Filter(2)
		if _, err := c.Generate(context.Background(), baseRequest()); provider.ClassOf(err) != provider.Rejected {
			t.Fatalf("err = %v, want rejected", err)
		}
	})
}

func TestBadModelIsInvalidLocally(t *testing.T) {
	t.Parallel()
	c, srv := setup(t, replicatetest.Options{})
	for _, model := range []string{"", "flux", "a/b/c", "a/b:notahexversion"} {
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
	const key = "r8_secret0123456789abcdef"
	srv := replicatetest.NewServer(t, replicatetest.Options{Key: "r8_other", EchoKey: true})
	c := replicate.New(replicate.Config{APIKey: key, BaseURL: srv.URL, Wait: -1})
	_, err := c.Generate(context.Background(), baseRequest())
	if provider.ClassOf(err) != provider.Auth {
		t.Fatalf("err = %v, want auth", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("error shows the key: %v", err)
	}
	c = replicate.New(replicate.Config{APIKey: key, BaseURL: "http://127.0.0.1:1"})
	if _, err = c.Generate(context.Background(), baseRequest()); err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("err = %v, want an error without the key", err)
	}
}
