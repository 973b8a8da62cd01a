package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/store/storetest"
)

// TestBenchServeSmall runs the queue and export scenarios of `bulkgen
// bench serve` on a tiny batch (the limit scenario is the queue scenario
// with a latency option), through the real HTTP API, River and the image worker: each
// must complete with every image succeeded and, for the export, a ZIP that
// is at least as big as the files it holds. Rates are not asserted: they
// depend on the machine. PostgreSQL is used too when
// BULKGEN_TEST_DATABASE_URL names a server. The batch is a dozen images
// because under -race SQLite (a C library translated to Go) runs every
// statement many times slower.
func TestBenchServeSmall(t *testing.T) {
	t.Parallel()
	dbs := []string{"sqlite"}
	pg := os.Getenv(storetest.EnvDatabaseURL)
	if pg != "" {
		dbs = append(dbs, "postgres")
	}
	b := serveBench{
		Images: 12, Workers: 4, Size: "64x64", ExportSize: "64x64", Latency: 10 * time.Millisecond,
		Databases: dbs, Scenarios: []string{scenarioQueue, scenarioExport},
		PostgresURL: pg, Poll: 20 * time.Millisecond, Progress: tlog{t},
	}
	if err := b.check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := b.run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := 2 * len(dbs); len(results) != want {
		t.Fatalf("%d results, want %d", len(results), want)
	}
	for _, r := range results {
		if !r.OK() {
			t.Errorf("%s on %s: %d of %d images succeeded, %d failed", r.Scenario, r.Database, r.Succeeded, r.Images, r.Failed)
		}
		if r.Scenario == scenarioExport && (r.DiskFiles != b.Images || r.ZipBytes < r.DiskBytes) {
			t.Errorf("export on %s: %d files of %d bytes, ZIP of %d bytes", r.Database, r.DiskFiles, r.DiskBytes, r.ZipBytes)
		}
	}
	var out bytes.Buffer
	printServeResults(&out, b, results)
	for _, want := range []string{"Queue overhead", "Export"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table has no %q section:\n%s", want, out.String())
		}
	}
}

// TestBenchServeFlags checks that bad flags are refused before anything
// starts.
func TestBenchServeFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--images", "0"},
		{"--db", "mysql"},
		{"--scenarios", "nope"},
		{"--latency", "0s"},
		{"--bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if err := benchServe(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("bench serve %v: no error", args)
		}
	}
}

// tlog writes the benchmark's progress lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
