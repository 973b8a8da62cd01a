package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/openai/openaitest"
	"bulkgen/internal/provider/providertest"
)

var baseRequest = provider.Request{
	Model:  openaitest.DefaultModel,
	Prompt: "a lighthouse at dusk",
	Width:  1024,
	Height: 1024,
	Count:  1,
}

type testBundle struct {
	srv    *openaitest.Server
	client *Client
}

func setup(t *testing.T, opt openaitest.Options) *testBundle {
	t.Helper()
	srv := openaitest.NewServer(t, opt)
	return &testBundle{srv: srv, client: New(Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL, Timeout: 20 * time.Second})}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			b := setup(t, openaitest.Options{})
			return b.client, b.srv
		},
		Request:    baseRequest,
		RetryAfter: true,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		req        provider.Request
		wantFields map[string]string // JSON as sent
		absent     []string
		wantImages int
		wantFormat string
		wantSize   [2]int
	}{
		{
			name: "everything",
			req: provider.Request{
				Model: "gpt-image-2", Prompt: "a red fox", Width: 1536, Height: 1024, Count: 3,
				Quality: "high", Format: "webp", NegativePrompt: "blurry", Seed: 7, HasSeed: true, Style: "vivid",
				Options: map[string]string{"output_compression": "80", "background": "opaque", "moderation": "low"},
			},
			wantFields: map[string]string{
				"model": `"gpt-image-2"`, "prompt": `"a red fox"`, "n": `3`, "size": `"1536x1024"`, "quality": `"high"`,
				"output_format": `"webp"`, "output_compression": `80`, "background": `"opaque"`, "moderation": `"low"`,
			},
			absent:     []string{"response_format", "style", "seed", "negative_prompt"},
			wantImages: 3, wantFormat: "webp", wantSize: [2]int{1536, 1024},
		},
		{
			name:       "no size means auto",
			req:        provider.Request{Model: "gpt-image-1.5", Prompt: "a cat"},
			wantFields: map[string]string{"size": `"auto"`, "n": `1`},
			absent:     []string{"quality", "output_format", "output_compression", "background", "moderation", "response_format"},
			wantImages: 1, wantFormat: "png", wantSize: [2]int{1024, 1024},
		},
		{
			name:       "jpeg through options",
			req:        provider.Request{Model: "gpt-image-2", Prompt: "a dog", Width: 512, Height: 768, Options: map[string]string{"output_format": "jpeg", "quality": "low"}},
			wantFields: map[string]string{"output_format": `"jpeg"`, "quality": `"low"`},
			wantImages: 1, wantFormat: "jpeg", wantSize: [2]int{512, 768},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openaitest.Options{})
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
			if a := got.Header.Get("Authorization"); a != "Bearer "+b.srv.Key {
				t.Errorf("Authorization = %q", a)
			}
			if len(res.Images) != tt.wantImages {
				t.Fatalf("got %d images, want %d", len(res.Images), tt.wantImages)
			}
			providertest.CheckResult(t, provider.Request{Count: tt.wantImages}, res)
			for _, img := range res.Images {
				if img.Format != tt.wantFormat || img.Width != tt.wantSize[0] || img.Height != tt.wantSize[1] {
					t.Errorf("image %s %dx%d, want %s %dx%d", img.Format, img.Width, img.Height, tt.wantFormat, tt.wantSize[0], tt.wantSize[1])
				}
			}
			if !strings.HasPrefix(res.RequestID, "req_") {
				t.Errorf("RequestID = %q", res.RequestID)
			}
			if res.Latency <= 0 {
				t.Errorf("Latency = %v", res.Latency)
			}
		})
	}
}

func TestBadOptionRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	b := setup(t, openaitest.Options{})
	req := baseRequest
	req.Options = map[string]string{"output_compression": "high"}
	_, err := b.client.Generate(context.Background(), req)
	if provider.ClassOf(err) != provider.Invalid {
		t.Fatalf("err = %v, want invalid", err)
	}
	if b.srv.Calls() != 0 {
		t.Errorf("server got %d calls, want 0", b.srv.Calls())
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	envelope := func(msg, typ, code string) string {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
		return string(b)
	}
	tests := []struct {
		name       string
		reply      openaitest.Reply
		class      provider.Class
		code       string
		retryAfter time.Duration
		inMessage  string
	}{
		{"bad size", openaitest.Reply{Status: 400, Body: envelope("Invalid value: '7x7'.", "invalid_request_error", "invalid_value")}, provider.Invalid, "invalid_value", 0, "Invalid value"},
		{"moderation", openaitest.Reply{Status: 400, Body: envelope("Your request was rejected by the safety system. safety_violations=[sexual].", "image_generation_user_error", "moderation_blocked")}, provider.Rejected, "moderation_blocked", 0, "safety_violations"},
		{"bad key", openaitest.Reply{Status: 401, Body: envelope("Incorrect API key provided: sk-***abcd.", "invalid_request_error", "invalid_api_key")}, provider.Auth, "invalid_api_key", 0, "Incorrect API key"},
		{"org not verified", openaitest.Reply{Status: 403, Body: envelope("Your organization must be verified to use the model `gpt-image-2`.", "invalid_request_error", "")}, provider.Auth, "invalid_request_error", 0, "verified"},
		{"retired model", openaitest.ModelNotFoundReply("dall-e-3"), provider.Invalid, "model_not_found", 0, "dall-e-3"},
		{"rate limit retry-after", openaitest.RateLimitReply(hdr("Retry-After", "7")), provider.Retryable, "rate_limit_exceeded", 7 * time.Second, "Rate limit"},
		{"rate limit retry-after-ms", openaitest.RateLimitReply(hdr("Retry-After-Ms", "1500", "Retry-After", "9")), provider.Retryable, "rate_limit_exceeded", 1500 * time.Millisecond, ""},
		{"rate limit http date", openaitest.RateLimitReply(hdr("Retry-After", now.Add(30*time.Second).Format(http.TimeFormat))), provider.Retryable, "rate_limit_exceeded", 30 * time.Second, ""},
		{"rate limit reset header", openaitest.RateLimitReply(hdr("X-Ratelimit-Reset-Requests", "1m0s", "X-Ratelimit-Remaining-Requests", "0", "X-Ratelimit-Reset-Tokens", "6s")), provider.Retryable, "rate_limit_exceeded", time.Minute, ""},
		{"rate limit reset tokens exhausted", openaitest.RateLimitReply(hdr("X-Ratelimit-Reset-Requests", "1m0s", "X-Ratelimit-Remaining-Requests", "3", "X-Ratelimit-Reset-Tokens", "6s", "X-Ratelimit-Remaining-Tokens", "0")), provider.Retryable, "rate_limit_exceeded", 6 * time.Second, ""},
		{"rate limit no hint", openaitest.RateLimitReply(nil), provider.Retryable, "rate_limit_exceeded", 0, ""},
		{"insufficient quota", openaitest.QuotaReply(), provider.Auth, "insufficient_quota", 0, "quota"},
		{"credit exhausted", openaitest.Reply{Status: 429, Body: envelope("Your credit balance is too low.", "insufficient_quota", "credit_balance_exhausted")}, provider.Auth, "credit_balance_exhausted", 0, "credit"},
		{"server error", openaitest.Reply{Status: 500, Body: envelope("The server had an error.", "server_error", "")}, provider.Retryable, "server_error", 0, "server had an error"},
		{"unavailable with retry-after", openaitest.Reply{Status: 503, Header: hdr("Retry-After", "2"), Body: envelope("Slow down.", "service_unavailable_error", "")}, provider.Retryable, "service_unavailable_error", 2 * time.Second, ""},
		{"proxy html", openaitest.Reply{Status: 502, Header: hdr("Content-Type", "text/html"), Body: "<html>bad gateway</html>"}, provider.Retryable, "", 0, "Bad Gateway"},
		{"conflict", openaitest.Reply{Status: 409, Body: envelope("Conflict.", "invalid_request_error", "")}, provider.Retryable, "", 0, ""},
		{"should-retry false", openaitest.Reply{Status: 500, Header: hdr("X-Should-Retry", "false"), Body: envelope("Do not retry.", "server_error", "")}, provider.Invalid, "", 0, ""},
		{"should-retry true", openaitest.Reply{Status: 400, Header: hdr("X-Should-Retry", "true"), Body: envelope("Try again.", "invalid_request_error", "")}, provider.Retryable, "", 0, ""},
		{"should-retry true keeps rejected", openaitest.Reply{Status: 400, Header: hdr("X-Should-Retry", "true"), Body: envelope("Blocked.", "image_generation_user_error", "moderation_blocked")}, provider.Rejected, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openaitest.Options{})
			b.client.now = func() time.Time { return now }
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
			if pe.Status != tt.reply.Status {
				t.Errorf("status = %d, want %d", pe.Status, tt.reply.Status)
			}
			if !strings.HasPrefix(pe.RequestID, "req_") {
				t.Errorf("RequestID = %q", pe.RequestID)
			}
		})
	}
}

// TestServerValidation checks that the contract server's own checks reach
// the adapter as Invalid errors naming the parameter.
func TestServerValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mutate    func(*provider.Request)
		status    int
		inMessage string
	}{
		{"not multiple of 16", func(r *provider.Request) { r.Width, r.Height = 1000, 1000 }, 400, "multiples of 16"},
		{"ratio beyond 3:1", func(r *provider.Request) { r.Width, r.Height = 3200, 1024 }, 400, "1:3 and 3:1"},
		{"too many pixels", func(r *provider.Request) { r.Width, r.Height = 3840, 2400 }, 400, "3840x2160"},
		{"edge too long", func(r *provider.Request) { r.Width, r.Height = 4096, 1536 }, 400, "3840"},
		{"gpt-image-1 fixed sizes", func(r *provider.Request) { r.Model = "gpt-image-1"; r.Width, r.Height = 2048, 2048 }, 400, "Supported values"},
		{"n above 10", func(r *provider.Request) { r.Count = 11 }, 400, "<= 10"},
		{"empty prompt", func(r *provider.Request) { r.Prompt = "" }, 400, "'prompt'"},
		{"bad quality", func(r *provider.Request) { r.Quality = "hd" }, 400, "'hd'"},
		{"png compression", func(r *provider.Request) { r.Options = map[string]string{"output_compression": "50"} }, 400, "PNG"},
		{"retired model", func(r *provider.Request) { r.Model = "dall-e-3" }, 404, "dall-e-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, openaitest.Options{})
			req := baseRequest
			tt.mutate(&req)
			_, err := b.client.Generate(context.Background(), req)
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != provider.Invalid {
				t.Fatalf("err = %v, want invalid", err)
			}
			if pe.Status != tt.status || !strings.Contains(pe.Message, tt.inMessage) {
				t.Errorf("got %d %q, want %d containing %q", pe.Status, pe.Message, tt.status, tt.inMessage)
			}
		})
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, openaitest.Options{})
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

func TestServerRPM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("over the limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openaitest.Options{RPM: 2})
		for i := range 2 {
			if _, err := b.client.Generate(ctx, baseRequest); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		_, err := b.client.Generate(ctx, baseRequest)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Retryable || pe.Code != "rate_limit_exceeded" {
			t.Fatalf("third call: err = %v, want 429 rate_limit_exceeded", err)
		}
		if pe.RetryAfter <= 0 || pe.RetryAfter > time.Minute {
			t.Errorf("RetryAfter = %v, want within the minute", pe.RetryAfter)
		}
		if got := b.srv.Throttled(); got != 1 {
			t.Errorf("Throttled = %d, want 1", got)
		}
		if got := b.srv.Calls(); got != 3 {
			t.Errorf("Calls = %d, want 3", got)
		}
	})
	t.Run("window refills", func(t *testing.T) {
		t.Parallel()
		b := setup(t, openaitest.Options{RPM: 1, Window: 100 * time.Millisecond})
		for i := range 2 {
			if _, err := b.client.Generate(ctx, baseRequest); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			time.Sleep(150 * time.Millisecond) // past the window, however slow the call was
		}
		if got := b.srv.Throttled(); got != 0 {
			t.Errorf("Throttled = %d, want 0", got)
		}
	})
}

func TestKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	const serverKey = "sk-proj-thisisthesecretkey-1234567890"
	tests := []struct {
		name      string
		clientKey string
		fault     providertest.Fault
	}{
		{"wrong key echoed", serverKey + "-wrong", providertest.None},
		{"revoked key echoed", serverKey, providertest.BadAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.NewServer(t, openaitest.Options{EchoKey: true, Key: serverKey})
			srv.Inject(tt.fault, 1)
			c := New(Config{APIKey: provider.Secret(tt.clientKey), BaseURL: srv.URL})
			_, err := c.Generate(context.Background(), baseRequest)
			if provider.ClassOf(err) != provider.Auth {
				t.Fatalf("err = %v, want auth", err)
			}
			var pe *provider.Error
			errors.As(err, &pe)
			for _, s := range []string{err.Error(), pe.Message} {
				if strings.Contains(s, tt.clientKey) {
					t.Errorf("error shows the key: %s", s)
				}
				if !strings.Contains(s, "Incorrect API key provided") {
					t.Errorf("error lost the provider's message: %s", s)
				}
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	srv := openaitest.NewServer(t, openaitest.Options{})
	srv.Inject(providertest.Slow, 1)
	c := New(Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL, Timeout: 100 * time.Millisecond})
	_, err := c.Generate(context.Background(), baseRequest)
	if !errors.Is(err, provider.ErrTimeout) || provider.ClassOf(err) != provider.Retryable {
		t.Fatalf("err = %v, want retryable wrapping ErrTimeout", err)
	}
}
