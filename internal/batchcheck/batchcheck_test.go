package batchcheck_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/batch"
	"bulkgen/internal/batchcheck"
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

type engines map[string]provider.Provider

func (e engines) Get(name string) (provider.Provider, error) { return e[name], nil }

type rows struct{ n, next int }

func (r *rows) Next() (input.Row, error) {
	if r.next >= r.n {
		return input.Row{}, io.EOF
	}
	r.next++
	return input.Row{File: "t", Line: r.next, Values: map[string]string{"prompt": fmt.Sprint("image ", r.next)}}, nil
}

// finished makes a batch of n preview images at 2 credits each and runs
// every job through the real worker, as River would, so that the batch
// ends succeeded with its files, images, charges and counters.
func finished(t *testing.T, n int) (*store.DB, *fileblob.Store, int64, store.Batch) {
	t.Helper()
	ctx := t.Context()
	db := storetest.New(t)
	blobs, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	rc, err := queue.New(ctx, db, queue.Config{InsertOnly: true, TestOnly: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(catalog.DefaultJSON(), strings.NewReader(`{"models":[{"id":"preview","price":{"base":2}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	svc := &batch.Service{DB: db, Queue: rc, Ledger: &ledger.Ledger{DB: db}, Catalog: cat, DefaultModel: "preview"}
	eng, err := preview.New(preview.Config{RandSeed: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := &generate.ImageWorker{DB: db, Blobs: blobs, Settler: svc, Generator: &generate.Generator{Providers: engines{preview.Name: eng}}}
	u, err := db.CreateUser(ctx, db.Writer(), store.User{Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := db.CreateWorkspace(ctx, db.Writer(), store.Workspace{OwnerUserID: u.ID, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Ledger.Grant(ctx, db.Writer(), ws.ID, int64(2*n), "", "test"); err != nil {
		t.Fatal(err)
	}
	created, err := svc.Create(ctx, batch.Spec{WorkspaceID: ws.ID, Plan: batch.Config{Defaults: batch.Defaults{Size: "16x16"}}},
		batch.InputFunc(func() (batch.RowSource, error) { return &rows{n: n}, nil }))
	if err != nil {
		t.Fatal(err)
	}
	items, err := db.ListItems(ctx, db.Reader(), ws.ID, store.ItemFilter{BatchID: created.Batch.ID}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		job := &river.Job[generate.ImageArgs]{JobRow: &rivertype.JobRow{ID: it.JobID, Attempt: 1, MaxAttempts: 3, Kind: "image"},
			Args: generate.ImageArgs{ItemID: it.ID}}
		if err := w.Work(ctx, job); err != nil {
			t.Fatalf("item %d: %v", it.ID, err)
		}
		// The job is done: River would now record it completed.
		if _, err := db.Writer().ExecContext(ctx, "DELETE FROM river_job WHERE id = "+fmt.Sprint(it.JobID)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := db.GetBatch(ctx, db.Reader(), ws.ID, created.Batch.ID)
	if err != nil {
		t.Fatal(err)
	}
	return db, blobs, ws.ID, b
}

func TestCheckFinishedBatch(t *testing.T) {
	t.Parallel()
	db, blobs, ws, b := finished(t, 4)
	r, err := batchcheck.Check(t.Context(), db, blobs, ws, b.ID, batchcheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 || r.Images != 4 || r.Files != 4 || r.Charges != 4 || r.Charged != 8 ||
		r.ItemsByStatus["succeeded"] != 4 || r.Balance != 0 || r.Reserved != 0 || r.Status != "succeeded" {
		t.Errorf("report %+v, want a clean succeeded batch of 4", r)
	}
}

// TestCheckFindsProblems: each way a batch can be wrong is reported.
func TestCheckFindsProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(ctx context.Context, db *store.DB, blobs *fileblob.Store, b store.Batch) error
		want   string
	}{
		{"a stray file", func(ctx context.Context, _ *store.DB, blobs *fileblob.Store, _ store.Batch) error {
			return blobs.Put(ctx, "ff/"+strings.Repeat("f", 64)+".png", strings.NewReader("x"))
		}, "belongs to no image"},
		{"a missing charge", func(ctx context.Context, db *store.DB, _ *fileblob.Store, b store.Batch) error {
			_, err := db.Writer().ExecContext(ctx, "DELETE FROM ledger_entries WHERE kind = 'charge' AND id = (SELECT MIN(id) FROM ledger_entries WHERE kind = 'charge')")
			return err
		}, "with 0 charges"},
		{"a counter off by one", func(ctx context.Context, db *store.DB, _ *fileblob.Store, b store.Batch) error {
			return db.AddBatchCounts(ctx, db.Writer(), store.BatchDelta{BatchID: b.ID, Succeeded: -1})
		}, "batch counts 3 succeeded items, 4 are"},
		{"credits still held", func(ctx context.Context, db *store.DB, _ *fileblob.Store, b store.Batch) error {
			return db.AddBatchCounts(ctx, db.Writer(), store.BatchDelta{BatchID: b.ID, Reserved: 5})
		}, "still holds 5 credits"},
		{"a missing file", func(ctx context.Context, db *store.DB, blobs *fileblob.Store, b store.Batch) error {
			ims, err := db.ListImages(ctx, db.Reader(), b.WorkspaceID, store.ImageFilter{BatchID: b.ID}, 0, 1)
			if err != nil {
				return err
			}
			return blobs.Delete(ctx, ims[0].BlobKey)
		}, "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, blobs, ws, b := finished(t, 4)
			if err := tt.damage(t.Context(), db, blobs, b); err != nil {
				t.Fatal(err)
			}
			r, err := batchcheck.Check(t.Context(), db, blobs, ws, b.ID, batchcheck.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(r.Problems, "\n"), tt.want) {
				t.Errorf("problems %q, want one saying %q", r.Problems, tt.want)
			}
		})
	}
}
