package openaicompat

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/openaicompat/openaicompattest"
	"bulkgen/internal/provider/providertest"
)

var baseRequest = provider.Request{
	Model:  openaicompattest.DefaultModel,
	Prompt: "a lighthouse at dusk",
	Width:  512,
	Height: 512,
	Count:  1,
}

type testBundle struct {
	srv    *openaicompattest.Server
	client *Client
}

func setup(t *testing.T, opt openaicompattest.Options, cfg Config) *testBundle {
	t.Helper()
	srv := openaicompattest.NewServer(t, opt)
	cfg.APIKey = provider.Secret(srv.Key)
	cfg.BaseURL = srv.URL
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	return &testBundle{srv: srv, client: New(cfg)}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			b := setup(t, openaicompattest.Options{}, Config{})
			return b.client, b.srv
		},
		Request:    baseRequest,
		RetryAfter: true,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		mode         NegativeMode
		req          provider.Request
		wantFields   map[string]string
		absent       []string
		wantPositive string
		wantNegative string
		wantSize     [2]int
	}{
		{
			name: "pipe negative and options",
			req: provider.Request{Model: "flux.1-dev", Prompt: "a red fox", NegativePrompt: "blurry, low quality", Width: 768, Height: 512, Count: 2,
				Seed: 42, HasSeed: true, Options: map[string]string{"step": "25", "cfg_scale": "7.5", "model": "ignored", "enable_hr": "true", "sampler": "euler"}},
			wantFields: map[string]string{
				"model": `"flux.1-dev"`, "prompt": `"a red fox|blurry, low quality"`, "n": `2`, "size": `"768x512"`,
				"response_format": `"b64_json"`, "seed": `42`, "step": `25`, "cfg_scale": `7.5`, "enable_hr": `true`, "sampler": `"euler"`,
			},
			absent:       []string{"negative_prompt", "quality"},
			wantPositive: "a red fox", wantNegative: "blurry, low quality", wantSize: [2]int{768, 512},
		},
		{
			name:         "negative as a field",
			mode:         NegativeField,
			req:          provider.Request{Model: "stablediffusion", Prompt: "a cat", NegativePrompt: "dogs"},
			wantFields:   map[string]string{"prompt": `"a cat"`, "negative_prompt": `"dogs"`, "n": `1`, "response_format": `"b64_json"`},
			absent:       []string{"size", "seed"},
			wantPositive: "a cat", wantSize: [2]int{512, 512},
		},
		{
			name:         "negative ignored",
			mode:         NegativeIgnore,
			req:          provider.Request{Model: "stablediffusion", Prompt: "a cat", NegativePrompt: "dogs", Quality: "30"},
			wantFields:   map[string]string{"prompt": `"a cat"`, "quality": `"30"`},
			absent:       []string{"negative_prompt"},
			wantPositive: "a cat", wantSize: [2]int{512, 512},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openaicompattest.Options{}, Config{NegativeMode: tt.mode})
			res, err := b.client.Generate(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			got := b.srv.LastRequest()
			for k, want := range tt.wantFields {
				if g := string(got.Fields[k]); g != want {
					t.Errorf("field %s = %s, want %s", k, g, want)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got.Fields[k]; ok {
					t.Errorf("field %s was sent", k)
				}
			}
			if got.Positive != tt.wantPositive || got.Negative != tt.wantNegative {
				t.Errorf("server read positive %q negative %q, want %q and %q", got.Positive, got.Negative, tt.wantPositive, tt.wantNegative)
			}
			providertest.CheckResult(t, tt.req, res)
			if img := res.Images[0]; img.Width != tt.wantSize[0] || img.Height != tt.wantSize[1] || img.Format != "png" {
				t.Errorf("image %s %dx%d, want png %dx%d", img.Format, img.Width, img.Height, tt.wantSize[0], tt.wantSize[1])
			}
			if res.RequestID == "" {
				t.Error("no RequestID")
			}
		})
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  provider.Request
	}{
		{"no model", provider.Request{Prompt: "a cat"}},
		{"bar in prompt", provider.Request{Model: "stablediffusion", Prompt: "cats | dogs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openaicompattest.Options{}, Config{})
			_, err := b.client.Generate(context.Background(), tt.req)
			if provider.ClassOf(err) != provider.Invalid {
				t.Fatalf("err = %v, want invalid", err)
			}
			if n := b.srv.Calls(); n != 0 {
				t.Errorf("server got %d calls, want 0", n)
			}
		})
	}
}

func TestServerQuirks(t *testing.T) {
	t.Parallel()
	t.Run("size without x becomes 512x512", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openaicompattest.Options{}, Config{})
		req := baseRequest
		req.Width, req.Height = 0, 0
		req.Options = map[string]string{"size": "large"} // reserved: not passed
		res, err := b.client.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if img := res.Images[0]; img.Width != 512 || img.Height != 512 {
			t.Errorf("got %dx%d, want 512x512", img.Width, img.Height)
		}
	})
	t.Run("unknown model fails in the backend", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openaicompattest.Options{}, Config{})
		req := baseRequest
		req.Model = "no-such-model"
		_, err := b.client.Generate(context.Background(), req)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Status != 500 || pe.Code != "500" || !strings.Contains(pe.Message, "no-such-model") {
			t.Fatalf("err = %v, want a 500 naming the model", err)
		}
	})
}

func TestOutputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		opt           openaicompattest.Options
		wantFormat    string
		wantDownloads int
	}{
		{"b64_json", openaicompattest.Options{}, "png", 0},
		{"absolute url on the server", openaicompattest.Options{Output: openaicompattest.OutputURL}, "png", 2},
		{"server-relative url", openaicompattest.Options{Output: openaicompattest.OutputURL, URLPrefix: "/generated-images/"}, "png", 2},
		{"data uri", openaicompattest.Options{Output: openaicompattest.OutputDataURI}, "png", 0},
		{"jpeg bytes named png", openaicompattest.Options{Output: openaicompattest.OutputURL, JPEG: true}, "jpeg", 2},
		{"data uri jpeg", openaicompattest.Options{Output: openaicompattest.OutputDataURI, JPEG: true}, "jpeg", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opt, Config{})
			req := baseRequest
			req.Count = 2
			res, err := b.client.Generate(context.Background(), req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			providertest.CheckResult(t, req, res)
			for _, img := range res.Images {
				if img.Format != tt.wantFormat {
					t.Errorf("Format = %q, want %q", img.Format, tt.wantFormat)
				}
			}
			if got := b.srv.Downloads(); got != tt.wantDownloads {
				t.Errorf("downloads = %d, want %d", got, tt.wantDownloads)
			}
		})
	}
}

func TestDownloadRefused(t *testing.T) {
	t.Parallel()
	// other plays an internal service the provider's answer points at.
	other := openaicompattest.NewServer(t, openaicompattest.Options{Output: openaicompattest.OutputURL})
	otherImages := strings.TrimSuffix(other.URL, "/v1") + "/generated-images/"
	tests := []struct {
		name    string
		opt     openaicompattest.Options
		fetcher func(base string) *provider.Fetcher
		wantErr error
	}{
		{
			name: "too large",
			opt:  openaicompattest.Options{Output: openaicompattest.OutputURL},
			fetcher: func(base string) *provider.Fetcher {
				f := provider.NewFetcher(provider.AllowBase(base)...)
				f.MaxBytes = 100
				return f
			},
			wantErr: provider.ErrTooLarge,
		},
		{
			name:    "url on another internal address",
			opt:     openaicompattest.Options{Output: openaicompattest.OutputURL, URLPrefix: otherImages},
			wantErr: provider.ErrPrivateAddress,
		},
		{
			name:    "redirect to another internal address",
			opt:     openaicompattest.Options{Output: openaicompattest.OutputURL, RedirectImages: otherImages},
			wantErr: provider.ErrPrivateAddress,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := openaicompattest.NewServer(t, tt.opt)
			cfg := Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL}
			if tt.fetcher != nil {
				cfg.Fetcher = tt.fetcher(srv.URL)
			}
			_, err := New(cfg).Generate(context.Background(), baseRequest)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want one wrapping %v", err, tt.wantErr)
			}
			if provider.ClassOf(err) != provider.Invalid {
				t.Errorf("class = %s, want invalid", provider.ClassOf(err))
			}
		})
	}
	if other.Downloads() != 0 {
		t.Errorf("the internal server served %d files", other.Downloads())
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name       string
		reply      openaicompattest.Reply
		class      provider.Class
		code       string
		retryAfter time.Duration
		inMessage  string
	}{
		{"model loading", openaicompattest.ModelLoadingReply(5), provider.Retryable, "model_loading", 5 * time.Second, "loading"},
		{"backend busy", openaicompattest.Reply{Status: 503, Header: hdr("Retry-After", "3"), Body: `{"error":{"code":503,"message":"backend at capacity","type":""}}`}, provider.Retryable, "503", 3 * time.Second, "capacity"},
		{"quota", openaicompattest.Reply{Status: 429, Header: hdr("Retry-After", "12"), Body: `{"error":{"code":429,"message":"quota exceeded","type":"quota_exceeded"}}`}, provider.Retryable, "quota_exceeded", 12 * time.Second, "quota"},
		{"gateway rate limit reset", openaicompattest.Reply{Status: 429, Header: hdr("X-Ratelimit-Reset-Requests", "6s"), Body: `{"error":{"code":"rate_limit_exceeded","message":"slow down","type":"requests"}}`}, provider.Retryable, "rate_limit_exceeded", 6 * time.Second, ""},
		{"gateway out of credit", openaicompattest.Reply{Status: 429, Body: `{"error":{"code":"insufficient_quota","message":"You exceeded your current quota","type":"insufficient_quota"}}`}, provider.Auth, "insufficient_quota", 0, "quota"},
		{"numeric 500", openaicompattest.Reply{Status: 500, Body: `{"error":{"code":500,"message":"rpc error: inference failed","type":""}}`}, provider.Retryable, "500", 0, "inference failed"},
		{"numeric 400", openaicompattest.Reply{Status: 400, Body: `{"error":{"code":400,"message":"model is required","type":""}}`}, provider.Invalid, "400", 0, "model is required"},
		{"bare string error", openaicompattest.Reply{Status: 422, Body: `{"error":"unsupported size"}`}, provider.Invalid, "", 0, "unsupported size"},
		{"fastapi detail", openaicompattest.Reply{Status: 404, Body: `{"detail":"Not Found"}`}, provider.Invalid, "", 0, "Not Found"},
		{"unauthorized", openaicompattest.Reply{Status: 401, Body: `{"error":{"code":401,"message":"An authentication key is required","type":"invalid_request_error"}}`}, provider.Auth, "invalid_request_error", 0, "authentication key"},
		{"forbidden", openaicompattest.Reply{Status: 403, Body: `{"error":{"code":403,"message":"forbidden","type":""}}`}, provider.Auth, "403", 0, "forbidden"},
		{"relayed moderation", openaicompattest.Reply{Status: 400, Body: `{"error":{"code":"moderation_blocked","message":"rejected by the safety system","type":"image_generation_user_error"}}`}, provider.Rejected, "moderation_blocked", 0, "safety"},
		{"plain text 502", openaicompattest.Reply{Status: 502, Header: hdr("Content-Type", "text/plain"), Body: "upstream connect error"}, provider.Retryable, "", 0, "upstream connect error"},
		{"should-retry false", openaicompattest.Reply{Status: 503, Header: hdr("X-Should-Retry", "false"), Body: `{"error":{"code":503,"message":"gone","type":""}}`}, provider.Invalid, "", 0, "gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openaicompattest.Options{}, Config{})
			b.srv.InjectReply(tt.reply, 1)
			_, err := b.client.Generate(context.Background(), baseRequest)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *provider.Error", err)
			}
			if pe.Class != tt.class {
				t.Errorf("class = %s, want %s (%v)", pe.Class, tt.class, err)
			}
			if tt.code != "" && pe.Code != tt.code {
				t.Errorf("code = %q, want %q", pe.Code, tt.code)
			}
			if pe.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", pe.RetryAfter, tt.retryAfter)
			}
			if !strings.Contains(pe.Message, tt.inMessage) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.inMessage)
			}
			if pe.Status != tt.reply.Status || pe.Provider != DefaultName {
				t.Errorf("status %d provider %q, want %d %q", pe.Status, pe.Provider, tt.reply.Status, DefaultName)
			}
		})
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, openaicompattest.Options{}, Config{})
	b.srv.Inject(providertest.RateLimit, 1)
	_, err := b.client.Generate(context.Background(), baseRequest)
	if provider.ClassOf(err) != provider.Retryable || provider.RetryAfterOf(err) != time.Second {
		t.Fatalf("first call: err = %v (retry after %v), want retryable after 1s", err, provider.RetryAfterOf(err))
	}
	res, err := b.client.Generate(context.Background(), baseRequest)
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	providertest.CheckResult(t, baseRequest, res)
}

func TestServerQuota(t *testing.T) {
	t.Parallel()
	b := setup(t, openaicompattest.Options{RPM: 1}, Config{})
	ctx := context.Background()
	if _, err := b.client.Generate(ctx, baseRequest); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err := b.client.Generate(ctx, baseRequest)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.Retryable || pe.Code != "quota_exceeded" {
		t.Fatalf("second call: err = %v, want 429 quota_exceeded", err)
	}
	if pe.RetryAfter <= 0 || pe.RetryAfter > time.Minute {
		t.Errorf("RetryAfter = %v, want within the minute", pe.RetryAfter)
	}
	if b.srv.Throttled() != 1 {
		t.Errorf("Throttled = %d, want 1", b.srv.Throttled())
	}
}

func TestListModels(t *testing.T) {
	t.Parallel()
	b := setup(t, openaicompattest.Options{Models: []string{"sd-1.5", "sdxl"}}, Config{})
	got, err := b.client.ListModels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"sd-1.5", "sdxl"}) {
		t.Errorf("models = %v", got)
	}

	bad := New(Config{APIKey: "wrong-key-0123456789", BaseURL: b.srv.URL})
	if _, err := bad.ListModels(context.Background()); provider.ClassOf(err) != provider.Auth {
		t.Errorf("wrong key: err = %v, want auth", err)
	}
}

func TestNoAuthServer(t *testing.T) {
	t.Parallel()
	srv := openaicompattest.NewServer(t, openaicompattest.Options{NoAuth: true})
	c := New(Config{BaseURL: srv.URL})
	res, err := c.Generate(context.Background(), baseRequest)
	if err != nil {
		t.Fatal(err)
	}
	providertest.CheckResult(t, baseRequest, res)
	if h := srv.LastRequest().Header.Get("Authorization"); h != "" {
		t.Errorf("Authorization sent without a key: %q", h)
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	const key = "sk-local-the-secret-key-0123456789"
	srv := openaicompattest.NewServer(t, openaicompattest.Options{EchoKey: true})
	c := New(Config{APIKey: key, BaseURL: srv.URL})
	_, err := c.Generate(context.Background(), baseRequest)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Class != provider.Auth {
		t.Fatalf("err = %v, want auth", err)
	}
	if strings.Contains(err.Error(), key) || strings.Contains(pe.Message, key) {
		t.Errorf("error shows the key: %v", err)
	}
	if !strings.Contains(pe.Message, "Invalid authentication key") {
		t.Errorf("message lost: %q", pe.Message)
	}
}
