package blobgc_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bulkgen/internal/blob"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/blobgc"
	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

const grace = time.Hour

type bundle struct {
	db    *store.DB
	blobs *fileblob.Store
	dir   string // the blob store's folder
	batch store.Batch
	items int // items made so far, for unique names
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := t.Context()
	db := storetest.New(t)
	dir := t.TempDir()
	blobs, err := fileblob.New(dir)
	if err != nil {
		t.Fatalf("fileblob.New: %v", err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	u, err := db.CreateUser(ctx, db.Writer(), store.User{Email: "owner@example.com"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	ws, err := db.CreateWorkspace(ctx, db.Writer(), store.Workspace{OwnerUserID: u.ID, Name: "personal"})
	if err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	batch, err := db.CreateBatch(ctx, db.Writer(), store.Batch{WorkspaceID: ws.ID, UserID: u.ID, Name: "b"})
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	return &bundle{db: db, blobs: blobs, dir: dir, batch: batch}
}

// imageKey is the content-addressed key of the bytes of image i.
func imageKey(i int) string {
	sum := sha256.Sum256(imageData(i))
	return blob.KeyFor(hex.EncodeToString(sum[:]), "png")
}

// twoLevel turns a key of blob.KeyFor into the earlier layout, "ab/cd/…".
func twoLevel(key string) string {
	base := path.Base(key)
	return base[0:2] + "/" + base[2:4] + "/" + base
}

func imageData(i int) []byte { return []byte(fmt.Sprintf("image %d", i)) }

// plant writes data under key straight into the store's folder, last
// modified age ago. (Writing through Put would cost two fsyncs a file.)
func (b *bundle) plant(t *testing.T, key string, data []byte, age time.Duration) {
	t.Helper()
	p := filepath.Join(b.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mt := time.Now().Add(-age)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// reference records an image row for each key, as a finished job does.
func (b *bundle) reference(t *testing.T, keys ...string) {
	t.Helper()
	ctx := t.Context()
	items := make([]store.Item, len(keys))
	for i := range items {
		b.items++
		items[i] = store.Item{BatchID: b.batch.ID, WorkspaceID: b.batch.WorkspaceID, Prompt: "p",
			Model: "preview", Provider: "preview", Format: "png", Name: fmt.Sprintf("%06d.png", b.items)}
	}
	err := b.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := b.db.InsertItems(ctx, tx, items); err != nil {
			return err
		}
		for i, it := range items {
			if _, _, err := b.db.InsertImage(ctx, tx, store.Image{ItemID: it.ID, BatchID: it.BatchID,
				WorkspaceID: it.WorkspaceID, BlobKey: keys[i], SHA256: "x", Format: "png"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("record images: %v", err)
	}
}

func (b *bundle) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(b.dir, filepath.FromSlash(key)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// countFiles counts the regular files in the store's folder.
func (b *bundle) countFiles(t *testing.T) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(b.dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		key        string
		age        time.Duration
		referenced bool
		want       blobgc.Result
		wantKept   bool
	}{
		{name: "old orphan is removed", key: imageKey(1), age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1, Old: 1, Removed: 1, Bytes: int64(len(imageData(1)))}},
		{name: "old referenced file stays", key: imageKey(1), age: 2 * time.Hour, referenced: true,
			want: blobgc.Result{Scanned: 1, Old: 1}, wantKept: true},
		{name: "young orphan stays: its job may not have committed yet", key: imageKey(1), age: grace - time.Minute,
			want: blobgc.Result{Scanned: 1}, wantKept: true},
		{name: "old object that is not an image stays", key: "exports/batch-1.zip", age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1}, wantKept: true},
		{name: "old orphan under the earlier two-level layout is removed", key: twoLevel(imageKey(1)), age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1, Old: 1, Removed: 1, Bytes: int64(len(imageData(1)))}},
		{name: "old temporary file of an interrupted write is removed", key: "ab/.tmp-0123456789abcdef", age: 2 * time.Hour,
			want: blobgc.Result{Temps: 1}},
		{name: "young temporary file stays: its write may be in progress", key: "ab/.tmp-0123456789abcdef", age: time.Minute,
			want: blobgc.Result{}, wantKept: true},
		{name: "old image-like key of other case stays", key: strings.ToUpper(imageKey(1)[:5]) + imageKey(1)[5:], age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1}, wantKept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.plant(t, tt.key, imageData(1), tt.age)
			if tt.referenced {
				b.reference(t, tt.key)
			}
			got, err := blobgc.Sweep(t.Context(), b.db, b.blobs, grace, nil)
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			if got != tt.want {
				t.Errorf("Sweep = %+v, want %+v", got, tt.want)
			}
			if kept := b.exists(t, tt.key); kept != tt.wantKept {
				t.Errorf("file kept = %v, want %v", kept, tt.wantKept)
			}
		})
	}
}

func TestSweepManyFiles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// More files than several database chunks, with referenced ones and
	// young ones spread through each.
	const old, young = 2000, 100
	var referenced []string
	for i := range old {
		b.plant(t, imageKey(i), imageData(i), 2*time.Hour)
		if i%7 == 0 {
			referenced = append(referenced, imageKey(i))
		}
	}
	for i := old; i < old+young; i++ {
		b.plant(t, imageKey(i), imageData(i), time.Minute)
	}
	b.reference(t, referenced...)

	got, err := blobgc.Sweep(t.Context(), b.db, b.blobs, grace, nil)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	want := blobgc.Result{Scanned: old + young, Old: old, Removed: old - len(referenced)}
	if got.Scanned != want.Scanned || got.Old != want.Old || got.Removed != want.Removed || got.Failed != 0 {
		t.Errorf("Sweep = %+v, want %+v", got, want)
	}
	if n := b.countFiles(t); n != len(referenced)+young {
		t.Errorf("%d files left, want %d referenced + %d young", n, len(referenced), young)
	}
	for _, k := range referenced {
		if !b.exists(t, k) {
			t.Fatalf("referenced file %s was removed", k)
		}
	}
}

// hookedStore is a fileblob.Store whose List runs hooks, to act in the
// middle of a sweep.
type hookedStore struct {
	*fileblob.Store
	afterKey  func(n int) // after fn has taken the n-th key
	afterList func()      // once the walk is over
}

func (h *hookedStore) List(ctx context.Context, fn func(string, time.Time) error) error {
	n := 0
	err := h.Store.List(ctx, func(key string, mt time.Time) error {
		if err := fn(key, mt); err != nil {
			return err
		}
		n++
		if h.afterKey != nil {
			h.afterKey(n)
		}
		return nil
	})
	if h.afterList != nil {
		h.afterList()
	}
	return err
}

func TestSweepKeepsAFilePutAgainMeanwhile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := imageKey(1)
	b.plant(t, key, imageData(1), 2*time.Hour)
	// A new job makes the same bytes after the listing saw the file old;
	// it will record the image once its transaction commits.
	s := &hookedStore{Store: b.blobs, afterList: func() {
		if err := b.blobs.Put(t.Context(), key, bytes.NewReader(imageData(1))); err != nil {
			t.Errorf("Put: %v", err)
		}
	}}
	got, err := blobgc.Sweep(t.Context(), b.db, s, grace, nil)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got.Old != 1 || got.Removed != 0 {
		t.Errorf("Sweep = %+v, want 1 old and 0 removed", got)
	}
	if !b.exists(t, key) {
		t.Errorf("the file put again during the sweep was removed")
	}
}

func TestSweepStoreWithoutLister(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.plant(t, imageKey(1), imageData(1), 2*time.Hour)
	plain := struct{ blob.Store }{b.blobs} // hides List
	_, err := blobgc.Sweep(t.Context(), b.db, plain, grace, nil)
	if !errors.Is(err, blobgc.ErrNotListable) {
		t.Errorf("Sweep error = %v, want ErrNotListable", err)
	}
	if !b.exists(t, imageKey(1)) {
		t.Errorf("a file was removed from a store that cannot list")
	}
}

func TestSweepStopsWhenCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const files, stopAfter = 50, 10
	for i := range files {
		b.plant(t, imageKey(i), imageData(i), 2*time.Hour)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := &hookedStore{Store: b.blobs, afterKey: func(n int) {
		if n == stopAfter {
			cancel()
		}
	}}
	got, err := blobgc.Sweep(ctx, b.db, s, grace, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Sweep error = %v, want context.Canceled", err)
	}
	if got.Scanned != stopAfter || got.Removed != 0 {
		t.Errorf("Sweep = %+v, want %d scanned and nothing removed", got, stopAfter)
	}
	if n := b.countFiles(t); n != files {
		t.Errorf("%d files left, want all %d", n, files)
	}
}

// logBuffer is a log destination safe to read while Run writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestRunSweepsUntilCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		blobgc.Run(ctx, 10*time.Millisecond, b.db, b.blobs, grace, logger)
	}()

	waitGone := func(key string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for b.exists(t, key) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still there after 10s; log:\n%s", key, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The first sweep, then a later one: Run keeps sweeping.
	b.plant(t, imageKey(1), imageData(1), 2*time.Hour)
	waitGone(imageKey(1))
	b.plant(t, imageKey(2), imageData(2), 2*time.Hour)
	waitGone(imageKey(2))

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context ended")
	}
	log := logs.String()
	if n := strings.Count(log, `"msg":"removed orphaned image files"`); n != 2 {
		t.Errorf("log has %d sweep lines, want 2 (one per removal, none for empty sweeps):\n%s", n, log)
	}
	if !strings.Contains(log, `"removed":1`) {
		t.Errorf("log lacks the removed count:\n%s", log)
	}
	if strings.Contains(log, `"level":"WARN"`) {
		t.Errorf("warnings logged:\n%s", log)
	}
}

func TestRunReturnsAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		interval time.Duration
		hideList bool
		wantLog  string
	}{
		{name: "interval zero disables", interval: 0},
		{name: "store without Lister", interval: time.Millisecond, hideList: true, wantLog: "cannot list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.plant(t, imageKey(1), imageData(1), 2*time.Hour)
			var s blob.Store = b.blobs
			if tt.hideList {
				s = struct{ blob.Store }{b.blobs}
			}
			logs := &logBuffer{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				blobgc.Run(t.Context(), tt.interval, b.db, s, grace, slog.New(slog.NewTextHandler(logs, nil)))
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q lacks %q", logs.String(), tt.wantLog)
			}
			if !b.exists(t, imageKey(1)) {
				t.Errorf("Run removed a file")
			}
		})
	}
}
