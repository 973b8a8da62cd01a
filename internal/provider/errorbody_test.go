package provider_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
)

func TestBodySnippet(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 150) // 300 bytes: the cut falls inside a rune
	tests := []struct {
		name, body, want string
	}{
		{"empty", "  \n", "empty body"},
		{"short", " <html>bad gateway</html>\n", "<html>bad gateway</html>"},
		{"invalid utf-8 dropped", "ok\xffok", "okok"},
		{"long cut on a rune", long, strings.Repeat("é", 100) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := provider.BodySnippet([]byte(tt.body)); got != tt.want {
				t.Errorf("BodySnippet = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJSONCode(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		``: "", `null`: "", ` "rate_limit_exceeded" `: "rate_limit_exceeded", `429`: "429", `{"x":1}`: `{"x":1}`,
	} {
		if got := provider.JSONCode(json.RawMessage(raw)); got != want {
			t.Errorf("JSONCode(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestRateLimitDelay(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		h    map[string]string
		want time.Duration
	}{
		{"none", nil, 0},
		{"retry-after wins", map[string]string{"Retry-After": "3", "X-Ratelimit-Reset-Requests": "9s"}, 3 * time.Second},
		{"exhausted budget", map[string]string{"X-Ratelimit-Reset-Requests": "9s", "X-Ratelimit-Reset-Tokens": "12ms", "X-Ratelimit-Remaining-Tokens": "0"}, 12 * time.Millisecond},
		{"longest without remaining", map[string]string{"X-Ratelimit-Reset-Requests": "1m0s", "X-Ratelimit-Reset-Tokens": "6s"}, time.Minute},
		{"unparsable reset", map[string]string{"X-Ratelimit-Reset-Requests": "soon"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			if got := provider.RateLimitDelay(h, now); got != tt.want {
				t.Errorf("RateLimitDelay = %v, want %v", got, tt.want)
			}
		})
	}
}
