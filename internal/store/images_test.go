package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"bulkgen/internal/store"
)

const newImageCost = 40

// newImage builds the image a worker would record for item.
func newImage(item store.Item, generation int64) store.Image {
	return store.Image{
		ItemID: item.ID, BatchID: item.BatchID, WorkspaceID: item.WorkspaceID, Generation: generation,
		BlobKey: fmt.Sprintf("ab/cd/%d-%d.png", item.ID, generation), SHA256: "abcd", Bytes: 1234,
		Width: 512, Height: 512, Format: "png", Seed: 7, HasSeed: true, Provider: "preview", Model: "preview",
		RequestID: "req-1", Cost: newImageCost, LatencyMS: 12, IsPreview: true,
	}
}

func (b *testBundle) newItem(t *testing.T) store.Item {
	t.Helper()
	items := newItems(b.newBatch(t, "b"), 1)
	if err := b.db.InsertItems(t.Context(), b.db.Writer(), items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	return items[0]
}

func TestInsertImageIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	item := b.newItem(t)

	first, created, err := db.InsertImage(ctx, w, newImage(item, 1))
	if err != nil || !created {
		t.Fatalf("InsertImage = %v, %v; want created", created, err)
	}
	want := newImage(item, 1)
	want.ID, want.CreatedAt, want.Review = first.ID, first.CreatedAt, store.ReviewNone
	if first != want {
		t.Errorf("InsertImage = %+v, want %+v", first, want)
	}

	// The job runs again (different request id): one row, the first one.
	again := newImage(item, 1)
	again.RequestID = "req-2"
	second, created, err := db.InsertImage(ctx, w, again)
	if err != nil || created {
		t.Fatalf("second InsertImage = %v, %v; want not created", created, err)
	}
	if second != first {
		t.Errorf("second InsertImage = %+v, want the first row %+v", second, first)
	}

	// A regeneration is a new identity, linked to its parent.
	regen := newImage(item, 2)
	regen.ParentID, regen.HasSeed = first.ID, false
	v2, created, err := db.InsertImage(ctx, w, regen)
	if err != nil || !created || v2.ParentID != first.ID || v2.HasSeed {
		t.Fatalf("InsertImage(generation 2) = %+v, %v, %v; want a new row with parent %d", v2, created, err, first.ID)
	}

	list, err := db.ListImages(ctx, db.Reader(), b.workspace.ID, store.ImageFilter{ItemID: item.ID}, 0, 10)
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	if len(list) != 2 || list[0].ID != first.ID || list[1].ID != v2.ID {
		t.Errorf("ListImages = %+v, want [%d %d]", list, first.ID, v2.ID)
	}
}

func TestInsertImageConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db := b.db
	item := b.newItem(t)

	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[int64]bool{}
		created int
	)
	for range n {
		wg.Go(func() {
			im, c, err := db.InsertImage(ctx, db.Writer(), newImage(item, 1))
			if err != nil {
				t.Errorf("InsertImage: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[im.ID] = true
			if c {
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Errorf("%d of %d inserts created a row, %d distinct ids; want 1 and 1", created, n, len(ids))
	}
}

func TestImageReviewAndIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	item := b.newItem(t)
	im, _, err := db.InsertImage(ctx, w, newImage(item, 1))
	if err != nil {
		t.Fatalf("InsertImage: %v", err)
	}
	other := b.otherWorkspace(t)

	if err := db.SetImageReview(ctx, w, other.ID, im.ID, store.ReviewApproved); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetImageReview(other workspace) error = %v, want ErrNotFound", err)
	}
	if _, err := db.GetImage(ctx, w, other.ID, im.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetImage(other workspace) error = %v, want ErrNotFound", err)
	}
	if list, err := db.ListImages(ctx, w, other.ID, store.ImageFilter{}, 0, 0); err != nil || len(list) != 0 {
		t.Errorf("ListImages(other workspace) = %+v, %v; want nothing", list, err)
	}
	if err := db.SetImageReview(ctx, w, b.workspace.ID, im.ID, store.ReviewApproved); err != nil {
		t.Fatalf("SetImageReview: %v", err)
	}
	approved, err := db.ListImages(ctx, w, b.workspace.ID, store.ImageFilter{Review: store.ReviewApproved}, 0, 0)
	if err != nil || len(approved) != 1 || approved[0].ID != im.ID {
		t.Errorf("ListImages(approved) = %+v, %v; want image %d", approved, err, im.ID)
	}
}

func TestRecordAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	item := b.newItem(t)

	start := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	running, err := db.RecordAttempt(ctx, w, store.Attempt{
		ItemID: item.ID, WorkspaceID: item.WorkspaceID, JobAttempt: 1, Status: store.AttemptRunning, StartedAt: start,
	})
	if err != nil {
		t.Fatalf("RecordAttempt(running): %v", err)
	}
	if !running.StartedAt.Equal(start) || !running.FinishedAt.IsZero() || running.Generation != 1 {
		t.Errorf("RecordAttempt(running) = %+v, want started %v, not finished, generation 1", running, start)
	}
	done, err := db.RecordAttempt(ctx, w, store.Attempt{
		ItemID: item.ID, WorkspaceID: item.WorkspaceID, JobAttempt: 1, Status: store.AttemptFailed,
		ErrorClass: "retryable", Error: "upstream 503", LatencyMS: 250, RequestID: "r1",
		StartedAt: start.Add(time.Hour), FinishedAt: start.Add(250 * time.Millisecond),
	})
	if err != nil {
		t.Fatalf("RecordAttempt(failed): %v", err)
	}
	if done.ID != running.ID || done.Status != store.AttemptFailed || done.ErrorClass != "retryable" ||
		!done.StartedAt.Equal(start) || !done.FinishedAt.Equal(start.Add(250*time.Millisecond)) {
		t.Errorf("RecordAttempt(failed) = %+v, want row %d updated, started_at kept", done, running.ID)
	}
	if _, err := db.RecordAttempt(ctx, w, store.Attempt{
		ItemID: item.ID, WorkspaceID: item.WorkspaceID, JobAttempt: 2, Status: store.AttemptSucceeded,
	}); err != nil {
		t.Fatalf("RecordAttempt(2): %v", err)
	}
	list, err := db.ListAttempts(ctx, db.Reader(), b.workspace.ID, item.ID, 0, 0)
	if err != nil {
		t.Fatalf("ListAttempts: %v", err)
	}
	if len(list) != 2 || list[0].JobAttempt != 1 || list[1].JobAttempt != 2 {
		t.Errorf("ListAttempts = %+v, want attempts 1 and 2", list)
	}
	other := b.otherWorkspace(t)
	if list, err := db.ListAttempts(ctx, w, other.ID, item.ID, 0, 0); err != nil || len(list) != 0 {
		t.Errorf("ListAttempts(other workspace) = %+v, %v; want nothing", list, err)
	}
}
