package fileblob_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bulkgen/internal/blob"
	"bulkgen/internal/blob/blobtest"
	"bulkgen/internal/blob/fileblob"
)

func newStore(t *testing.T, dir string) *fileblob.Store {
	t.Helper()
	s, err := fileblob.New(dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t, t.TempDir()) })
}

func TestLayoutOnDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "blobs") // created by New
	s := newStore(t, dir)
	key := "ab/cd/abcd.png"
	if err := s.Put(t.Context(), key, strings.NewReader("img")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "ab", "cd", "abcd.png"))
	if err != nil || string(data) != "img" {
		t.Errorf("file on disk = %q, %v; want %q", data, err, "img")
	}
	// No temporary file is left behind.
	entries, err := os.ReadDir(filepath.Join(dir, "ab", "cd"))
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only the object", len(entries))
	}
}

func TestSymlinkCannotEscape(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Someone with access to the folder plants a link to the outside.
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	s := newStore(t, dir)

	if obj, err := s.Open(t.Context(), "link/secret"); err == nil {
		_ = obj.Close()
		t.Errorf("Open through a symlink out of the root succeeded, want an error")
	}
	if err := s.Put(t.Context(), "link/planted", bytes.NewReader([]byte("x"))); err == nil {
		t.Errorf("Put through a symlink out of the root succeeded, want an error")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written outside the root (stat error %v)", err)
	}
	if err := s.Delete(t.Context(), "link/secret"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
			t.Errorf("Delete through a symlink removed a file outside the root")
		}
	}
}
