package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/input"
	"bulkgen/internal/metrics"
	"bulkgen/internal/store"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, nil)
	var out map[string]string
	b.must(t, http.StatusOK, "GET", "/healthz", "", nil, &out)
	if out["status"] != "ok" {
		t.Errorf("healthz status %q, want ok", out["status"])
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		breakIt    func(t *testing.T, db *store.DB)
		wantStatus int
		wantChecks map[string]string
	}{
		{"ready", nil, http.StatusOK, map[string]string{"database": "ok", "queue": "ok"}},
		{"queue table gone", func(t *testing.T, db *store.DB) {
			if _, err := db.Writer().ExecContext(context.Background(), `DROP TABLE river_job`); err != nil {
				t.Fatalf("drop river_job: %v", err)
			}
		}, http.StatusServiceUnavailable, map[string]string{"database": "ok", "queue": "unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newTestBundle(t, nil)
			if tt.breakIt != nil {
				tt.breakIt(t, b.DB)
			}
			var out struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			b.must(t, tt.wantStatus, "GET", "/readyz", "", nil, &out)
			for k, v := range tt.wantChecks {
				if out.Checks[k] != v {
					t.Errorf("check %s = %q, want %q (all: %v)", k, out.Checks[k], v, out.Checks)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	b := newTestBundle(t, func(d *Deps) { d.Ext.Metrics = m })

	// Traffic: two answered routes and one unmatched path.
	b.must(t, http.StatusOK, "GET", "/healthz", "", nil, nil)
	b.must(t, http.StatusOK, "GET", "/healthz", "", nil, nil)
	b.must(t, http.StatusNotFound, "GET", "/api/v1/batches/999999/events", b.A.Token, nil, nil)
	b.must(t, http.StatusNotFound, "GET", "/no/such/path", "", nil, nil)

	// Jobs: a queued batch of three preview images.
	submitTestBatch(t, b, b.A, []string{"a", "b", "c"})

	// The worker's side.
	m.ObserveProvider("preview", 150*time.Millisecond)
	m.ImageGenerated("preview")
	m.ProviderError("openai", "retryable")

	r := b.do(t, "GET", "/metrics", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", r.Status)
	}
	text := string(r.Body)
	for _, want := range []string{
		`bulkgen_http_requests_total{method="GET",route="GET /healthz",status="200"} 2`,
		`bulkgen_http_requests_total{method="GET",route="GET /api/v1/batches/{id}/events",status="404"} 1`,
		`bulkgen_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`bulkgen_jobs{provider="preview",state="available"} 3`,
		`bulkgen_provider_request_duration_seconds_count{provider="preview"} 1`,
		`bulkgen_images_generated_total{provider="preview"} 1`,
		`bulkgen_provider_errors_total{class="retryable",provider="openai"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(text, "bulkgen_"))
	}
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// submitTestBatch writes a batch of preview items (one per prompt, 64x64,
// the prompt also its name) for tn straight through the batch service, as
// the batch API would, and returns it with its items.
func submitTestBatch(t testing.TB, b *testBundle, tn testTenant, prompts []string) (store.Batch, []store.Item) {
	t.Helper()
	ctx := context.Background()
	rows := make([]map[string]string, len(prompts))
	for i, p := range prompts {
		rows[i] = map[string]string{"prompt": p, "seed": strconv.Itoa(i), "name": p, "k": "v" + p}
	}
	created, err := b.Server.ext.Batches.Create(ctx, batch.Spec{WorkspaceID: tn.WorkspaceID, UserID: tn.UserID, Name: "test",
		SourceFile: "prompts.txt", Plan: batch.Config{Defaults: batch.Defaults{Model: "preview", Size: "64x64", Format: "png"}}},
		batch.InputFunc(func() (batch.RowSource, error) { return &literalRows{file: "prompts.txt", rows: rows}, nil }))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	bt := created.Batch
	items, err := b.DB.ListItems(ctx, b.DB.Reader(), tn.WorkspaceID, store.ItemFilter{BatchID: bt.ID}, 0, 1000)
	if err != nil {
		t.Fatalf("list items: %v", err)
	}
	if len(items) != len(prompts) && len(prompts) <= 1000 {
		t.Fatalf("got %d items, want %d", len(items), len(prompts))
	}
	return bt, items
}

// literalRows are input rows given as maps, read literally (no template).
type literalRows struct {
	file string
	rows []map[string]string
	next int
}

func (l *literalRows) Next() (input.Row, error) {
	if l.next >= len(l.rows) {
		return input.Row{}, io.EOF
	}
	l.next++
	return input.Row{File: l.file, Line: l.next, Literal: true, Values: l.rows[l.next-1]}, nil
}
