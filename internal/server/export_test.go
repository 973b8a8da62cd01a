package server

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/blob"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/manifest"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// readZip parses an archive and returns its entries by name, in order.
func readZip(t *testing.T, data []byte) ([]*zip.File, map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the export is not a valid zip: %v", err)
	}
	contents := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("open %s: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f.Name, err)
		}
		contents[f.Name] = b
	}
	return zr.File, contents
}

func TestExportZip(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, nil)
	bt, items := submitTestBatch(t, b, b.A, []string{"cat", "dog", "bird", "fish"})
	// Names with a folder, as a name template can make.
	if _, err := b.DB.Writer().ExecContext(t.Context(), dialectSQL(b.DB.Dialect(), `UPDATE items SET name = ? WHERE id = ?`), "sub/dog", items[1].ID); err != nil {
		t.Fatal(err)
	}
	items[1].Name = "sub/dog"
	cat := b.completeItem(t, items[0])
	b.completeItem(t, items[1])
	b.failItem(t, items[2]) // fish stays pending
	if err := b.DB.SetImageReview(t.Context(), b.DB.Writer(), b.A.WorkspaceID, cat.ID, store.ReviewApproved); err != nil {
		t.Fatal(err)
	}
	// The attempts behind them: cat made on its second try, bird failed.
	// started_at in the manifests is when the call behind the record
	// began, as in the CLI's.
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, a := range []store.Attempt{
		{ItemID: items[0].ID, JobAttempt: 1, Status: store.AttemptFailed, StartedAt: t0},
		{ItemID: items[0].ID, JobAttempt: 2, Status: store.AttemptSucceeded, StartedAt: t0.Add(time.Minute)},
		{ItemID: items[2].ID, JobAttempt: 1, Status: store.AttemptFailed, StartedAt: t0.Add(2 * time.Minute)},
	} {
		a.WorkspaceID, a.FinishedAt = b.A.WorkspaceID, a.StartedAt.Add(time.Second)
		if _, err := b.DB.RecordAttempt(t.Context(), b.DB.Writer(), a); err != nil {
			t.Fatal(err)
		}
	}
	wantStarted := map[string]string{"cat": "2026-03-01T09:01:00Z", "dog": "", "bird": "2026-03-01T09:02:00Z", "fish": ""}
	catPNG, err := b.Blobs.Open(t.Context(), cat.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	wantCat, _ := io.ReadAll(catPNG)
	catPNG.Close()

	tests := []struct {
		filter     string
		wantImages []string
		wantStatus []string // manifest status per record, in order
	}{
		{"", []string{"cat.png", "sub/dog.png"}, []string{"succeeded", "succeeded", "failed", "pending"}},
		{"all", []string{"cat.png", "sub/dog.png"}, []string{"succeeded", "succeeded", "failed", "pending"}},
		{"succeeded", []string{"cat.png", "sub/dog.png"}, []string{"succeeded", "succeeded"}},
		{"approved", []string{"cat.png"}, []string{"succeeded"}},
	}
	for _, tt := range tests {
		t.Run("filter="+tt.filter, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, "GET", fmt.Sprintf("/api/v1/batches/%d/export.zip?filter=%s", bt.ID, tt.filter), b.A.Token, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/zip" {
				t.Errorf("Content-Type %q", ct)
			}
			if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
				t.Errorf("Content-Disposition %q", cd)
			}
			files, contents := readZip(t, r.Body)
			var names []string
			for _, f := range files {
				names = append(names, f.Name)
				wantMethod := zip.Store
				if strings.HasPrefix(f.Name, "manifest.") {
					wantMethod = zip.Deflate
				}
				if f.Method != wantMethod {
					t.Errorf("%s: method %d, want %d (images stored, manifests deflated)", f.Name, f.Method, wantMethod)
				}
			}
			wantNames := append(slices.Clone(tt.wantImages), "manifest.csv", "manifest.jsonl")
			if !slices.Equal(names, wantNames) {
				t.Fatalf("entries %q, want %q", names, wantNames)
			}
			if !bytes.Equal(contents["cat.png"], wantCat) {
				t.Errorf("cat.png differs from the stored image")
			}

			rows, err := csv.NewReader(bytes.NewReader(contents["manifest.csv"])).ReadAll()
			if err != nil {
				t.Fatalf("manifest.csv: %v", err)
			}
			if !slices.Equal(rows[0], manifest.Columns) {
				t.Errorf("manifest.csv header %q", rows[0])
			}
			var csvStatus, csvFiles []string
			startedCol := slices.Index(manifest.Columns, "started_at")
			for _, row := range rows[1:] {
				csvStatus = append(csvStatus, row[4])
				if row[3] != "" {
					csvFiles = append(csvFiles, row[3])
				}
				if got, want := row[startedCol], wantStarted[row[7]]; got != want {
					t.Errorf("manifest.csv: %s's started_at = %q, want %q", row[7], got, want)
				}
			}
			if !slices.Equal(csvStatus, tt.wantStatus) {
				t.Errorf("manifest.csv statuses %q, want %q", csvStatus, tt.wantStatus)
			}
			if !slices.Equal(csvFiles, tt.wantImages) {
				t.Errorf("manifest.csv image files %q, want %q", csvFiles, tt.wantImages)
			}

			var recs []manifest.Record
			for _, line := range strings.Split(strings.TrimSpace(string(contents["manifest.jsonl"])), "\n") {
				var rec manifest.Record
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("manifest.jsonl line %q: %v", line, err)
				}
				recs = append(recs, rec)
			}
			if len(recs) != len(tt.wantStatus) {
				t.Fatalf("manifest.jsonl has %d records, want %d", len(recs), len(tt.wantStatus))
			}
			first := recs[0]
			if first.ImageFile != "cat.png" || first.SHA256 != cat.SHA256 || first.Bytes != int64(len(wantCat)) ||
				first.Prompt != "cat" || first.Model != "preview" || first.SourceFile != "prompts.txt" || first.SourceLine != 1 ||
				first.Vars["k"] != "vcat" || first.FinishedAt == nil || first.StartedAt == nil || !first.StartedAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("cat's record = %+v", first)
			}
		})
	}
}

func TestExportErrors(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, nil)
	bt, _ := submitTestBatch(t, b, b.A, []string{"x"})
	path := fmt.Sprintf("/api/v1/batches/%d/export.zip", bt.ID)
	tests := []struct {
		name, path, token string
		want              int
		code              string
	}{
		{"no token", path, "", http.StatusUnauthorized, "unauthorized"},
		{"other workspace", path, b.B.Token, http.StatusNotFound, "not_found"},
		{"missing batch", "/api/v1/batches/999999/export.zip", b.A.Token, http.StatusNotFound, "not_found"},
		{"bad id", "/api/v1/batches/abc/export.zip", b.A.Token, http.StatusNotFound, "not_found"},
		{"bad filter", path + "?filter=everything", b.A.Token, http.StatusBadRequest, "invalid_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := b.do(t, "GET", tt.path, tt.token, nil)
			if r.Status != tt.want || r.ErrorCode() != tt.code {
				t.Errorf("status %d code %q, want %d %q; body %s", r.Status, r.ErrorCode(), tt.want, tt.code, r.Body)
			}
		})
	}
}

// TestExportZipSlip stores hostile item names (as a row or a future code
// path might) and checks that every entry of the archive extracts inside
// its folder.
func TestExportZipSlip(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, nil)
	hostile := []string{"../../etc/passwd", "/abs/path", `..\..\windows\evil`, "a/../../b", "....//x", "ok", "OK", "manifest"}
	prompts := make([]string, len(hostile))
	for i := range hostile {
		prompts[i] = "p" + strconv.Itoa(i)
	}
	bt, items := submitTestBatch(t, b, b.A, prompts)
	for i, it := range items {
		if _, err := b.DB.Writer().ExecContext(t.Context(), dialectSQL(b.DB.Dialect(), `UPDATE items SET name = ? WHERE id = ?`), hostile[i], it.ID); err != nil {
			t.Fatal(err)
		}
		b.completeItem(t, it)
	}
	r := b.do(t, "GET", fmt.Sprintf("/api/v1/batches/%d/export.zip", bt.ID), b.A.Token, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	files, contents := readZip(t, r.Body)
	if len(files) != len(hostile)+2 {
		t.Fatalf("%d entries, want %d", len(files), len(hostile)+2)
	}
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	seen := map[string]bool{}
	for _, f := range files {
		if strings.Contains(f.Name, "..") || !filepath.IsLocal(f.Name) || strings.Contains(f.Name, `\`) {
			t.Errorf("unsafe entry name %q", f.Name)
			continue
		}
		if seen[strings.ToLower(f.Name)] {
			t.Errorf("entry name %q twice (ignoring case)", f.Name)
		}
		seen[strings.ToLower(f.Name)] = true
		if d := filepath.Dir(f.Name); d != "." {
			if err := root.MkdirAll(d, 0o750); err != nil {
				t.Fatalf("mkdir %s in root: %v", d, err)
			}
		}
		if err := root.WriteFile(f.Name, contents[f.Name], 0o640); err != nil {
			t.Errorf("extract %s through os.Root: %v", f.Name, err)
		}
	}
	if !seen["manifest.csv"] || !seen["manifest.png"] {
		t.Errorf("want manifest.csv and the image named manifest.png side by side, got %v", seen)
	}
}

// seedExport makes a finished batch of n images for tn cheaply: the items
// through the Submitter, then one transaction per 500 images, whose files
// cycle through distinct blobs of size bytes (random, so incompressible).
// It returns the batch and the total bytes of its images.
func seedExport(t testing.TB, b *testBundle, tn testTenant, n, distinct, size int, put func(key string, data []byte)) (store.Batch, int64) {
	t.Helper()
	ctx := context.Background()
	prompts := make([]string, n)
	for i := range prompts {
		prompts[i] = fmt.Sprintf("img-%05d", i)
	}
	bt, _ := submitTestBatch(t, b, tn, prompts)
	type file struct {
		key, sum string
		size     int64
	}
	files := make([]file, distinct)
	for i := range files {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		s := sha256.Sum256(data)
		sum := hex.EncodeToString(s[:])
		files[i] = file{blob.KeyFor(sum, "png"), sum, int64(size)}
		put(files[i].key, data)
	}
	var total int64
	var after int64
	for {
		items, err := b.DB.ListItems(ctx, b.DB.Reader(), tn.WorkspaceID, store.ItemFilter{BatchID: bt.ID}, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		err = b.DB.Tx(ctx, func(tx *sql.Tx) error {
			for _, it := range items {
				f := files[int(it.ID)%distinct]
				if _, _, err := b.DB.InsertImage(ctx, tx, store.Image{ItemID: it.ID, BatchID: bt.ID, WorkspaceID: tn.WorkspaceID,
					BlobKey: f.key, SHA256: f.sum, Bytes: f.size, Width: 64, Height: 64, Format: "png", Provider: "preview", Model: "preview"}); err != nil {
					return err
				}
				if _, err := b.DB.UpdateItemStatus(ctx, tx, it.ID, store.ItemUpdate{Status: store.ItemSucceeded, Attempts: 1}); err != nil {
					return err
				}
				total += f.size
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		after = items[len(items)-1].ID
	}
	return bt, total
}

// heapSampler records the peak HeapInuse while it runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak.Load()
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestExportMemoryFlat exports 2,000 images of 32 KiB (62 MiB in all) and
// checks that the heap never grows by more than a fraction of that: the
// archive streams instead of being built in memory. It is deliberately not
// parallel, so that no other test's allocations land in the measurement.
func TestExportMemoryFlat(t *testing.T) {
	b := newTestBundle(t, nil)
	const n, size = 2000, 32 << 10
	bt, total := seedExport(t, b, b.A, n, 16, size, func(key string, data []byte) {
		if err := b.Blobs.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	})

	base := heapInuse()
	h := startHeapSampler()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", fmt.Sprintf("%s/api/v1/batches/%d/export.zip", b.URL, bt.ID), nil)
	req.Header.Set("Authorization", "Bearer "+b.A.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Count the entries while discarding the bytes: the client side holds
	// nothing either.
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	peak := h.Stop()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("export: status %d, err %v", resp.StatusCode, err)
	}
	if got < total {
		t.Fatalf("archive is %d bytes, smaller than its %d bytes of images", got, total)
	}
	growth := int64(peak) - int64(base)
	const bound = 16 << 20 // a quarter of the data
	t.Logf("exported %d images, %d MiB; heap in use %d MiB before, peak %d MiB (growth %d KiB)",
		n, got>>20, base>>20, peak>>20, growth>>10)
	if growth > bound {
		t.Errorf("heap grew by %d MiB during a %d MiB export, want under %d MiB", growth>>20, total>>20, bound>>20)
	}
}

// benchBundle is a testBundle for benchmarks (newTestBundle needs a
// *testing.T): a migrated database, an insert-only River client, a blob
// folder at dir and one tenant, A.
func benchBundle(tb testing.TB, dir string) *testBundle {
	tb.Helper()
	ctx := context.Background()
	db := storetest.New(tb)
	blobs, err := fileblob.New(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = blobs.Close() })
	rc, err := queue.New(ctx, db, queue.Config{InsertOnly: true, TestOnly: true}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	svc := newTestService(db)
	svc.Queue = rc
	s := New(Deps{DB: db, Ext: Extra{Blobs: blobs, Batches: svc}})
	b := &testBundle{DB: db, Server: s, Blobs: blobs, River: rc}
	u, err := db.CreateUser(ctx, db.Writer(), store.User{Email: "bench@example.com"})
	if err != nil {
		tb.Fatal(err)
	}
	ws, err := db.CreateWorkspace(ctx, db.Writer(), store.Workspace{OwnerUserID: u.ID, Name: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	b.A = testTenant{UserID: u.ID, WorkspaceID: ws.ID}
	return b
}

// writeBlobFile puts data under key in the blob folder dir directly,
// skipping fileblob's fsyncs, which would dominate seeding thousands of
// files and are no part of what is measured.
func writeBlobFile(tb testing.TB, dir, key string, data []byte) {
	tb.Helper()
	p := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o640); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkExportZip measures writing the archive of 1,000 distinct images
// of 64 KiB from the local blob store to io.Discard; the MB/s column is the
// image data rate.
//
//	go test -run '^$' -bench BenchmarkExportZip -benchmem ./internal/server/
func BenchmarkExportZip(b *testing.B) {
	dir := b.TempDir()
	bb := benchBundle(b, dir)
	bt, total := seedExport(b, bb, bb.A, 1000, 1000, 64<<10, func(key string, data []byte) { writeBlobFile(b, dir, key, data) })
	ctx := context.Background()
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if err := bb.Server.writeExport(ctx, io.Discard, bb.DB.Reader(), bt, exportAll); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExportThroughput is the export benchmark of the README: 5,000
// distinct images streamed as a ZIP through the real HTTP route, against
// reading the same files (the "cat to /dev/null" baseline), with the peak
// heap. It takes a while, so it runs only when asked:
//
//	BULKGEN_EXPORT_BENCH=1 go test -run TestExportThroughput -v ./internal/server/
func TestExportThroughput(t *testing.T) {
	if os.Getenv("BULKGEN_EXPORT_BENCH") == "" {
		t.Skip("set BULKGEN_EXPORT_BENCH=1 to measure export throughput")
	}
	const n, size = 5000, 64 << 10
	dir := t.TempDir()
	bb := benchBundle(t, dir)
	srv := httptest.NewServer(bb.Server)
	defer srv.Close()
	tok := bb.newTenant(t, "tp")
	bt, total := seedExport(t, bb, tok, n, n, size, func(key string, data []byte) { writeBlobFile(t, dir, key, data) })

	// Baseline: read every image file once, as cat would.
	cat := func() time.Duration {
		start := time.Now()
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(io.Discard, f)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	export := func() (time.Duration, int64) {
		start := time.Now()
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/batches/%d/export.zip", srv.URL, bt.ID), nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("export: %d %v", resp.StatusCode, err)
		}
		return time.Since(start), got
	}
	cat() // warm the page cache for both
	base := heapInuse()
	h := startHeapSampler()
	var catBest, zipBest time.Duration
	var zipBytes int64
	for range 3 {
		if d := cat(); catBest == 0 || d < catBest {
			catBest = d
		}
		d, got := export()
		if zipBest == 0 || d < zipBest {
			zipBest, zipBytes = d, got
		}
	}
	peak := h.Stop()
	mb := float64(total) / (1 << 20)
	t.Logf("%d images, %.0f MiB of image data, archive %.0f MiB", n, mb, float64(zipBytes)/(1<<20))
	t.Logf("cat (read every file): %v = %.0f MiB/s", catBest, mb/catBest.Seconds())
	t.Logf("export.zip over HTTP:  %v = %.0f MiB/s (%.0f images/s)", zipBest, mb/zipBest.Seconds(), float64(n)/zipBest.Seconds())
	t.Logf("ratio export/cat: %.2f; heap in use %d MiB before, peak %d MiB (test process: server and client)",
		catBest.Seconds()/zipBest.Seconds(), base>>20, peak>>20)
}
