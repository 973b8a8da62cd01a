package runner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
)

// TestInputErrorsNameTheFileOnce: the errors of opening and parsing an input
// already start with its name (os.Open's "open NAME: …", input's "NAME: …");
// the runner must not add it again ("open nope.csv: open nope.csv: …").
func TestInputErrorsNameTheFileOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	xlsx := filepath.Join(dir, "book.xlsx")
	if err := os.WriteFile(xlsx, []byte("PK\x03\x04 a zipped workbook"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.csv")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "nope.csv"), "no such file"},
		{"xlsx", xlsx, "save it as CSV UTF-8"},
		{"empty", empty, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := Input{Name: tt.file, Open: func() (io.ReadCloser, error) { return os.Open(tt.file) }}
			_, err := Run(context.Background(), context.Background(), Config{Inputs: []Input{in}, Planner: previewPlanner(t), DryRun: true})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if n := strings.Count(msg, tt.file); n != 1 || !strings.Contains(msg, tt.want) {
				t.Errorf("error names the file %d times, want once, with %q: %s", n, tt.want, msg)
			}
		})
	}
}

// TestDryRunRowsLine: the plan's rows line mentions invalid rows only when
// there are some ("(0 invalid, listed above)" listed nothing).
func TestDryRunRowsLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, csv, want string
	}{
		{"all valid", "prompt\na cat\na dog\n", "  rows:    2\n"},
		{"one invalid", "prompt,size\na cat,\na dog,banana\n", "  rows:    2 (1 invalid, listed above, would be skipped)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, problems strings.Builder
			in := Input{Name: "p.csv", Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.csv)), nil }}
			if _, err := Run(context.Background(), context.Background(), Config{Inputs: []Input{in}, Planner: previewPlanner(t), DryRun: true, Out: &out, Problems: &problems}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("plan lacks %q:\n%s\nproblems:\n%s", tt.want, out.String(), problems.String())
			}
		})
	}
}

// previewPlanner plans rows for the preview engine, as `bulkgen run` does
// with no provider configured.
func previewPlanner(t *testing.T) *batch.Planner {
	t.Helper()
	cat, err := catalog.Open("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := batch.NewPlanner(batch.Config{Catalog: cat, Defaults: batch.Defaults{Model: "preview", N: 1}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
