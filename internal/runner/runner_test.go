package runner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			_, err := Run(context.Background(), context.Background(), Config{Inputs: []Input{in}, DryRun: true})
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
