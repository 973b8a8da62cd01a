package generate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/batch"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/ledger"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/preview"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// providers is a fixed set of adapters by name.
type providers map[string]provider.Provider

func (p providers) Get(name string) (provider.Provider, error) {
	if a, ok := p[name]; ok {
		return a, nil
	}
	return nil, &provider.Error{Class: provider.Invalid, Provider: name, Message: "unknown provider"}
}

// failing plays the preview provider and always fails with err.
type failing struct{ err *provider.Error }

func (f failing) Name() string { return preview.Name }
func (f failing) Generate(context.Context, provider.Request) (provider.Result, error) {
	return provider.Result{}, f.err
}

// counter is an Observer that counts what it is told.
type counter struct {
	images, errors chan string
}

func (c *counter) ObserveProvider(string, time.Duration) {}
func (c *counter) ImageGenerated(p string)               { c.images <- p }
func (c *counter) ProviderError(p, class string)         { c.errors <- class }

type bundle struct {
	db      *store.DB
	blobs   *fileblob.Store
	blobDir string
	worker  *generate.ImageWorker
	client  *river.Client[*sql.Tx]
	batches *batch.Service
	ws      store.Workspace
	user    store.User
}

// pricedCatalog is the default catalogue with the preview engine at 3
// credits an image, so that charges and reservations show.
func pricedCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Load(catalog.DefaultJSON(), strings.NewReader(`{"models":[{"id":"preview","price":{"base":3}}]}`))
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return cat
}

type options struct {
	provider    provider.Provider // nil means the preview engine
	maxAttempts int
	start       bool // start the River client
}

// setup builds a migrated database, a blob folder, the worker and a River
// client with it registered (started when opts.start).
func setup(t *testing.T, opts options) *bundle {
	t.Helper()
	db := storetest.New(t)
	dir := t.TempDir()
	blobs, err := fileblob.New(dir)
	if err != nil {
		t.Fatalf("fileblob.New: %v", err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	p := opts.provider
	if p == nil {
		eng, err := preview.New(preview.Config{RandSeed: 1})
		if err != nil {
			t.Fatalf("preview.New: %v", err)
		}
		p = eng
	}
	cat := pricedCatalog(t)
	svc := &batch.Service{DB: db, Ledger: &ledger.Ledger{DB: db}, Catalog: cat, Logger: testLogger()}
	w := &generate.ImageWorker{
		DB: db, Blobs: blobs, Generator: &generate.Generator{Providers: providers{preview.Name: p}},
		Settler: svc, Policy: generate.Policy{MaxThrottled: 2},
		JobTimeout: 30 * time.Second, Logger: testLogger(),
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	if opts.maxAttempts == 0 {
		opts.maxAttempts = 3
	}
	client, err := queue.New(t.Context(), db, queue.Config{
		Queues:            map[string]queue.Queue{batch.QueueFor(preview.Name): {MaxWorkers: 4}},
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		MaxAttempts:       opts.maxAttempts,
		Retry:             generate.Policy{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond},
		TestOnly:          true,
	}, workers, testLogger())
	if err != nil {
		t.Fatalf("queue.New: %v", err)
	}
	svc.Queue = client
	svc.Policy = generate.Policy{MaxAttempts: opts.maxAttempts}
	if opts.start {
		if err := client.Start(t.Context()); err != nil {
			t.Fatalf("start client: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := client.Stop(ctx); err != nil {
				t.Errorf("stop client: %v", err)
			}
		})
	}
	ctx := t.Context()
	u, err := db.CreateUser(ctx, db.Writer(), store.User{Email: "owner@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := db.CreateWorkspace(ctx, db.Writer(), store.Workspace{OwnerUserID: u.ID, Name: "personal"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Ledger.Grant(ctx, db.Writer(), ws.ID, 1000, "", "test credits"); err != nil {
		t.Fatal(err)
	}
	return &bundle{db: db, blobs: blobs, blobDir: dir, worker: w, client: client, batches: svc, ws: ws, user: u}
}

// submit creates a batch of n preview images with the given provider
// options through the real Submitter, jobs included.
func (b *bundle) submit(t *testing.T, n int, opts map[string]string) store.Batch {
	t.Helper()
	rows := make([]map[string]string, n)
	for i := range n {
		rows[i] = map[string]string{"prompt": fmt.Sprintf("a red fox number %d", i), "seed": strconv.Itoa(i),
			"size": "16x16", "name": fmt.Sprintf("fox-%03d", i)}
		for k, v := range opts {
			rows[i]["opt."+k] = v
		}
	}
	created, err := b.batches.Create(t.Context(), batch.Spec{WorkspaceID: b.ws.ID, UserID: b.user.ID, Name: "test",
		Plan: batch.Config{Defaults: batch.Defaults{Model: "preview", Format: "png"}}},
		batch.InputFunc(func() (batch.RowSource, error) { return &mapRows{rows: rows}, nil }))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return created.Batch
}

// mapRows are input rows given as maps.
type mapRows struct {
	rows []map[string]string
	next int
}

func (m *mapRows) Next() (input.Row, error) {
	if m.next >= len(m.rows) {
		return input.Row{}, io.EOF
	}
	m.next++
	return input.Row{File: "test", Line: m.next + 1, Values: m.rows[m.next-1]}, nil
}

// waitFinal waits until the batch reaches a final status.
func (b *bundle) waitFinal(t *testing.T, id int64) store.Batch {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a guard against a hang, not a timing assertion
	for {
		got, err := b.db.GetBatch(t.Context(), b.db.Reader(), b.ws.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Final() {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %d still %s after 30s: %d/%d succeeded, %d failed", id, got.Status, got.SucceededCount, got.TotalCount, got.FailedCount)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) items(t *testing.T, batchID int64) []store.Item {
	t.Helper()
	items, err := b.db.ListItems(t.Context(), b.db.Reader(), b.ws.ID, store.ItemFilter{BatchID: batchID}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func (b *bundle) images(t *testing.T, batchID int64) []store.Image {
	t.Helper()
	ims, err := b.db.ListImages(t.Context(), b.db.Reader(), b.ws.ID, store.ImageFilter{BatchID: batchID}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return ims
}

func (b *bundle) charges(t *testing.T) []store.LedgerEntry {
	t.Helper()
	es, err := b.db.ListLedgerEntries(t.Context(), b.db.Reader(), b.ws.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.LedgerEntry
	for _, e := range es {
		if e.Kind == store.EntryCharge {
			out = append(out, e)
		}
	}
	return out
}

// files lists the objects in the blob folder (temporary dot files aside).
func (b *bundle) files(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(b.blobDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(b.blobDir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkAllSucceeded asserts one image, one charge and one file per item.
func (b *bundle) checkAllSucceeded(t *testing.T, bt store.Batch, n int) {
	t.Helper()
	if bt.Status != store.BatchSucceeded || bt.SucceededCount != int64(n) {
		t.Fatalf("batch %s with %d succeeded, want succeeded with %d", bt.Status, bt.SucceededCount, n)
	}
	if bt.StartedAt.IsZero() || bt.FinishedAt.IsZero() {
		t.Errorf("started_at %v finished_at %v, want both set", bt.StartedAt, bt.FinishedAt)
	}
	for _, it := range b.items(t, bt.ID) {
		if it.Status != store.ItemSucceeded || it.Attempts < 1 {
			t.Errorf("item %d: status %s attempts %d, want succeeded after ≥1 attempt", it.ID, it.Status, it.Attempts)
		}
	}
	ims := b.images(t, bt.ID)
	perItem := map[int64]int{}
	for _, im := range ims {
		perItem[im.ItemID]++
		obj, err := b.blobs.Open(t.Context(), im.BlobKey)
		if err != nil {
			t.Errorf("image %d: blob %s: %v", im.ID, im.BlobKey, err)
			continue
		}
		if obj.Size() != im.Bytes {
			t.Errorf("image %d: file has %d bytes, row says %d", im.ID, obj.Size(), im.Bytes)
		}
		_ = obj.Close()
		if im.Cost != 3 || im.Generation != 1 || !im.IsPreview || im.Format != "png" {
			t.Errorf("image %d: cost %d generation %d preview %v format %s", im.ID, im.Cost, im.Generation, im.IsPreview, im.Format)
		}
	}
	if len(ims) != n || len(perItem) != n {
		t.Errorf("%d images for %d items, want %d for %d", len(ims), len(perItem), n, n)
	}
	if got := len(b.charges(t)); got != n {
		t.Errorf("%d charges, want %d", got, n)
	}
	if got := len(b.files(t)); got != n {
		t.Errorf("%d files in the blob folder, want %d", got, n)
	}
	if bt.CostSpent != int64(3*n) {
		t.Errorf("cost spent %d, want %d", bt.CostSpent, 3*n)
	}
	b.checkCredits(t, bt, int64(1000-3*n))
}

// checkCredits asserts that the finished batch holds nothing, that the
// workspace's balance is balance, and that the ledger adds up.
func (b *bundle) checkCredits(t *testing.T, bt store.Batch, balance int64) {
	t.Helper()
	if bt.Reserved != 0 {
		t.Errorf("finished batch still holds %d credits", bt.Reserved)
	}
	acc, err := b.batches.Ledger.Account(t.Context(), b.db.Reader(), b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Balance != balance {
		t.Errorf("balance %d, want %d", acc.Balance, balance)
	}
	if err := b.batches.Ledger.Verify(t.Context(), b.db.Reader(), b.ws.ID); err != nil {
		t.Error(err)
	}
}

func TestImageWorkerCompletesBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, options{start: true})
	bt := b.submit(t, 6, map[string]string{"latency": "5ms"})
	b.checkAllSucceeded(t, b.waitFinal(t, bt.ID), 6)
}

func TestImageWorkerRetriesFlakyProvider(t *testing.T) {
	t.Parallel()
	// 25 attempts at a 30% failure rate: an item fails for good with
	// probability 0.3^25.
	b := setup(t, options{start: true, maxAttempts: 25})
	const n = 12
	bt := b.submit(t, n, map[string]string{"failure_rate": "0.3"})
	b.checkAllSucceeded(t, b.waitFinal(t, bt.ID), n)
	var failed int
	for _, it := range b.items(t, bt.ID) {
		as, err := b.db.ListAttempts(t.Context(), b.db.Reader(), b.ws.ID, it.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(as)) != it.Attempts {
			t.Errorf("item %d: %d attempt rows, item says %d attempts", it.ID, len(as), it.Attempts)
		}
		for _, a := range as {
			if a.Status == store.AttemptFailed {
				failed++
				if a.ErrorClass != string(provider.Retryable) || !strings.Contains(a.Error, "simulated failure") {
					t.Errorf("failed attempt: class %q error %q", a.ErrorClass, a.Error)
				}
			}
		}
	}
	// The engine's seeded failures make some of the first 12 calls fail.
	if failed == 0 {
		t.Error("no failed attempt recorded; the retries were not exercised")
	}
}

func TestImageWorkerGivesUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		provider  provider.Provider // nil: preview with failure_rate=1
		opts      map[string]string
		wantClass provider.Class
		wantError string
		paused    bool // the provider's queue ends paused
	}{
		{name: "always failing", opts: map[string]string{"failure_rate": "1"},
			wantClass: provider.Retryable, wantError: "gave up after 3 attempts"},
		{name: "rejected", provider: failing{&provider.Error{Class: provider.Rejected, Provider: "preview", Message: "content policy"}},
			wantClass: provider.Rejected, wantError: "content policy"},
		{name: "rate limited forever", provider: failing{&provider.Error{Class: provider.Retryable, Provider: "preview", Status: 429, RetryAfter: time.Millisecond}},
			wantClass: provider.Retryable, wantError: "gave up after waiting out 2 rate limits"},
		{name: "auth", provider: failing{&provider.Error{Class: provider.Auth, Provider: "preview", Status: 401, Message: "bad key"}},
			wantClass: provider.Auth, wantError: "bad key", paused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{start: true, provider: tt.provider})
			const n = 2
			bt := b.submit(t, n, tt.opts)
			if tt.paused {
				// The first failure pauses the queue, so the other jobs
				// wait: one item fails, the others stay pending.
				waitFor(t, func() bool {
					q, err := b.client.QueueGet(t.Context(), batch.QueueFor(preview.Name))
					return err == nil && q.PausedAt != nil
				})
				waitFor(t, func() bool {
					got, err := b.db.GetBatch(t.Context(), b.db.Reader(), b.ws.ID, bt.ID)
					return err == nil && got.FailedCount >= 1
				})
				for _, it := range b.items(t, bt.ID) {
					if it.Status == store.ItemFailed && (it.ErrorClass != string(tt.wantClass) || !strings.Contains(it.Error, tt.wantError)) {
						t.Errorf("item %d: class %q error %q", it.ID, it.ErrorClass, it.Error)
					}
				}
				return
			}
			got := b.waitFinal(t, bt.ID)
			if got.Status != store.BatchFailed || got.FailedCount != n {
				t.Fatalf("batch %s with %d failed, want failed with %d", got.Status, got.FailedCount, n)
			}
			for _, it := range b.items(t, bt.ID) {
				if it.Status != store.ItemFailed || it.ErrorClass != string(tt.wantClass) || !strings.Contains(it.Error, tt.wantError) {
					t.Errorf("item %d: %s class %q error %q, want failed %q containing %q", it.ID, it.Status, it.ErrorClass, it.Error, tt.wantClass, tt.wantError)
				}
			}
			if ims := b.images(t, bt.ID); len(ims) != 0 {
				t.Errorf("%d images for a failed batch", len(ims))
			}
			if cs := b.charges(t); len(cs) != 0 {
				t.Errorf("%d charges for a failed batch", len(cs))
			}
			// Not stuck: the jobs end too (River records their end just
			// after the work returns).
			waitFor(t, func() bool {
				live, err := b.db.LiveJobs(t.Context(), b.db.Reader(), bt.ID)
				return err == nil && live == 0
			})
			// Every failed image handed its credits back.
			b.checkCredits(t, got, 1000)
		})
	}
}

// jobFor is a hand-made job row, as River would deliver it, for calling
// Work directly.
func jobFor(itemID int64, attempt int, metadata string) *river.Job[generate.ImageArgs] {
	return &river.Job[generate.ImageArgs]{
		JobRow: &rivertype.JobRow{ID: itemID, Attempt: attempt, MaxAttempts: 3, Queue: batch.QueueFor(preview.Name),
			Kind: "image", Metadata: []byte(metadata)},
		Args: generate.ImageArgs{ItemID: itemID},
	}
}

func TestImageWorkerRunTwice(t *testing.T) {
	t.Parallel()
	b := setup(t, options{}) // not started: the test runs the jobs itself
	bt := b.submit(t, 2, nil)
	items := b.items(t, bt.ID)

	for _, it := range items {
		if err := b.worker.Work(t.Context(), jobFor(it.ID, 1, "")); err != nil {
			t.Fatalf("first run: %v", err)
		}
		// River re-delivers the job after a crash, as attempt 2.
		if err := b.worker.Work(t.Context(), jobFor(it.ID, 2, "")); err != nil {
			t.Fatalf("second run: %v", err)
		}
	}
	got, err := b.db.GetBatch(t.Context(), b.db.Reader(), b.ws.ID, bt.ID)
	if err != nil {
		t.Fatal(err)
	}
	b.checkAllSucceeded(t, got, 2)
}

func TestImageWorkerBatchStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   store.BatchStatus
		wantErr  func(error) bool
		wantItem store.ItemStatus
	}{
		{name: "canceled", status: store.BatchCanceled, wantErr: func(err error) bool { return err == nil }, wantItem: store.ItemCanceled},
		{name: "paused", status: store.BatchPaused, wantErr: func(err error) bool {
			var snooze *river.JobSnoozeError
			return errors.As(err, &snooze)
		}, wantItem: store.ItemPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, options{})
			bt := b.submit(t, 1, nil)
			if err := b.db.SetBatchStatus(t.Context(), b.db.Writer(), bt.ID, tt.status); err != nil {
				t.Fatal(err)
			}
			it := b.items(t, bt.ID)[0]
			if err := b.worker.Work(t.Context(), jobFor(it.ID, 1, "{}")); !tt.wantErr(err) {
				t.Fatalf("Work: unexpected result %v", err)
			}
			it = b.items(t, bt.ID)[0]
			if it.Status != tt.wantItem {
				t.Errorf("item %s, want %s", it.Status, tt.wantItem)
			}
			if ims := b.images(t, bt.ID); len(ims) != 0 {
				t.Errorf("%d images made for a %s batch", len(ims), tt.status)
			}
		})
	}
}

func TestImageWorkerObserver(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	obs := &counter{images: make(chan string, 10), errors: make(chan string, 10)}
	b.worker.Observer = obs
	bt := b.submit(t, 2, nil)
	items := b.items(t, bt.ID)
	if err := b.worker.Work(t.Context(), jobFor(items[0].ID, 1, "{}")); err != nil {
		t.Fatal(err)
	}
	b.worker.Generator = &generate.Generator{Providers: providers{preview.Name: failing{&provider.Error{Class: provider.Rejected, Message: "no"}}}}
	err := b.worker.Work(t.Context(), jobFor(items[1].ID, 1, "{}"))
	var cancel *river.JobCancelError
	if !errors.As(err, &cancel) {
		t.Fatalf("rejected: Work returned %v, want a JobCancel", err)
	}
	if got := <-obs.images; got != "preview" {
		t.Errorf("image counted for %q", got)
	}
	if got := <-obs.errors; got != string(provider.Rejected) {
		t.Errorf("error counted as %q", got)
	}
	got := b.waitFinal(t, bt.ID)
	if got.Status != store.BatchPartial {
		t.Errorf("batch %s, want partial", got.Status)
	}
}

func TestFinalStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ok, failed, canceled int64
		want                 store.BatchStatus
	}{
		{3, 0, 0, store.BatchSucceeded},
		{0, 0, 0, store.BatchSucceeded},
		{2, 1, 0, store.BatchPartial},
		{2, 0, 1, store.BatchPartial},
		{0, 2, 1, store.BatchFailed},
		{0, 0, 2, store.BatchCanceled},
	}
	for _, tt := range tests {
		got := batch.FinalStatus(map[store.ItemStatus]int64{
			store.ItemSucceeded: tt.ok, store.ItemFailed: tt.failed, store.ItemCanceled: tt.canceled})
		if got != tt.want {
			t.Errorf("%d ok %d failed %d canceled: %s, want %s", tt.ok, tt.failed, tt.canceled, got, tt.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a guard against a hang
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("WORKER_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestImageWorkerClosesInterruptedAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	bt := b.submit(t, 1, nil)
	it := b.items(t, bt.ID)[0]
	ctx := t.Context()
	// Attempt 1 died with its process mid-call: the item and the attempt
	// still say running.
	if _, err := b.db.UpdateItemStatus(ctx, b.db.Writer(), it.ID, store.ItemUpdate{Status: store.ItemRunning, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.RecordAttempt(ctx, b.db.Writer(), store.Attempt{ItemID: it.ID, WorkspaceID: b.ws.ID, JobAttempt: 1, Status: store.AttemptRunning}); err != nil {
		t.Fatal(err)
	}
	// River rescues the job and runs it again as attempt 2.
	if err := b.worker.Work(ctx, jobFor(it.ID, 2, "{}")); err != nil {
		t.Fatal(err)
	}
	as, err := b.db.ListAttempts(ctx, b.db.Reader(), b.ws.ID, it.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("%d attempts, want 2", len(as))
	}
	if as[0].Status != store.AttemptFailed || !strings.Contains(as[0].Error, "interrupted") || as[0].FinishedAt.IsZero() {
		t.Errorf("attempt 1: %s %q finished %v, want failed as interrupted", as[0].Status, as[0].Error, as[0].FinishedAt)
	}
	if as[1].Status != store.AttemptSucceeded || as[1].JobAttempt != 2 {
		t.Errorf("attempt 2: %s (job attempt %d), want succeeded", as[1].Status, as[1].JobAttempt)
	}
	if got := b.items(t, bt.ID)[0]; got.Status != store.ItemSucceeded || got.Attempts != 2 {
		t.Errorf("item %s after %d attempts, want succeeded after 2", got.Status, got.Attempts)
	}
}
