package bfltest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"bulkgen/internal/provider/bfl/bfltest"
)

// post submits body to path with key and decodes the JSON answer.
func post(t *testing.T, srv *bfltest.Server, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("x-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestSubmitValidation(t *testing.T) {
	t.Parallel()
	srv := bfltest.NewServer(t, bfltest.Options{})
	tests := []struct {
		name, path, key, body string
		status                int
		detail                string
	}{
		{"ok flux-2", "/v1/flux-2-pro", srv.Key, `{"prompt":"x","width":1440,"height":816}`, 200, ""},
		{"no key", "/v1/flux-2-pro", "", `{"prompt":"x"}`, 401, ""},
		{"wrong key", "/v1/flux-2-pro", "nope", `{"prompt":"x"}`, 403, ""},
		{"unknown model", "/v1/flux-9", srv.Key, `{"prompt":"x"}`, 404, ""},
		{"no prompt", "/v1/flux-2-pro", srv.Key, `{"width":1024,"height":1024}`, 422, "Field required"},
		{"flux-2 multiple of 16", "/v1/flux-2-pro", srv.Key, `{"prompt":"x","width":1000,"height":1024}`, 422, "multiple of 16"},
		{"flux 1.1 multiple of 32", "/v1/flux-pro-1.1", srv.Key, `{"prompt":"x","width":1008,"height":1024}`, 422, "multiple of 32"},
		{"flux 1.1 max 1440", "/v1/flux-pro-1.1", srv.Key, `{"prompt":"x","width":1472,"height":1024}`, 422, "less than or equal to 1440"},
		{"ultra ratio", "/v1/flux-pro-1.1-ultra", srv.Key, `{"prompt":"x","aspect_ratio":"32:9"}`, 422, "21:9"},
		{"format", "/v1/flux-2-pro", srv.Key, `{"prompt":"x","output_format":"webp"}`, 422, "'jpeg' or 'png'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, srv, tt.path, tt.key, tt.body)
			if status != tt.status {
				t.Fatalf("status = %d, want %d (%v)", status, tt.status, body)
			}
			if tt.detail != "" {
				b, _ := json.Marshal(body["detail"])
				if !strings.Contains(string(b), tt.detail) {
					t.Errorf("detail = %s, want it to mention %q", b, tt.detail)
				}
			}
			if status == 200 {
				pu, _ := body["polling_url"].(string)
				if body["id"] == "" || !strings.HasPrefix(pu, srv.URL+"/v1/get_result?id=") {
					t.Errorf("submit answer = %v, want id and an absolute polling_url", body)
				}
			}
		})
	}
}

func TestActiveCapAndPoll(t *testing.T) {
	t.Parallel()
	srv := bfltest.NewServer(t, bfltest.Options{MaxActive: 1, PendingFor: 1 << 40})
	status, body := post(t, srv, "/v1/flux-2-pro", srv.Key, `{"prompt":"x"}`)
	if status != 200 {
		t.Fatalf("first submit: %d", status)
	}
	if status, _ := post(t, srv, "/v1/flux-2-pro", srv.Key, `{"prompt":"x"}`); status != 429 {
		t.Errorf("second submit: %d, want 429", status)
	}
	req, _ := http.NewRequest(http.MethodGet, body["polling_url"].(string), nil)
	req.Header.Set("x-key", srv.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var poll map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&poll)
	if poll["status"] != bfltest.StatusPending {
		t.Errorf("poll status = %v, want Pending", poll["status"])
	}
}
