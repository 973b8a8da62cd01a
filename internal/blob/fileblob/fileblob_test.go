package fileblob_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestPutAfterFolderRemoved: the store remembers the folders it made; one
// removed behind its back is made again on the next Put.
func TestPutAfterFolderRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := t.Context()
	if err := s.Put(ctx, "ab/cd/one.png", strings.NewReader("1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "ab")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "ab/cd/two.png", strings.NewReader("2")); err != nil {
		t.Fatalf("Put after the folder was removed: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "ab", "cd", "two.png")); err != nil || string(data) != "2" {
		t.Errorf("file on disk = %q, %v; want %q", data, err, "2")
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

// listKeys returns the keys s.List reports, with their times.
func listKeys(t *testing.T, s *fileblob.Store) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	if err := s.List(t.Context(), func(key string, mt time.Time) error {
		got[key] = mt
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

func TestListSkipsWhatIsNotAnObject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	key := "ab/cd/abcd.png"
	if err := s.Put(t.Context(), key, strings.NewReader("img")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// What a crashed Put, another program or a person may leave behind.
	plant := map[string]string{
		"ab/cd/.tmp-0123456789abcdef": "a crashed Put's temporary file",
		".hidden/ab/cd/x.png":         "under a dot folder",
		"ab/cd/bad name.png":          "not a valid key",
	}
	for name, data := range plant {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty", "folder"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "ab", "cd", "abcd.png"), filepath.Join(dir, "ab", "cd", "link.png")); err != nil {
		t.Logf("no symlink case: %v", err)
	}

	got := listKeys(t, s)
	if len(got) != 1 {
		t.Errorf("List = %v, want only %q", got, key)
	}
	if _, ok := got[key]; !ok {
		t.Errorf("List = %v, lacks %q", got, key)
	}
}

// TestCleanTemps: the temporary files of interrupted Puts go once they are
// older than the cut-off; young ones (a Put in progress), objects and what
// is under a dot folder stay.
func TestCleanTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	if err := s.Put(t.Context(), "ab/abcd.png", strings.NewReader("img")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	files := []struct {
		name string
		age  time.Duration
		want bool // still there after CleanTemps
	}{
		{"ab/.tmp-0123456789abcdef", 3 * time.Hour, false},
		{"cd/ef/.tmp-fedcba9876543210", 3 * time.Hour, false},
		{"ab/.tmp-young", time.Minute, true},
		{"ab/abcd.png", 3 * time.Hour, true},
		{".hidden/.tmp-0123456789abcdef", 3 * time.Hour, true},
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		when := time.Now().Add(-f.age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.CleanTemps(t.Context(), time.Hour)
	if err != nil || n != 2 {
		t.Errorf("CleanTemps = %d, %v; want 2, nil", n, err)
	}
	for _, f := range files {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.name)))
		if got := err == nil; got != f.want {
			t.Errorf("%s: there = %v, want %v (stat: %v)", f.name, got, f.want, err)
		}
	}
}

func TestListReportsFileTimeAndPutRefreshesIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	key := "ab/cd/abcd.png"
	put := func() {
		t.Helper()
		if err := s.Put(t.Context(), key, strings.NewReader("img")); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	put()
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(dir, "ab", "cd", "abcd.png"), old, old); err != nil {
		t.Fatal(err)
	}
	if got := listKeys(t, s)[key]; !got.Equal(old) {
		t.Errorf("List time of an aged file = %v, want %v", got, old)
	}
	// A sweeper relies on this: putting the same bytes again makes the
	// object young, so it is not removed under a job about to record it.
	put()
	if got := listKeys(t, s)[key]; got.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("List time after a second Put = %v, want about now", got)
	}
}

func TestListReturnsCallbackWalkControls(t *testing.T) {
	t.Parallel()
	s := newStore(t, t.TempDir())
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		if err := s.Put(t.Context(), k, strings.NewReader("x")); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	// fs.SkipDir and fs.SkipAll mean something to the walk inside List;
	// from the callback they are errors like any other.
	for _, want := range []error{fs.SkipDir, fs.SkipAll} {
		calls := 0
		err := s.List(t.Context(), func(string, time.Time) error { calls++; return want })
		if !errors.Is(err, want) {
			t.Errorf("callback returning %v: List = %v, want it back", want, err)
		}
		if calls != 1 {
			t.Errorf("callback returning %v: called %d times, want 1", want, calls)
		}
	}
}

// TestDeleteIfOlder: an object written before the cutoff goes, one
// written since stays, a missing one is no error.
func TestDeleteIfOlder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := t.Context()
	const key = "ab/old.png"
	if err := s.Put(ctx, key, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.DeleteIfOlder(ctx, key, time.Now().Add(-time.Hour)); err != nil || gone {
		t.Fatalf("young object: DeleteIfOlder = %v, %v; want kept", gone, err)
	}
	age(t, dir, key, 2*time.Hour)
	if gone, err := s.DeleteIfOlder(ctx, key, time.Now().Add(-time.Hour)); err != nil || !gone {
		t.Fatalf("old object: DeleteIfOlder = %v, %v; want deleted", gone, err)
	}
	if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open after delete: %v, want ErrNotFound", err)
	}
	if gone, err := s.DeleteIfOlder(ctx, key, time.Now()); err != nil || gone {
		t.Errorf("missing object: DeleteIfOlder = %v, %v", gone, err)
	}
	if _, err := s.DeleteIfOlder(ctx, "../x", time.Now()); !errors.Is(err, blob.ErrInvalidKey) {
		t.Errorf("bad key: %v, want ErrInvalidKey", err)
	}
	if left := filesIn(t, filepath.Join(dir, "ab")); len(left) != 0 {
		t.Errorf("files left in the folder: %v", left)
	}
}

// TestDeleteIfOlderRacingPut runs the sweeper's delete of an old object
// and a Put of the same key at the same moment, many times: whichever runs
// first, the object the Put wrote is there afterwards. A check of the age
// followed by a plain Delete loses it when the Put lands in between.
func TestDeleteIfOlderRacingPut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := t.Context()
	const key = "cd/shared.png"
	for i := range 300 {
		if err := s.Put(ctx, key, strings.NewReader("same bytes")); err != nil {
			t.Fatal(err)
		}
		age(t, dir, key, 2*time.Hour)
		cutoff := time.Now().Add(-time.Hour)
		start := make(chan struct{})
		done := make(chan error, 2)
		go func() {
			<-start
			done <- s.Put(ctx, key, strings.NewReader("same bytes"))
		}()
		go func() {
			<-start
			_, err := s.DeleteIfOlder(ctx, key, cutoff)
			done <- err
		}()
		close(start)
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		obj, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("round %d: the object a Put just wrote is gone: %v", i, err)
		}
		_ = obj.Close()
	}
}

// age sets key's file's modification time to d ago.
func age(t *testing.T, dir, key string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(key)), when, when); err != nil {
		t.Fatal(err)
	}
}

func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
