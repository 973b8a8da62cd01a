package a1111

import (
	"net/http"
	"testing"

	"bulkgen/internal/provider"
)

func TestHTTPErrorClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		class  provider.Class
		msg    string
	}{
		{"sampler", 404, `{"error":"HTTPException","detail":"Sampler not found","body":"","errors":""}`, provider.Invalid, "Sampler not found"},
		{"no api", 404, `{"detail":"Not Found"}`, provider.Invalid, "Not Found"},
		{"fastapi 422", 422, `{"detail":[{"loc":["body","width"],"msg":"value is not a valid integer","type":"type_error.integer"}]}`,
			provider.Invalid, "width: value is not a valid integer"},
		{"auth", 401, `{"detail":"Incorrect username or password"}`, provider.Auth, "Incorrect username or password"},
		{"oom", 500, `{"error":"OutOfMemoryError","detail":"","body":"","errors":"CUDA out of memory. Tried to allocate 2 GiB"}`,
			provider.Retryable, "CUDA out of memory. Tried to allocate 2 GiB"},
		{"bad input image", 500, `{"error":"HTTPException","detail":"Invalid encoded image","body":"","errors":""}`, provider.Invalid, "Invalid encoded image"},
		{"plain 502", 502, `Bad Gateway`, provider.Retryable, "Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: tt.status, Status: http.StatusText(tt.status)}
			e := httpError(resp, []byte(tt.body))
			if e.Class != tt.class || e.Message != tt.msg || e.Status != tt.status {
				t.Errorf("got %s %d %q, want %s %d %q", e.Class, e.Status, e.Message, tt.class, tt.status, tt.msg)
			}
		})
	}
}
