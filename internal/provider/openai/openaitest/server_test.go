package openaitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "golang.org/x/image/webp"
)

// post sends body to the generation endpoint with key (none if empty).
func post(t *testing.T, ctx context.Context, s *Server, key, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/images/generations", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{})
	tests := []struct {
		name      string
		key       string
		body      string
		status    int
		wantParam string
		wantCode  string
	}{
		{"no key", "", `{"model":"gpt-image-2","prompt":"x"}`, 401, "", ""},
		{"wrong key", "sk-wrong-key-000000", `{"model":"gpt-image-2","prompt":"x"}`, 401, "", "invalid_api_key"},
		{"response_format refused", s.Key, `{"model":"gpt-image-2","prompt":"x","response_format":"b64_json"}`, 400, "response_format", "unknown_parameter"},
		{"unknown field", s.Key, `{"model":"gpt-image-2","prompt":"x","seed":3}`, 400, "seed", "unknown_parameter"},
		{"n as a string", s.Key, `{"model":"gpt-image-2","prompt":"x","n":"2"}`, 400, "n", "invalid_type"},
		{"n zero", s.Key, `{"model":"gpt-image-2","prompt":"x","n":0}`, 400, "n", "integer_below_min_value"},
		{"no model defaults to dall-e-2", s.Key, `{"prompt":"x"}`, 404, "", "model_not_found"},
		{"transparent jpeg", s.Key, `{"model":"gpt-image-2","prompt":"x","background":"transparent","output_format":"jpeg"}`, 400, "background", "invalid_value"},
		{"valid", s.Key, `{"model":"gpt-image-2","prompt":"x","size":"2048x1152"}`, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, out := post(t, context.Background(), s, tt.key, tt.body)
			if resp == nil {
				t.Fatal("request failed")
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tt.status, out)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id")
			}
			if tt.status == 200 {
				if resp.Header.Get("X-Ratelimit-Remaining-Requests") == "" {
					t.Error("no x-ratelimit headers")
				}
				return
			}
			e, _ := out["error"].(map[string]any)
			if e == nil || e["message"] == "" || e["type"] == "" {
				t.Fatalf("not an error envelope: %v", out)
			}
			if p, _ := e["param"].(string); p != tt.wantParam {
				t.Errorf("param = %q, want %q", p, tt.wantParam)
			}
			if c, _ := e["code"].(string); c != tt.wantCode {
				t.Errorf("code = %q, want %q", c, tt.wantCode)
			}
		})
	}
}

// TestImagesDecode fully decodes each format the server makes.
func TestImagesDecode(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{})
	for _, format := range []string{"png", "jpeg", "webp"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			resp, out := post(t, context.Background(), s, s.Key, `{"model":"gpt-image-2","prompt":"x","size":"320x240","output_format":"`+format+`"}`)
			if resp == nil || resp.StatusCode != 200 {
				t.Fatalf("answer %v", out)
			}
			b64 := out["data"].([]any)[0].(map[string]any)["b64_json"].(string)
			data, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			img, got, err := image.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != format || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 240 {
				t.Errorf("got %s %v, want %s 320x240", got, img.Bounds(), format)
			}
		})
	}
}

// TestLatency checks the server holds a generation for Options.Latency: a
// client that gives up sooner gets no answer.
func TestLatency(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{Latency: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if resp, _ := post(t, ctx, s, s.Key, `{"model":"gpt-image-2","prompt":"x"}`); resp != nil {
		t.Fatalf("answered with %d before the latency passed", resp.StatusCode)
	}
}
