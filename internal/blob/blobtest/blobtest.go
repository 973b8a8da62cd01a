// Package blobtest is the conformance suite every blob.Store passes. Each
// backend's own test calls Run with a constructor for a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Store { … })
//	}
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bulkgen/internal/blob"
)

// Run runs the suite. newStore must return an empty store that is cleaned
// up when t ends; each subtest calls it once. The List cases run when the
// store implements blob.Lister and are skipped otherwise.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutOpen", testPutOpen},
		{"PutSameKeyTwice", testPutSameKeyTwice},
		{"OpenMissing", testOpenMissing},
		{"Delete", testDelete},
		{"Seek", testSeek},
		{"FailedPutLeavesOldObject", testFailedPut},
		{"CanceledContext", testCanceledContext},
		{"ConcurrentPutsSameKey", testConcurrentPuts},
		{"HostileKeys", testHostileKeys},
		{"List", testList},
		{"ListStopsOnError", testListStops},
		{"ListCanceled", testListCanceled},
		{"ListDeleteWhileWalking", testListDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

// keyOf returns the content-addressed key of data.
func keyOf(data []byte) string {
	sum := sha256.Sum256(data)
	return blob.KeyFor(hex.EncodeToString(sum[:]), "png")
}

// read returns the object's bytes, failing the test on any error.
func read(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	obj, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer func() { _ = obj.Close() }()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	if obj.Size() != int64(len(data)) {
		t.Errorf("Size() = %d, want %d", obj.Size(), len(data))
	}
	return data
}

func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func testPutOpen(t *testing.T, s blob.Store) {
	cases := [][]byte{
		[]byte("\x89PNG\r\n\x1a\n tiny"),
		{},                                      // empty object
		bytes.Repeat([]byte("0123456789"), 1e5), // 1 MB, more than one copy buffer
	}
	for _, data := range cases {
		key := keyOf(data)
		put(t, s, key, data)
		obj, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if obj.ModTime().IsZero() {
			t.Errorf("ModTime() is zero, want the write time")
		}
		_ = obj.Close()
		if got := read(t, s, key); !bytes.Equal(got, data) {
			t.Errorf("read back %d bytes, want the %d put", len(got), len(data))
		}
	}
	// Keys that are not content addresses work too.
	put(t, s, "exports/batch-1.zip", []byte("zip"))
	if got := read(t, s, "exports/batch-1.zip"); string(got) != "zip" {
		t.Errorf("read back %q, want %q", got, "zip")
	}
}

func testPutSameKeyTwice(t *testing.T, s blob.Store) {
	data := []byte("same bytes")
	key := keyOf(data)
	put(t, s, key, data)
	put(t, s, key, data)
	if got := read(t, s, key); !bytes.Equal(got, data) {
		t.Errorf("after two Puts read %q, want %q", got, data)
	}
	// Replacing with other bytes is allowed and visible.
	put(t, s, "x/replace.txt", []byte("old"))
	put(t, s, "x/replace.txt", []byte("new"))
	if got := read(t, s, "x/replace.txt"); string(got) != "new" {
		t.Errorf("after replacing read %q, want %q", got, "new")
	}
}

func testOpenMissing(t *testing.T, s blob.Store) {
	for _, key := range []string{"ab/cd/missing.png", "nothing"} {
		obj, err := s.Open(t.Context(), key)
		if !errors.Is(err, blob.ErrNotFound) {
			if obj != nil {
				_ = obj.Close()
			}
			t.Errorf("Open(%q) error = %v, want ErrNotFound", key, err)
		}
	}
}

func testDelete(t *testing.T, s blob.Store) {
	data := []byte("to delete")
	key := keyOf(data)
	put(t, s, key, data)
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Open(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open after Delete error = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), key); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
}

func testSeek(t *testing.T, s blob.Store) {
	data := []byte("0123456789abcdef")
	put(t, s, "seek/me", data)
	obj, err := s.Open(t.Context(), "seek/me")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = obj.Close() }()
	if _, err := obj.Seek(10, io.SeekStart); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(obj, buf); err != nil {
		t.Fatalf("read after Seek: %v", err)
	}
	if string(buf) != "abcd" {
		t.Errorf("read %q after seeking to 10, want %q", buf, "abcd")
	}
	if end, err := obj.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
		t.Errorf("Seek(end) = %d, %v; want %d", end, err, len(data))
	}
}

// failingReader returns some bytes and then an error.
type failingReader struct{ sent bool }

var errReader = errors.New("reader broke")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.sent {
		return 0, errReader
	}
	r.sent = true
	return copy(p, "partial"), nil
}

func testFailedPut(t *testing.T, s blob.Store) {
	put(t, s, "keep/me", []byte("original"))
	err := s.Put(t.Context(), "keep/me", &failingReader{})
	if !errors.Is(err, errReader) {
		t.Errorf("Put with a failing reader error = %v, want %v", err, errReader)
	}
	if got := read(t, s, "keep/me"); string(got) != "original" {
		t.Errorf("after a failed Put read %q, want %q", got, "original")
	}
	if err := s.Put(t.Context(), "never/there", &failingReader{}); err == nil {
		t.Errorf("Put with a failing reader succeeded")
	}
	if _, err := s.Open(t.Context(), "never/there"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open after a failed first Put error = %v, want ErrNotFound", err)
	}
}

func testCanceledContext(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, "canceled/put", strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(canceled) error = %v, want context.Canceled", err)
	}
	if _, err := s.Open(t.Context(), "canceled/put"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open after a canceled Put error = %v, want ErrNotFound", err)
	}
}

func testConcurrentPuts(t *testing.T, s blob.Store) {
	// Writers racing on one key: the object that remains is one writer's
	// whole content, never a mix or a truncation.
	const writers = 8
	contents := make([][]byte, writers)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte(fmt.Sprintf("writer %d;", i)), 20000)
	}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := s.Put(t.Context(), "race/key", bytes.NewReader(contents[i])); err != nil {
				t.Errorf("Put #%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got := read(t, s, "race/key")
	for _, c := range contents {
		if bytes.Equal(got, c) {
			return
		}
	}
	t.Errorf("after concurrent Puts the object (%d bytes) matches no writer's content", len(got))
}

func testHostileKeys(t *testing.T, s blob.Store) {
	for _, key := range []string{"", "../x", "/abs", "a/../../b", "a/./b", "a//b", `..\x`, ".tmp-x", "a/.hidden"} {
		if err := s.Put(t.Context(), key, strings.NewReader("evil")); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if obj, err := s.Open(t.Context(), key); !errors.Is(err, blob.ErrInvalidKey) {
			if obj != nil {
				_ = obj.Close()
			}
			t.Errorf("Open(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(t.Context(), key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidKey", key, err)
		}
	}
}

// lister returns s as a blob.Lister, or skips the test.
func lister(t *testing.T, s blob.Store) blob.Lister {
	t.Helper()
	l, ok := s.(blob.Lister)
	if !ok {
		t.Skipf("%T does not implement blob.Lister", s)
	}
	return l
}

// listAll returns every key List reports with its modification time,
// failing the test on a key reported twice.
func listAll(t *testing.T, l blob.Lister) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	err := l.List(t.Context(), func(key string, modTime time.Time) error {
		if _, dup := got[key]; dup {
			t.Errorf("List reported %q twice", key)
		}
		got[key] = modTime
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

func testList(t *testing.T, s blob.Store) {
	l := lister(t, s)
	if got := listAll(t, l); len(got) != 0 {
		t.Errorf("List of an empty store = %q, want nothing", slices.Sorted(maps.Keys(got)))
	}
	before := time.Now()
	want := []string{keyOf([]byte("one")), keyOf([]byte("two")), "exports/batch-1.zip", "top", "x/y/z/deep.txt"}
	for _, k := range want {
		put(t, s, k, []byte(k))
	}
	put(t, s, "gone/soon", []byte("x"))
	if err := s.Delete(t.Context(), "gone/soon"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_ = s.Put(t.Context(), "never/there", &failingReader{}) // leaves no object, and no listed leftovers
	after := time.Now()

	got := listAll(t, l)
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, slices.Sorted(slices.Values(want))) {
		t.Errorf("List = %q, want %q", keys, slices.Sorted(slices.Values(want)))
	}
	// Clocks of a file system or an object server may be a little off,
	// and some keep seconds only.
	for k, mt := range got {
		if mt.Before(before.Add(-time.Minute)) || mt.After(after.Add(time.Minute)) {
			t.Errorf("List: %q modified %v, want about %v", k, mt, before)
		}
	}
}

func testListStops(t *testing.T, s blob.Store) {
	l := lister(t, s)
	for i := range 5 {
		put(t, s, fmt.Sprintf("stop/%d", i), []byte("x"))
	}
	errStop := errors.New("enough")
	calls := 0
	err := l.List(t.Context(), func(string, time.Time) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("List error = %v, want the callback's %v", err, errStop)
	}
	if calls != 1 {
		t.Errorf("callback called %d times after returning an error, want 1", calls)
	}
}

func testListCanceled(t *testing.T, s blob.Store) {
	l := lister(t, s)
	for i := range 5 {
		put(t, s, fmt.Sprintf("cancel/%d", i), []byte("x"))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.List(ctx, func(key string, _ time.Time) error {
		t.Errorf("List(canceled) reported %q", key)
		return nil
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("List(canceled) error = %v, want context.Canceled", err)
	}

	// Cancelled during the walk: no more calls, and the walk says why.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := l.List(ctx, func(string, time.Time) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("List cancelled midway error = %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("callback called %d times after the context was cancelled, want 1", calls)
	}
}

func testListDelete(t *testing.T, s blob.Store) {
	// A sweeper deletes what it finds while the walk goes on.
	l := lister(t, s)
	var want []string
	for i := range 20 {
		k := keyOf([]byte{byte(i)})
		want = append(want, k)
		put(t, s, k, []byte{byte(i)})
	}
	var seen []string
	err := l.List(t.Context(), func(key string, _ time.Time) error {
		seen = append(seen, key)
		return s.Delete(t.Context(), key)
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	slices.Sort(seen)
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Errorf("List while deleting reported %d keys, want the %d put", len(seen), len(want))
	}
	if got := listAll(t, l); len(got) != 0 {
		t.Errorf("after deleting everything List = %q, want nothing", slices.Sorted(maps.Keys(got)))
	}
}
