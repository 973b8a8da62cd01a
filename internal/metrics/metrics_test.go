package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return string(body)
}

func TestNilMetricsIsNoOp(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.ObserveHTTP("GET /x", "GET", 200, time.Second)
	m.ObserveProvider("p", time.Second)
	m.ImageGenerated("p")
	m.ProviderError("p", "auth")
	m.SetJobSource(nil, time.Second)
}

func TestCounters(t *testing.T) {
	t.Parallel()
	m := New()
	m.ObserveHTTP("", "GET", 404, time.Millisecond)
	m.ObserveProvider("openai", 3*time.Second)
	m.ImageGenerated("openai")
	m.ImageGenerated("openai")
	m.ProviderError("openai", "rejected")
	text := scrape(t, m)
	for _, want := range []string{
		`bulkgen_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`bulkgen_provider_request_duration_seconds_bucket{provider="openai",le="5"} 1`,
		`bulkgen_provider_request_duration_seconds_bucket{provider="openai",le="2.5"} 0`,
		`bulkgen_images_generated_total{provider="openai"} 2`,
		`bulkgen_provider_errors_total{class="rejected",provider="openai"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestJobSourceCached(t *testing.T) {
	t.Parallel()
	m := New()
	var calls atomic.Int32
	var fail atomic.Bool
	m.SetJobSource(func(ctx context.Context) ([]JobCount, error) {
		calls.Add(1)
		if fail.Load() {
			return nil, errors.New("db down")
		}
		return []JobCount{{State: "available", Provider: "preview", Count: 7}}, nil
	}, time.Hour)
	for range 3 {
		if text := scrape(t, m); !strings.Contains(text, `bulkgen_jobs{provider="preview",state="available"} 7`) {
			t.Fatalf("scrape lacks the jobs gauge:\n%s", text)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("source called %d times within the TTL, want 1", n)
	}

	// With no cache, a failing source leaves the gauge out.
	m.SetJobSource(func(ctx context.Context) ([]JobCount, error) { return nil, errors.New("db down") }, 0)
	if text := scrape(t, m); strings.Contains(text, "bulkgen_jobs{") {
		t.Errorf("a failing source still produced the gauge")
	}
}
