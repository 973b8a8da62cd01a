package gemini

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/gemini/geminitest"
	"bulkgen/internal/provider/providertest"
)

var baseRequest = provider.Request{
	Model:       geminitest.DefaultModel,
	Prompt:      "a lighthouse at dusk, watercolor",
	Width:       1024,
	Height:      1024,
	AspectRatio: "1:1",
	Count:       1,
}

type testBundle struct {
	srv    *geminitest.Server
	client *Client
}

func setup(t *testing.T, opt geminitest.Options) *testBundle {
	t.Helper()
	srv := geminitest.NewServer(t, opt)
	return &testBundle{srv: srv, client: New(Config{APIKey: provider.Secret(srv.Key), BaseURL: srv.URL, Timeout: 20 * time.Second})}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			b := setup(t, geminitest.Options{})
			return b.client, b.srv
		},
		Request:    baseRequest,
		RetryAfter: true,
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opt         geminitest.Options
		req         provider.Request
		wantRatio   string
		wantSize    string
		noImageConf bool
		wantPixels  [2]int
	}{
		{
			name:      "ratio given, 1K left to the default",
			req:       provider.Request{Model: "gemini-3-pro-image", Prompt: "a fox", Width: 1376, Height: 768, AspectRatio: "16:9", Count: 3, NegativePrompt: "blur", Seed: 3, HasSeed: true, Quality: "high", Format: "webp"},
			wantRatio: "16:9", wantPixels: [2]int{1376, 768},
		},
		{
			name:      "ratio and 2K derived from pixels",
			req:       provider.Request{Model: "gemini-3-pro-image", Prompt: "a fox", Width: 2048, Height: 2048, Count: 1},
			wantRatio: "1:1", wantSize: "2K", wantPixels: [2]int{2048, 2048},
		},
		{
			name:      "4K from pixels, scaled down by the server",
			req:       provider.Request{Model: "gemini-3.1-flash-image", Prompt: "a fox", Width: 5504, Height: 3072, AspectRatio: "16:9", Count: 1},
			wantRatio: "16:9", wantSize: "4K", wantPixels: [2]int{2048, 1143},
		},
		{
			name:      "image_size option wins",
			req:       provider.Request{Model: "gemini-3.1-flash-image", Prompt: "a fox", Width: 1024, Height: 1024, AspectRatio: "1:1", Count: 1, Options: map[string]string{"image_size": "2K"}},
			wantRatio: "1:1", wantSize: "2K", wantPixels: [2]int{2048, 2048},
		},
		{
			name:        "nothing to configure",
			req:         provider.Request{Model: "gemini-2.5-flash-image", Prompt: "a fox"},
			noImageConf: true, wantPixels: [2]int{1024, 1024},
		},
		{
			name:      "thought images and text skipped, jpeg sniffed",
			opt:       geminitest.Options{Thoughts: true, Text: true, JPEG: true, MaxEdge: 600},
			req:       provider.Request{Model: "gemini-3.1-flash-image", Prompt: "a fox", Width: 1200, Height: 896, AspectRatio: "4:3", Count: 2},
			wantRatio: "4:3", wantPixels: [2]int{600, 448},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opt)
			res, err := b.client.Generate(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			count := max(tt.req.Count, 1)
			if got := b.srv.Calls(); got != count {
				t.Errorf("server got %d calls, want one per image (%d)", got, count)
			}
			got := b.srv.LastRequest()
			if got.Model != tt.req.Model || got.Prompt != tt.req.Prompt {
				t.Errorf("model %q prompt %q", got.Model, got.Prompt)
			}
			if !slices.Equal(got.ResponseModalities, []string{"IMAGE"}) {
				t.Errorf("responseModalities = %v", got.ResponseModalities)
			}
			if got.AspectRatio != tt.wantRatio || got.ImageSize != tt.wantSize {
				t.Errorf("imageConfig = %q/%q, want %q/%q", got.AspectRatio, got.ImageSize, tt.wantRatio, tt.wantSize)
			}
			var gc map[string]json.RawMessage
			_ = json.Unmarshal(got.GenerationConfig, &gc)
			if _, ok := gc["imageConfig"]; ok == tt.noImageConf {
				t.Errorf("imageConfig sent = %v, want %v", ok, !tt.noImageConf)
			}
			for _, k := range []string{"seed", "candidateCount"} {
				if _, ok := gc[k]; ok {
					t.Errorf("generationConfig.%s was sent", k)
				}
			}
			if got.Header.Get("X-Goog-Api-Key") != b.srv.Key || got.QueryKey != "" {
				t.Errorf("key not sent in the header only")
			}
			providertest.CheckResult(t, tt.req, res)
			for _, img := range res.Images {
				if img.Width != tt.wantPixels[0] || img.Height != tt.wantPixels[1] {
					t.Errorf("image %dx%d, want %dx%d", img.Width, img.Height, tt.wantPixels[0], tt.wantPixels[1])
				}
				if want := map[bool]string{true: "jpeg", false: "png"}[tt.opt.JPEG]; img.Format != want {
					t.Errorf("Format = %q, want %q", img.Format, want)
				}
			}
			if ids := strings.Split(res.RequestID, ","); len(ids) != count || ids[0] == "" {
				t.Errorf("RequestID = %q, want %d response ids", res.RequestID, count)
			}
		})
	}
}

func TestSafetyOutcomes(t *testing.T) {
	t.Parallel()
	textOnly := geminitest.Reply{Status: 200, Body: `{"candidates":[{"content":{"role":"model","parts":[{"text":"I drew nothing this time."}]},"finishReason":"STOP"}],"responseId":"r1"}`}
	// A thought image is an interim draft, never the result.
	thoughtOnly := geminitest.Reply{Status: 200, Body: `{"candidates":[{"content":{"role":"model","parts":[{"thought":true,"inlineData":{"mimeType":"image/png","data":"` + tinyPNG(t) + `"}}]},"finishReason":"STOP"}],"responseId":"r2"}`}
	tests := []struct {
		name      string
		fault     providertest.Fault
		reply     *geminitest.Reply
		class     provider.Class
		code      string
		inMessage string
	}{
		{"prompt blocked", providertest.ContentPolicy, nil, provider.Rejected, "PROHIBITED_CONTENT", "PROHIBITED_CONTENT"},
		{"image withheld", 0, ptr(geminitest.OutputBlockedReply("IMAGE_SAFETY")), provider.Rejected, "IMAGE_SAFETY", "filtered"},
		{"no image", 0, ptr(geminitest.OutputBlockedReply("NO_IMAGE")), provider.Rejected, "NO_IMAGE", ""},
		{"text only", 0, &textOnly, provider.Retryable, "STOP", "drew nothing"},
		{"thought image only", 0, &thoughtOnly, provider.Retryable, "STOP", "no image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, geminitest.Options{})
			if tt.reply != nil {
				b.srv.InjectReply(*tt.reply, 1)
			} else {
				b.srv.Inject(tt.fault, 1)
			}
			_, err := b.client.Generate(context.Background(), baseRequest)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *provider.Error", err)
			}
			if pe.Class != tt.class || pe.Code != tt.code || pe.Status != 200 {
				t.Errorf("got %s %q status %d, want %s %q status 200", pe.Class, pe.Code, pe.Status, tt.class, tt.code)
			}
			if !strings.Contains(pe.Message, tt.inMessage) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.inMessage)
			}
			if pe.RequestID == "" {
				t.Errorf("no RequestID")
			}
		})
	}

	t.Run("some images filtered", func(t *testing.T) {
		t.Parallel()
		b := setup(t, geminitest.Options{})
		b.srv.InjectReply(geminitest.OutputBlockedReply("IMAGE_SAFETY"), 1)
		req := baseRequest
		req.Count = 3
		res, err := b.client.Generate(context.Background(), req)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		if len(res.Images) != 2 || res.Filtered != 1 {
			t.Errorf("got %d images, %d filtered; want 2 and 1", len(res.Images), res.Filtered)
		}
		providertest.CheckResult(t, req, res)
	})
}

func ptr[T any](v T) *T { return &v }

func tinyPNG(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	// 20:00 UTC on 28 Nov 2026 is noon in Los Angeles (PST).
	now := time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)
	body := func(code int, status, msg string, details ...string) string {
		d := "[" + strings.Join(details, ",") + "]"
		return `{"error":{"code":` + itoa(code) + `,"message":` + quote(msg) + `,"status":"` + status + `","details":` + d + `}}`
	}
	tests := []struct {
		name       string
		reply      geminitest.Reply
		class      provider.Class
		code       string
		retryAfter time.Duration
		inMessage  string
	}{
		{"per-minute quota", geminitest.QuotaReply("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "41s"), provider.Retryable, "RESOURCE_EXHAUSTED", 41 * time.Second, "quota"},
		{"fractional delay", geminitest.QuotaReply("GenerateRequestsPerMinutePerProjectPerModel", "1.5s"), provider.Retryable, "RESOURCE_EXHAUSTED", 1500 * time.Millisecond, ""},
		{"per-day quota waits for midnight pacific", geminitest.QuotaReply("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "41s"), provider.Retryable, "RESOURCE_EXHAUSTED_PER_DAY", 12 * time.Hour, "quota"},
		{"delay only in the message", geminitest.Reply{Status: 429, Body: body(429, "RESOURCE_EXHAUSTED", "Quota exceeded. Please retry in 12.5s.")}, provider.Retryable, "RESOURCE_EXHAUSTED", 12500 * time.Millisecond, ""},
		{"delay in a header", geminitest.Reply{Status: 429, Header: http.Header{"Retry-After": {"9"}}, Body: body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")}, provider.Retryable, "RESOURCE_EXHAUSTED", 9 * time.Second, "exhausted"},
		{"invalid key", geminitest.Reply{Status: 400, Body: body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", `{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}`)}, provider.Auth, "API_KEY_INVALID", 0, "API key not valid"},
		{"permission denied", geminitest.Reply{Status: 403, Body: body(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")}, provider.Auth, "PERMISSION_DENIED", 0, "unregistered"},
		{"region not supported", geminitest.Reply{Status: 400, Body: body(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")}, provider.Auth, "FAILED_PRECONDITION", 0, "location"},
		{"invalid argument", geminitest.Reply{Status: 400, Body: body(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")}, provider.Invalid, "INVALID_ARGUMENT", 0, "invalid argument"},
		{"model gone", geminitest.Reply{Status: 404, Body: body(404, "NOT_FOUND", "models/imagen-4.0-generate-001 is no longer available.")}, provider.Invalid, "NOT_FOUND", 0, "no longer available"},
		{"internal", geminitest.Reply{Status: 500, Body: body(500, "INTERNAL", "An internal error has occurred.")}, provider.Retryable, "INTERNAL", 0, "internal error"},
		{"unavailable", geminitest.Reply{Status: 503, Body: body(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", `{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"20s"}`)}, provider.Retryable, "UNAVAILABLE", 20 * time.Second, "overloaded"},
		{"deadline", geminitest.Reply{Status: 504, Body: body(504, "DEADLINE_EXCEEDED", "Deadline exceeded.")}, provider.Retryable, "DEADLINE_EXCEEDED", 0, ""},
		{"html from a proxy", geminitest.Reply{Status: 502, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html>502</html>"}, provider.Retryable, "", 0, "Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, geminitest.Options{})
			b.client.now = func() time.Time { return now }
			b.srv.InjectReply(tt.reply, 1)
			_, err := b.client.Generate(context.Background(), baseRequest)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *provider.Error", err)
			}
			if pe.Class != tt.class || pe.Code != tt.code || pe.Status != tt.reply.Status {
				t.Errorf("got %s %q %d, want %s %q %d (%v)", pe.Class, pe.Code, pe.Status, tt.class, tt.code, tt.reply.Status, err)
			}
			if pe.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", pe.RetryAfter, tt.retryAfter)
			}
			if !strings.Contains(pe.Message, tt.inMessage) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.inMessage)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestUntilPacificMidnight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		now  time.Time
		want time.Duration
	}{
		{time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC), 12 * time.Hour}, // noon PST
		{time.Date(2026, 7, 1, 6, 30, 0, 0, time.UTC), 30 * time.Minute}, // 23:30 PDT
		{time.Date(2026, 7, 1, 7, 0, 0, 0, time.UTC), 24 * time.Hour},    // midnight PDT exactly
		{time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), 8 * time.Hour},     // 16:00 PST the day before the DST switch
		{time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC), 19 * time.Hour},   // 05:00 PDT, just after it
	}
	for _, tt := range tests {
		if got := untilPacificMidnight(tt.now); got != tt.want {
			t.Errorf("untilPacificMidnight(%s) = %v, want %v", tt.now, got, tt.want)
		}
	}
}

func TestServerValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mutate    func(*provider.Request)
		status    int
		inMessage string
	}{
		{"bad ratio", func(r *provider.Request) { r.AspectRatio = "7:3" }, 400, "aspect_ratio"},
		{"extra ratio on another model", func(r *provider.Request) { r.Model = "gemini-3-pro-image"; r.AspectRatio = "4:1" }, 400, "aspect_ratio"},
		{"2K on 2.5 flash image", func(r *provider.Request) {
			r.Model = "gemini-2.5-flash-image"
			r.Options = map[string]string{"image_size": "2K"}
		}, 400, "image_size"},
		{"bad size word", func(r *provider.Request) { r.Options = map[string]string{"image_size": "8K"} }, 400, "image_size"},
		{"empty prompt", func(r *provider.Request) { r.Prompt = "" }, 400, "parts"},
		{"imagen is gone", func(r *provider.Request) { r.Model = "imagen-4.0-generate-001" }, 404, "no longer available"},
		{"unknown model", func(r *provider.Request) { r.Model = "gemini-9-image" }, 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, geminitest.Options{})
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

func TestServerAuth(t *testing.T) {
	t.Parallel()
	srv := geminitest.NewServer(t, geminitest.Options{})
	body := `{"contents":[{"parts":[{"text":"a cat"}]}],"generationConfig":{"responseModalities":["IMAGE"]}}`
	endpoint := srv.URL + "/models/" + geminitest.DefaultModel + ":generateContent"
	tests := []struct {
		name   string
		url    string
		header string
		status int
	}{
		{"key in query", endpoint + "?key=" + srv.Key, "", 200},
		{"key in header", endpoint, srv.Key, 200},
		{"no key", endpoint, "", 403},
		{"wrong key", endpoint, "AIza-wrong", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader(body))
			if tt.header != "" {
				req.Header.Set("x-goog-api-key", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, geminitest.Options{})
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
	b := setup(t, geminitest.Options{RPM: 2})
	req := baseRequest
	req.Count = 3 // three requests: the third is over the limit
	_, err := b.client.Generate(context.Background(), req)
	ra := provider.RetryAfterOf(err)
	if provider.ClassOf(err) != provider.Retryable || ra <= 0 || ra > time.Minute {
		t.Fatalf("err = %v (retry after %v), want retryable within a minute", err, ra)
	}
	if b.srv.Throttled() != 1 {
		t.Errorf("Throttled = %d, want 1", b.srv.Throttled())
	}
}

func TestKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, geminitest.Options{})
	b.srv.InjectReply(geminitest.Reply{Status: 400, Body: `{"error":{"code":400,"message":"API key expired: ` + b.srv.Key + `. Please renew the API key.","status":"INVALID_ARGUMENT"}}`}, 1)
	_, err := b.client.Generate(context.Background(), baseRequest)
	if provider.ClassOf(err) != provider.Auth {
		t.Fatalf("err = %v, want auth", err)
	}
	if strings.Contains(err.Error(), b.srv.Key) {
		t.Errorf("error shows the key: %v", err)
	}
	if !strings.Contains(err.Error(), "API key expired") {
		t.Errorf("message lost: %v", err)
	}
}
