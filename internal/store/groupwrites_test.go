package store_test

import (
	"context"
	"testing"
	"time"

	"bulkgen/internal/store"
)

// inPipeline runs fn in its own pipelined transaction on db.
func inPipeline(ctx context.Context, db *store.DB, fn func(p *store.Pipeline) error) error {
	return db.Pipelined(ctx, fn)
}

func TestGroupWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	running, paused := b.newBatch(t, "running"), b.newBatch(t, "paused")
	items := append(newItems(running, 4), newItems(paused, 1)...)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatal(err)
	}
	if err := db.SetBatchStatus(ctx, w, paused.ID, store.BatchPaused); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateItemStatus(ctx, w, items[3].ID, store.ItemUpdate{Status: store.ItemCanceled}); err != nil {
		t.Fatal(err)
	}

	// Start: items 0-2 start (item 1 on its second run), 3 is final, 4's
	// batch is paused, and an unknown id starts nothing.
	started := map[int64]store.Item{}
	err := inPipeline(ctx, db, func(p *store.Pipeline) error {
		return db.StartItems(p, []store.ItemRun{
			{ID: items[0].ID, Attempt: 1}, {ID: items[1].ID, Attempt: 2}, {ID: items[2].ID, Attempt: 1},
			{ID: items[3].ID, Attempt: 1}, {ID: items[4].ID, Attempt: 1}, {ID: items[4].ID + 100, Attempt: 1},
		}, started)
	})
	if err != nil {
		t.Fatalf("StartItems: %v", err)
	}
	if len(started) != 3 || started[items[1].ID].Attempts != 2 || started[items[0].ID].Status != store.ItemRunning ||
		started[items[2].ID].Prompt != items[2].Prompt {
		t.Errorf("StartItems started %+v, want items 0-2 running (item 1 at attempt 2)", started)
	}

	// Succeed 0 and 1, and 3 (canceled: unchanged).
	changed := map[int64]bool{}
	err = inPipeline(ctx, db, func(p *store.Pipeline) error {
		return db.SucceedItems(p, []store.ItemRun{
			{ID: items[0].ID, Attempt: 1}, {ID: items[1].ID, Attempt: 1}, {ID: items[3].ID, Attempt: 1},
		}, changed)
	})
	if err != nil {
		t.Fatalf("SucceedItems: %v", err)
	}
	if len(changed) != 2 || !changed[items[0].ID] || !changed[items[1].ID] {
		t.Errorf("SucceedItems changed %v, want items 0 and 1", changed)
	}
	if got, _ := db.GetItemByID(ctx, w, items[1].ID); got.Status != store.ItemSucceeded || got.Attempts != 2 {
		t.Errorf("item 1: %s attempts %d, want succeeded keeping attempts 2", got.Status, got.Attempts)
	}

	// Images: item 0's image exists already (an earlier run).
	first, _, err := db.InsertImage(ctx, w, store.Image{ItemID: items[0].ID, BatchID: running.ID, WorkspaceID: b.workspace.ID,
		BlobKey: "aa/bb/first.png", Format: "png"})
	if err != nil {
		t.Fatal(err)
	}
	ims := []store.Image{
		{ItemID: items[0].ID, BatchID: running.ID, WorkspaceID: b.workspace.ID, BlobKey: "aa/bb/second.png", Format: "png"},
		{ItemID: items[1].ID, BatchID: running.ID, WorkspaceID: b.workspace.ID, BlobKey: "aa/bb/third.png", Format: "png", Seed: 0, HasSeed: true},
	}
	// The charges go in the same round as the images and find their ids,
	// the existing image's for item 0. A replay creates and charges
	// nothing more.
	charges := []store.ImageCharge{
		{Generation: 1, Entry: store.LedgerEntry{WorkspaceID: b.workspace.ID, Kind: store.EntryCharge, Amount: -3,
			ItemID: items[0].ID, IdemKey: "charge:item0"}},
		{Generation: 1, Entry: store.LedgerEntry{WorkspaceID: b.workspace.ID, Kind: store.EntryCharge, Amount: -4,
			ItemID: items[1].ID, IdemKey: "charge:item1"}},
	}
	for run := range 2 {
		refs := make([]store.ImageRef, len(ims))
		err = inPipeline(ctx, db, func(p *store.Pipeline) error {
			if err := db.InsertImages(p, ims, refs); err != nil {
				return err
			}
			return db.ChargeImages(p, charges)
		})
		if err != nil {
			t.Fatalf("InsertImages and ChargeImages: %v", err)
		}
		if created := refs[1].Created && refs[1].ID != 0; refs[0] != (store.ImageRef{}) || created != (run == 0) {
			t.Errorf("run %d: InsertImages reported %+v, want item 0's image existing and item 1's created on the first run only", run, refs)
		}
	}
	entries, err := db.ListLedgerEntries(ctx, w, b.workspace.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d ledger entries, want 2: %+v", len(entries), entries)
	}
	for _, e := range entries {
		im, err := db.GetImage(ctx, w, b.workspace.ID, e.ImageID)
		if err != nil {
			t.Fatalf("charge %s names image %d: %v", e.IdemKey, e.ImageID, err)
		}
		switch e.ItemID {
		case items[0].ID:
			if im.ID != first.ID {
				t.Errorf("item 0's charge names image %d, want the existing image %d", im.ID, first.ID)
			}
		case items[1].ID:
			if im.ItemID != items[1].ID || im.BlobKey != "aa/bb/third.png" || !im.HasSeed || im.Review != store.ReviewNone {
				t.Errorf("item 1's charge names image %+v, want the new one", im)
			}
		default:
			t.Errorf("unexpected charge %+v", e)
		}
	}

	if sums, err := db.SumLedger(ctx, w, b.workspace.ID, time.Time{}, store.EntryCharge); err != nil || sums[store.EntryCharge] != -7 {
		t.Errorf("charges sum to %d, %v; want -7", sums[store.EntryCharge], err)
	}
	// Charges draw on reservations: they leave the balance alone.
	if acc, err := db.GetCreditAccount(ctx, w, b.workspace.ID, false); err != nil || acc.Balance != 0 {
		t.Errorf("balance %d, %v; want 0", acc.Balance, err)
	}
	if err := inPipeline(ctx, db, func(p *store.Pipeline) error {
		return db.ChargeImages(p, []store.ImageCharge{{Generation: 1, Entry: store.LedgerEntry{WorkspaceID: b.workspace.ID, ItemID: items[0].ID, Amount: -1}}})
	}); err == nil {
		t.Error("ChargeImages without an idempotency key: no error")
	}

	// Attempts: the same identity twice keeps the later; a second call
	// updates the row.
	run := store.Attempt{ItemID: items[0].ID, WorkspaceID: b.workspace.ID, JobAttempt: 1, Status: store.AttemptRunning}
	done := run
	done.Status, done.LatencyMS = store.AttemptSucceeded, 12
	if err := inPipeline(ctx, db, func(p *store.Pipeline) error { return db.RecordAttempts(p, []store.Attempt{run, done}) }); err != nil {
		t.Fatalf("RecordAttempts: %v", err)
	}
	failed := done
	failed.Status, failed.Error = store.AttemptFailed, "boom"
	if err := inPipeline(ctx, db, func(p *store.Pipeline) error { return db.RecordAttempts(p, []store.Attempt{failed}) }); err != nil {
		t.Fatalf("RecordAttempts: %v", err)
	}
	as, err := db.ListAttempts(ctx, w, b.workspace.ID, items[0].ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Status != store.AttemptFailed || as[0].Error != "boom" || as[0].LatencyMS != 12 || as[0].Generation != 1 {
		t.Errorf("attempts %+v, want one failed row", as)
	}

	// Too many rows at once is refused, not truncated.
	if err := inPipeline(ctx, db, func(p *store.Pipeline) error {
		return db.StartItems(p, make([]store.ItemRun, 1000), map[int64]store.Item{})
	}); err == nil {
		t.Error("StartItems with 1000 rows: no error")
	}
}

// TestFailInterruptedAttempts: the earlier runs of a generation still
// recorded as running end as failed; the current run, finished runs and
// other generations are left alone.
func TestFailInterruptedAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	items := newItems(b.newBatch(t, "rescued"), 1)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatal(err)
	}
	id := items[0].ID
	attempt := func(gen, run int64, status store.AttemptStatus) store.Attempt {
		return store.Attempt{ItemID: id, WorkspaceID: b.workspace.ID, Generation: gen, JobAttempt: run, Status: status}
	}
	seed := []store.Attempt{
		attempt(1, 1, store.AttemptRunning), attempt(1, 2, store.AttemptFailed), attempt(1, 3, store.AttemptRunning),
		attempt(1, 4, store.AttemptRunning), attempt(2, 1, store.AttemptRunning),
	}
	if err := inPipeline(ctx, db, func(p *store.Pipeline) error { return db.RecordAttempts(p, seed) }); err != nil {
		t.Fatal(err)
	}
	if err := inPipeline(ctx, db, func(p *store.Pipeline) error {
		db.FailInterruptedAttempts(p, id, 1, 4, "retryable", "interrupted")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	as, err := db.ListAttempts(ctx, w, b.workspace.ID, id, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]int64]store.AttemptStatus{
		{1, 1}: store.AttemptFailed, {1, 2}: store.AttemptFailed, {1, 3}: store.AttemptFailed,
		{1, 4}: store.AttemptRunning, {2, 1}: store.AttemptRunning,
	}
	if len(as) != len(want) {
		t.Fatalf("%d attempts, want %d", len(as), len(want))
	}
	for _, a := range as {
		k := [2]int64{a.Generation, a.JobAttempt}
		if a.Status != want[k] {
			t.Errorf("generation %d run %d: %s, want %s", k[0], k[1], a.Status, want[k])
		}
		interrupted := k == [2]int64{1, 1} || k == [2]int64{1, 3}
		if interrupted && (a.Error != "interrupted" || a.ErrorClass != "retryable" || a.FinishedAt.IsZero()) {
			t.Errorf("run %d: %+v, want the interruption recorded", k[1], a)
		}
	}
}
