package stabilitytest

import (
	"bytes"
	"encoding/json"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	_ "golang.org/x/image/webp"
)

// post sends fields as multipart (or body as-is when fields is nil).
func post(t *testing.T, s *Server, path, key, accept string, fields map[string]string, body io.Reader, ctype string) *http.Response {
	t.Helper()
	if fields != nil {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range fields {
			_ = mw.WriteField(k, v)
		}
		_ = mw.Close()
		body, ctype = &buf, mw.FormDataContentType()
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+key)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 64})
	const core = "/v2beta/stable-image/generate/core"
	tests := []struct {
		name    string
		path    string
		key     string
		fields  map[string]string
		json    bool
		status  int
		errName string
		mention string
	}{
		{"wrong key", core, "sk-wrong", map[string]string{"prompt": "x"}, false, 401, "unauthorized", ""},
		{"JSON body", core, "", nil, true, 400, "bad_request", "multipart"},
		{"missing prompt", core, "", map[string]string{"aspect_ratio": "1:1"}, false, 400, "bad_request", "prompt"},
		{"bad ratio", core, "", map[string]string{"prompt": "x", "aspect_ratio": "4:3"}, false, 400, "bad_request", "aspect_ratio"},
		{"bad format", core, "", map[string]string{"prompt": "x", "output_format": "gif"}, false, 400, "bad_request", "output_format"},
		{"bad style", core, "", map[string]string{"prompt": "x", "style_preset": "oil"}, false, 400, "bad_request", "style_preset"},
		{"seed too big", core, "", map[string]string{"prompt": "x", "seed": "4294967295"}, false, 400, "bad_request", "seed"},
		{"sd3 unknown model", "/v2beta/stable-image/generate/sd3", "", map[string]string{"prompt": "x", "model": "sdxl"}, false, 400, "bad_request", "model"},
		{"sd3 cfg_scale range", "/v2beta/stable-image/generate/sd3", "", map[string]string{"prompt": "x", "cfg_scale": "11"}, false, 400, "bad_request", "cfg_scale"},
		{"unknown endpoint", "/v2beta/stable-image/generate/xl", "", map[string]string{"prompt": "x"}, false, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := tt.key
			if key == "" {
				key = s.Key
			}
			var resp *http.Response
			if tt.json {
				resp = post(t, s, tt.path, key, "application/json", nil, strings.NewReader(`{"prompt":"x"}`), "application/json")
			} else {
				resp = post(t, s, tt.path, key, "application/json", tt.fields, nil, "")
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			var body struct {
				ID     string   `json:"id"`
				Name   string   `json:"name"`
				Errors []string `json:"errors"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("decode error body: %v", err)
			}
			if body.ID == "" || body.Name != tt.errName || len(body.Errors) == 0 {
				t.Errorf("body = %+v, want id, name %q and errors", body, tt.errName)
			}
			if !strings.Contains(strings.Join(body.Errors, " "), tt.mention) {
				t.Errorf("errors %q do not mention %q", body.Errors, tt.mention)
			}
		})
	}
}

func TestRawBytesAnswer(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 64})
	resp := post(t, s, "/v2beta/stable-image/generate/ultra", s.Key, "image/*",
		map[string]string{"prompt": "x", "output_format": "webp", "aspect_ratio": "16:9", "seed": "7"}, nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "image/webp" {
		t.Errorf("content type = %q", got)
	}
	if resp.Header.Get("Finish-Reason") != "SUCCESS" || resp.Header.Get("Seed") != "7" {
		t.Errorf("headers finish-reason %q seed %q", resp.Header.Get("Finish-Reason"), resp.Header.Get("Seed"))
	}
	cfg, format, err := image.DecodeConfig(resp.Body)
	if err != nil || format != "webp" {
		t.Fatalf("decode: %v (%s)", err, format)
	}
	if cfg.Width != 64 || cfg.Height >= 64 {
		t.Errorf("size %dx%d, want 64 wide and landscape", cfg.Width, cfg.Height)
	}
}
