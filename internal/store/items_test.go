package store_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"bulkgen/internal/store"
)

// newItems builds n items for batch, named 0001.png, 0002.png, …
func newItems(batch store.Batch, n int) []store.Item {
	items := make([]store.Item, n)
	for i := range items {
		items[i] = store.Item{
			BatchID: batch.ID, WorkspaceID: batch.WorkspaceID, SourceLine: int64(i + 2), Index: 1,
			Prompt: fmt.Sprintf("prompt %d", i), Model: "preview", Provider: "preview",
			Width: 512, Height: 512, Format: "png", Name: fmt.Sprintf("%04d.png", i+1),
		}
	}
	return items
}

func TestInsertItems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db := b.db
	batch := b.newBatch(t, "big")

	// More than one INSERT's worth of rows, inside the caller's transaction.
	items := newItems(batch, 1001)
	items[0].Seed, items[0].HasSeed = 0, true
	items[1].Seed, items[1].HasSeed = 1<<62, true
	items[2].Options = json.RawMessage(`{"background":"transparent"}`)
	items[2].Vars = json.RawMessage(`{"animal":"cat","opt.x":"1"}`)
	items[2].NegativePrompt, items[2].AspectRatio, items[2].Quality, items[2].Style = "blurry", "16:9", "high", "vivid"
	items[2].CostEstimate = 40
	if err := db.Tx(ctx, func(tx *sql.Tx) error { return db.InsertItems(ctx, tx, items) }); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	seen := map[int64]bool{}
	for i, it := range items {
		if it.ID == 0 || seen[it.ID] {
			t.Fatalf("item %d has id %d, want a fresh non-zero id", i, it.ID)
		}
		seen[it.ID] = true
	}

	// Every id leads back to the row it was given to.
	for _, i := range []int{0, 1, 2, 399, 400, 1000} {
		got, err := db.GetItem(ctx, db.Reader(), b.workspace.ID, items[i].ID)
		if err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		want := items[i]
		if got.Name != want.Name || got.Prompt != want.Prompt || got.SourceLine != want.SourceLine ||
			got.Seed != want.Seed || got.HasSeed != want.HasSeed || got.Status != store.ItemPending ||
			got.NegativePrompt != want.NegativePrompt || got.AspectRatio != want.AspectRatio ||
			got.Quality != want.Quality || got.Style != want.Style || got.CostEstimate != want.CostEstimate ||
			got.Width != 512 || got.Format != "png" || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("item %d: got %+v, want %+v", i, got, want)
		}
		if len(want.Options) > 0 && !sameJSON(t, got.Options, want.Options) {
			t.Errorf("item %d: options %s, want %s", i, got.Options, want.Options)
		}
		if len(want.Vars) > 0 && !sameJSON(t, got.Vars, want.Vars) {
			t.Errorf("item %d: vars %s, want %s", i, got.Vars, want.Vars)
		}
	}
	if got, err := db.GetItemByID(ctx, db.Reader(), items[5].ID); err != nil || got.ID != items[5].ID {
		t.Errorf("GetItemByID = %+v, %v; want item %d", got, err, items[5].ID)
	}
	other := b.otherWorkspace(t)
	if _, err := db.GetItem(ctx, db.Reader(), other.ID, items[5].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetItem(other workspace) error = %v, want ErrNotFound", err)
	}

	// Listing walks the batch in input order.
	var got []int64
	after := int64(0)
	for {
		page, err := db.ListItems(ctx, db.Reader(), b.workspace.ID, store.ItemFilter{BatchID: batch.ID}, after, 300)
		if err != nil {
			t.Fatalf("ListItems: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, it := range page {
			got = append(got, it.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(got) != len(items) {
		t.Fatalf("listed %d items, want %d", len(got), len(items))
	}
	for i := range got {
		if got[i] != items[i].ID {
			t.Fatalf("listed item %d is %d, want %d", i, got[i], items[i].ID)
		}
	}
}

func TestInsertItemsDuplicateNameRollsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db := b.db
	batch := b.newBatch(t, "dup")

	tests := []struct {
		name  string
		items func() []store.Item
	}{
		{"within one call", func() []store.Item {
			items := newItems(batch, 3)
			items[2].Name = items[0].Name
			return items
		}},
		{"against the table", func() []store.Item { return newItems(batch, 2) }},
	}
	if err := db.InsertItems(ctx, db.Writer(), newItems(batch, 1)); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	for _, tt := range tests {
		err := db.Tx(ctx, func(tx *sql.Tx) error { return db.InsertItems(ctx, tx, tt.items()) })
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: InsertItems error = %v, want ErrConflict", tt.name, err)
		}
	}
	all, err := db.ListItems(ctx, db.Reader(), b.workspace.ID, store.ItemFilter{}, 0, 0)
	if err != nil {
		t.Fatalf("ListItems: %v", err)
	}
	if len(all) != 1 {
		t.Errorf("%d items stored, want only the first 1", len(all))
	}
}

func TestUpdateItemStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "x")
	items := newItems(batch, 1)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	id := items[0].ID
	notFinal := []store.ItemStatus{store.ItemPending, store.ItemRunning}

	steps := []struct {
		name         string
		update       store.ItemUpdate
		wantChanged  bool
		wantStatus   store.ItemStatus
		wantAttempts int64
		wantErrClass string
	}{
		{"start", store.ItemUpdate{Status: store.ItemRunning, Attempts: 1, From: notFinal}, true, store.ItemRunning, 1, ""},
		{"fail retryable", store.ItemUpdate{Status: store.ItemRunning, Attempts: 2, ErrorClass: "retryable", Error: "503", From: notFinal}, true, store.ItemRunning, 2, "retryable"},
		{"succeed", store.ItemUpdate{Status: store.ItemSucceeded, Attempts: 2, From: notFinal}, true, store.ItemSucceeded, 2, ""},
		{"late re-delivery is refused", store.ItemUpdate{Status: store.ItemRunning, Attempts: 1, From: notFinal}, false, store.ItemSucceeded, 2, ""},
		{"unguarded retry by a person", store.ItemUpdate{Status: store.ItemPending, Attempts: 1}, true, store.ItemPending, 2, ""},
	}
	for _, s := range steps {
		changed, err := db.UpdateItemStatus(ctx, w, id, s.update)
		if err != nil {
			t.Fatalf("%s: UpdateItemStatus: %v", s.name, err)
		}
		got, err := db.GetItemByID(ctx, w, id)
		if err != nil {
			t.Fatalf("GetItemByID: %v", err)
		}
		if changed != s.wantChanged || got.Status != s.wantStatus || got.Attempts != s.wantAttempts || got.ErrorClass != s.wantErrClass {
			t.Errorf("%s: changed=%v status=%s attempts=%d class=%q; want %v %s %d %q", s.name,
				changed, got.Status, got.Attempts, got.ErrorClass, s.wantChanged, s.wantStatus, s.wantAttempts, s.wantErrClass)
		}
	}
	if changed, err := db.UpdateItemStatus(ctx, w, id+1000, store.ItemUpdate{Status: store.ItemFailed}); err != nil || changed {
		t.Errorf("UpdateItemStatus(missing) = %v, %v; want false, nil", changed, err)
	}
}

func TestRecountBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "x")
	items := newItems(batch, 5)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	for i, s := range []store.ItemStatus{store.ItemSucceeded, store.ItemSucceeded, store.ItemFailed, store.ItemCanceled} {
		if _, err := db.UpdateItemStatus(ctx, w, items[i].ID, store.ItemUpdate{Status: s}); err != nil {
			t.Fatalf("UpdateItemStatus: %v", err)
		}
	}
	for i := range 2 {
		if _, _, err := db.InsertImage(ctx, w, newImage(items[i], 1)); err != nil {
			t.Fatalf("InsertImage: %v", err)
		}
	}
	// Twice: the counters must not move on the second call.
	for range 2 {
		if err := db.RecountBatch(ctx, w, batch.ID); err != nil {
			t.Fatalf("RecountBatch: %v", err)
		}
	}
	got, err := db.GetBatch(ctx, w, b.workspace.ID, batch.ID)
	if err != nil {
		t.Fatalf("GetBatch: %v", err)
	}
	if got.SucceededCount != 2 || got.FailedCount != 1 || got.CanceledCount != 1 || got.CostSpent != 2*newImageCost {
		t.Errorf("counts %d/%d/%d spent %d, want 2/1/1 spent %d",
			got.SucceededCount, got.FailedCount, got.CanceledCount, got.CostSpent, 2*newImageCost)
	}
	if err := db.RecountBatch(ctx, w, batch.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecountBatch(missing) error = %v, want ErrNotFound", err)
	}
}

func TestStartItems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "start")
	items := newItems(batch, 1)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	id := items[0].ID
	setItem := func(u store.ItemUpdate) {
		t.Helper()
		if _, err := db.UpdateItemStatus(ctx, w, id, u); err != nil {
			t.Fatalf("UpdateItemStatus: %v", err)
		}
	}
	setBatch := func(s store.BatchStatus) {
		t.Helper()
		if err := db.SetBatchStatus(ctx, w, batch.ID, s); err != nil {
			t.Fatalf("SetBatchStatus: %v", err)
		}
	}

	steps := []struct {
		name         string
		before       func()
		id, attempt  int64
		wantStarted  bool
		wantStatus   store.ItemStatus
		wantAttempts int64
	}{
		{"pending item of a queued batch", func() {}, id, 1, true, store.ItemRunning, 1},
		{"a rescued run starts it again", func() {}, id, 2, true, store.ItemRunning, 2},
		{"a late run keeps the higher count", func() {}, id, 1, true, store.ItemRunning, 2},
		{"clears the last error", func() {
			setItem(store.ItemUpdate{Status: store.ItemPending, Error: "503", ErrorClass: "retryable", Attempts: 2})
		}, id, 3, true, store.ItemRunning, 3},
		{"paused batch", func() { setBatch(store.BatchPaused) }, id, 4, false, store.ItemRunning, 3},
		{"canceled batch", func() { setBatch(store.BatchCanceled) }, id, 4, false, store.ItemRunning, 3},
		{"final item", func() {
			setBatch(store.BatchRunning)
			setItem(store.ItemUpdate{Status: store.ItemSucceeded, Attempts: 3})
		}, id, 4, false, store.ItemSucceeded, 3},
		{"unknown item", func() {}, id + 1000, 1, false, store.ItemSucceeded, 3},
	}
	for _, s := range steps {
		s.before()
		got1 := map[int64]store.Item{}
		err := db.Pipelined(ctx, func(p *store.Pipeline) error {
			return db.StartItems(p, []store.ItemRun{{ID: s.id, Attempt: s.attempt}}, got1)
		})
		if err != nil {
			t.Fatalf("%s: StartItems: %v", s.name, err)
		}
		it, started := got1[s.id]
		got, err := db.GetItemByID(ctx, w, id)
		if err != nil {
			t.Fatalf("GetItemByID: %v", err)
		}
		if started != s.wantStarted || got.Status != s.wantStatus || got.Attempts != s.wantAttempts {
			t.Errorf("%s: started=%v status=%s attempts=%d; want %v %s %d", s.name,
				started, got.Status, got.Attempts, s.wantStarted, s.wantStatus, s.wantAttempts)
		}
		if started && (it.ID != id || it.Status != store.ItemRunning || it.Error != "" || it.ErrorClass != "" ||
			it.Prompt != items[0].Prompt || it.BatchID != batch.ID) {
			t.Errorf("%s: returned row %+v, want the started item", s.name, it)
		}
	}
}
