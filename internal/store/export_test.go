package store_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"bulkgen/internal/store"
)

func TestNewestItemImages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "export")
	items := newItems(batch, 4)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	add := func(it store.Item, generation int64, review store.Review) store.Image {
		t.Helper()
		im, _, err := db.InsertImage(ctx, w, newImage(it, generation))
		if err != nil {
			t.Fatalf("InsertImage: %v", err)
		}
		if review != "" {
			if err := db.SetImageReview(ctx, w, b.workspace.ID, im.ID, review); err != nil {
				t.Fatalf("SetImageReview: %v", err)
			}
			im.Review = review
		}
		return im
	}
	// Item 0: an approved first image and a newer unreviewed regeneration.
	// Item 1: one approved image. Item 2: none. Item 3: one rejected.
	// Generation 3 of item 0 is inserted before generation 2: newest means
	// the highest generation, not the latest row.
	add(items[0], 1, store.ReviewApproved)
	i0g3 := add(items[0], 3, "")
	i0g2 := add(items[0], 2, store.ReviewApproved)
	i1 := add(items[1], 1, store.ReviewApproved)
	i3 := add(items[3], 1, store.ReviewRejected)
	other := b.otherWorkspace(t)

	first, last := items[0].ID, items[3].ID
	tests := []struct {
		name        string
		workspace   int64
		after, upTo int64
		review      store.Review
		want        []store.Image
	}{
		{"any review", b.workspace.ID, first - 1, last, "", []store.Image{i0g3, i1, i3}},
		{"approved", b.workspace.ID, first - 1, last, store.ReviewApproved, []store.Image{i0g2, i1}},
		{"rejected", b.workspace.ID, first - 1, last, store.ReviewRejected, []store.Image{i3}},
		{"range excludes after, includes last", b.workspace.ID, first, items[1].ID, "", []store.Image{i1}},
		{"empty range", b.workspace.ID, last, last + 10, "", nil},
		{"other workspace", other.ID, first - 1, last, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := db.NewestItemImages(ctx, db.Reader(), tt.workspace, batch.ID, tt.after, tt.upTo, tt.review)
			if err != nil {
				t.Fatalf("NewestItemImages: %v", err)
			}
			want := map[int64]store.Image{}
			for _, im := range tt.want {
				want[im.ItemID] = im
			}
			if !maps.Equal(got, want) {
				t.Errorf("NewestItemImages = items %v, want items %v (%+v, want %+v)",
					slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), got, want)
			}
		})
	}
}

func TestLastAttemptStarts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "export")
	items := newItems(batch, 3)
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	otherBatch := b.newBatch(t, "other")
	others := newItems(otherBatch, 1)
	if err := db.InsertItems(ctx, w, others); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	attempt := func(it store.Item, generation, jobAttempt int64, started time.Time) {
		t.Helper()
		if _, err := db.RecordAttempt(ctx, w, store.Attempt{ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: generation,
			JobAttempt: jobAttempt, Status: store.AttemptSucceeded, StartedAt: started, FinishedAt: started.Add(time.Second)}); err != nil {
			t.Fatalf("RecordAttempt: %v", err)
		}
	}
	// Item 0: two attempts of generation 1 (the second is the last, though
	// recorded first), one of generation 2. Item 1: one attempt. Item 2:
	// none. The other batch's item sits in the same id range.
	attempt(items[0], 1, 2, t0.Add(2*time.Minute))
	attempt(items[0], 1, 1, t0)
	attempt(items[0], 2, 1, t0.Add(time.Hour))
	attempt(items[1], 1, 1, t0.Add(3*time.Minute))
	attempt(others[0], 1, 1, t0.Add(4*time.Minute))

	got, err := db.LastAttemptStarts(ctx, db.Reader(), b.workspace.ID, batch.ID, items[0].ID-1, others[0].ID)
	if err != nil {
		t.Fatalf("LastAttemptStarts: %v", err)
	}
	want := map[int64][]store.AttemptStart{
		items[0].ID: {{Generation: 1, StartedAt: t0.Add(2 * time.Minute)}, {Generation: 2, StartedAt: t0.Add(time.Hour)}},
		items[1].ID: {{Generation: 1, StartedAt: t0.Add(3 * time.Minute)}},
	}
	if len(got) != len(want) {
		t.Fatalf("LastAttemptStarts = %+v, want %+v", got, want)
	}
	for id, ws := range want {
		gs := got[id]
		if len(gs) != len(ws) {
			t.Fatalf("item %d: %+v, want %+v", id, gs, ws)
		}
		for i := range ws {
			if gs[i].Generation != ws[i].Generation || !gs[i].StartedAt.Equal(ws[i].StartedAt) {
				t.Errorf("item %d: %+v, want %+v", id, gs, ws)
			}
		}
	}
	// Another workspace sees nothing of the batch.
	other := b.otherWorkspace(t)
	if got, err := db.LastAttemptStarts(ctx, db.Reader(), other.ID, batch.ID, 0, others[0].ID); err != nil || len(got) != 0 {
		t.Errorf("LastAttemptStarts(other workspace) = %+v, %v; want nothing", got, err)
	}
}
