package replicatetest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// call sends a JSON request with the server's token and decodes the answer.
func call(t *testing.T, s *Server, method, path, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode %s %s: %v", method, path, err)
	}
	return resp.StatusCode, out
}

const create = "/v1/models/black-forest-labs/flux-schnell/predictions"

func TestInputValidation(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 32})
	tests := []struct {
		name  string
		body  string
		field string
		typ   string
	}{
		{"prompt required", `{"input":{}}`, "input.prompt", "required"},
		{"num_outputs too big", `{"input":{"prompt":"x","num_outputs":5}}`, "input.num_outputs", "number_lte"},
		{"num_outputs as string", `{"input":{"prompt":"x","num_outputs":"2"}}`, "input.num_outputs", "invalid_type"},
		{"steps over the schnell limit", `{"input":{"prompt":"x","num_inference_steps":5}}`, "input.num_inference_steps", "number_lte"},
		{"aspect ratio", `{"input":{"prompt":"x","aspect_ratio":"7:5"}}`, "input.aspect_ratio", "enum"},
		{"jpeg is spelled jpg", `{"input":{"prompt":"x","output_format":"jpeg"}}`, "input.output_format", "enum"},
		{"megapixels is a string", `{"input":{"prompt":"x","megapixels":1}}`, "input.megapixels", "invalid_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body := call(t, s, http.MethodPost, create, tt.body, nil)
			if code != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422", code)
			}
			fields, _ := body["invalid_fields"].([]any)
			if len(fields) != 1 {
				t.Fatalf("invalid_fields = %v, want one", body["invalid_fields"])
			}
			f := fields[0].(map[string]any)
			if f["field"] != tt.field || f["type"] != tt.typ || f["description"] == "" {
				t.Errorf("invalid field = %v, want field %s type %s", f, tt.field, tt.typ)
			}
			if detail, _ := body["detail"].(string); !strings.Contains(detail, tt.field) {
				t.Errorf("detail %q does not name %s", detail, tt.field)
			}
		})
	}
}

func TestCreateForms(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 32})
	v := s.Version("black-forest-labs/flux-schnell")
	tests := []struct {
		name, path, body string
		status           int
	}{
		{"official model", create, `{"input":{"prompt":"x"}}`, 201},
		{"version id", "/v1/predictions", `{"version":"` + v + `","input":{"prompt":"x"}}`, 201},
		{"owner/name:version", "/v1/predictions", `{"version":"black-forest-labs/flux-schnell:` + v + `","input":{"prompt":"x"}}`, 201},
		{"unknown version", "/v1/predictions", `{"version":"` + strings.Repeat("0", 64) + `","input":{"prompt":"x"}}`, 422},
		{"unknown model", "/v1/models/nobody/nothing/predictions", `{"input":{"prompt":"x"}}`, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body := call(t, s, http.MethodPost, tt.path, tt.body, nil)
			if code != tt.status {
				t.Fatalf("status = %d, want %d (%v)", code, tt.status, body)
			}
			if code == 201 && body["status"] != "starting" {
				t.Errorf("status field = %v, want starting without Prefer", body["status"])
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+create, strings.NewReader(`{"input":{"prompt":"x"}}`))
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: status = %d, want 401", resp.StatusCode)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 32, StartTime: 20 * time.Millisecond, ProcessingTime: 500 * time.Millisecond})
	_, p := call(t, s, http.MethodPost, create, `{"input":{"prompt":"x","num_outputs":2}}`, nil)
	id := p["id"].(string)
	seen := map[string]bool{}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		_, p = call(t, s, http.MethodGet, "/v1/predictions/"+id, "", nil)
		seen[p["status"].(string)] = true
		if p["status"] == "succeeded" {
			break
		}
	}
	if !seen["succeeded"] || !seen["processing"] {
		t.Fatalf("states seen %v, want processing then succeeded", seen)
	}
	if out, _ := p["output"].([]any); len(out) != 2 {
		t.Errorf("output = %v, want two URLs", p["output"])
	}

	// Prefer: wait holds until the end; a slow prediction comes back
	// still processing when the wait expires, and can be cancelled.
	_, p = call(t, s, http.MethodPost, create, `{"input":{"prompt":"x"}}`, http.Header{"Prefer": {"wait=5"}})
	if p["status"] != "succeeded" {
		t.Errorf("with Prefer: wait, status = %v, want succeeded", p["status"])
	}
	s.Inject(providertest.Slow, 1)
	_, p = call(t, s, http.MethodPost, create, `{"input":{"prompt":"x"}}`, http.Header{"Prefer": {"wait=1"}})
	if p["status"] != "processing" {
		t.Errorf("slow prediction after the wait: status = %v, want processing", p["status"])
	}
	_, p = call(t, s, http.MethodPost, "/v1/predictions/"+p["id"].(string)+"/cancel", "", nil)
	if p["status"] != "canceled" || s.Cancels() != 1 {
		t.Errorf("after cancel: status = %v, cancels = %d", p["status"], s.Cancels())
	}
}
