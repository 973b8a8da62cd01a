package store_test

import (
	"maps"
	"testing"
	"time"

	"bulkgen/internal/store"
)

// waitEvents reads the batch's events after cur until there are want of
// them. On PostgreSQL an event becomes readable only once every older
// transaction on the server (other tests' included) has ended, so a fresh
// event may need a moment; on SQLite the first read has them all.
func waitEvents(t *testing.T, db *store.DB, workspaceID, batchID int64, after store.EventCursor, want int) []store.BatchEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := db.BatchEvents(t.Context(), db.Reader(), workspaceID, batchID, after, 100)
		if err != nil {
			t.Fatalf("BatchEvents: %v", err)
		}
		if len(evs) >= want || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBatchEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "events")
	items := newItems(batch, 3)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	other := b.otherWorkspace(t)

	// Inserting items writes no event: the log starts empty.
	head, err := db.BatchEventHead(ctx, db.Reader(), b.workspace.ID, batch.ID)
	if err != nil || head != (store.EventCursor{}) {
		t.Fatalf("BatchEventHead of a new batch = %+v, %v; want the zero cursor", head, err)
	}

	im, _, err := db.InsertImage(ctx, w, newImage(items[0], 1))
	if err != nil {
		t.Fatalf("InsertImage: %v", err)
	}
	for _, u := range []struct {
		id     int64
		status store.ItemStatus
	}{
		{items[0].ID, store.ItemRunning},
		{items[1].ID, store.ItemRunning},
		{items[0].ID, store.ItemSucceeded},
		{items[2].ID, store.ItemPending}, // no change: no event
	} {
		if _, err := db.UpdateItemStatus(ctx, w, u.id, store.ItemUpdate{Status: u.status}); err != nil {
			t.Fatalf("UpdateItemStatus: %v", err)
		}
	}
	if err := db.SetBatchStatus(ctx, w, batch.ID, store.BatchRunning); err != nil {
		t.Fatalf("SetBatchStatus: %v", err)
	}

	type event struct {
		itemID, imageID int64
		status          string
	}
	want := []event{
		{items[0].ID, im.ID, "running"}, // the image is the item's newest at read time
		{items[1].ID, 0, "running"},
		{items[0].ID, im.ID, "succeeded"},
		{0, 0, "running"}, // the batch's own status
	}
	all := waitEvents(t, db, b.workspace.ID, batch.ID, store.EventCursor{}, len(want))
	if len(all) != len(want) {
		t.Fatalf("BatchEvents = %+v, want %d events", all, len(want))
	}
	for i, ev := range all {
		if got := (event{ev.ItemID, ev.ImageID, ev.Status}); got != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got, want[i])
		}
		if i > 0 && !cursorAfter(ev.Cursor, all[i-1].Cursor) {
			t.Errorf("event %d cursor %+v does not come after %+v", i, ev.Cursor, all[i-1].Cursor)
		}
	}

	head, err = db.BatchEventHead(ctx, db.Reader(), b.workspace.ID, batch.ID)
	if err != nil || head != all[len(all)-1].Cursor {
		t.Errorf("BatchEventHead = %+v, %v; want the last event's cursor %+v", head, err, all[len(all)-1].Cursor)
	}
	if head, err := db.BatchEventHead(ctx, db.Reader(), other.ID, batch.ID); err != nil || head != (store.EventCursor{}) {
		t.Errorf("BatchEventHead(other workspace) = %+v, %v; want the zero cursor", head, err)
	}

	tests := []struct {
		name      string
		workspace int64
		after     store.EventCursor
		limit     int
		want      []store.BatchEvent
	}{
		{"first page", b.workspace.ID, store.EventCursor{}, 2, all[:2]},
		{"next page", b.workspace.ID, all[1].Cursor, 2, all[2:]},
		{"after the last", b.workspace.ID, all[3].Cursor, 10, nil},
		{"other workspace", other.ID, store.EventCursor{}, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := db.BatchEvents(ctx, db.Reader(), tt.workspace, batch.ID, tt.after, tt.limit)
			if err != nil {
				t.Fatalf("BatchEvents: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("BatchEvents = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// cursorAfter reports whether a comes after b in log order.
func cursorAfter(a, b store.EventCursor) bool {
	return a.XID > b.XID || (a.XID == b.XID && a.ID > b.ID)
}

func TestCountBatchItems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "counts")
	items := newItems(batch, 4)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	for _, u := range []struct {
		id     int64
		status store.ItemStatus
	}{
		{items[0].ID, store.ItemSucceeded},
		{items[1].ID, store.ItemSucceeded},
		{items[2].ID, store.ItemFailed},
	} {
		if _, err := db.UpdateItemStatus(ctx, w, u.id, store.ItemUpdate{Status: u.status}); err != nil {
			t.Fatalf("UpdateItemStatus: %v", err)
		}
	}
	empty := b.newBatch(t, "empty")
	other := b.otherWorkspace(t)

	tests := []struct {
		name               string
		workspace, batchID int64
		want               map[store.ItemStatus]int64
	}{
		{"by status", b.workspace.ID, batch.ID, map[store.ItemStatus]int64{
			store.ItemSucceeded: 2, store.ItemFailed: 1, store.ItemPending: 1}},
		{"no items", b.workspace.ID, empty.ID, map[store.ItemStatus]int64{}},
		{"other workspace", other.ID, batch.ID, map[store.ItemStatus]int64{}},
		{"unknown batch", b.workspace.ID, batch.ID + 1000, map[store.ItemStatus]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := db.CountBatchItems(ctx, db.Reader(), tt.workspace, tt.batchID)
			if err != nil {
				t.Fatalf("CountBatchItems: %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("CountBatchItems = %v, want %v", got, tt.want)
			}
		})
	}
}
