package store_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"bulkgen/internal/store"
)

// imageWithKey is newImage with another blob key.
func imageWithKey(item store.Item, generation int64, key string) store.Image {
	im := newImage(item, generation)
	im.BlobKey = key
	return im
}

// insertBatchItems creates a batch of n items in the bundle's workspace.
func (b *testBundle) insertBatchItems(t *testing.T, name string, n int) (store.Batch, []store.Item) {
	t.Helper()
	batch := b.newBatch(t, name)
	items := newItems(batch, n)
	if err := b.db.InsertItems(t.Context(), b.db.Writer(), items); err != nil {
		t.Fatalf("InsertItems: %v", err)
	}
	return batch, items
}

func (b *testBundle) insertImage(t *testing.T, im store.Image) store.Image {
	t.Helper()
	out, _, err := b.db.InsertImage(t.Context(), b.db.Writer(), im)
	if err != nil {
		t.Fatalf("InsertImage: %v", err)
	}
	return out
}

func TestRenameProject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		otherWS   bool   // rename as the other workspace
		target    string // "a", "unknown" or "other" (the other workspace's project)
		newName   string
		wantErr   error
		wantNames []string // the bundle workspace's project names afterwards
	}{
		{"rename", false, "a", "a2", nil, []string{"a2", "b"}},
		{"same name", false, "a", "a", nil, []string{"a", "b"}},
		{"name taken", false, "a", "b", store.ErrConflict, []string{"a", "b"}},
		{"name taken in another workspace only", false, "a", "c", nil, []string{"c", "b"}},
		{"other workspace's project", false, "other", "x", store.ErrNotFound, []string{"a", "b"}},
		{"as the other workspace", true, "a", "x", store.ErrNotFound, []string{"a", "b"}},
		{"unknown", false, "unknown", "x", store.ErrNotFound, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := t.Context()
			db, w := b.db, b.db.Writer()
			other := b.otherWorkspace(t)
			newProject := func(ws int64, name string) store.Project {
				p, err := db.CreateProject(ctx, w, store.Project{WorkspaceID: ws, Name: name})
				if err != nil {
					t.Fatalf("CreateProject: %v", err)
				}
				return p
			}
			a := newProject(b.workspace.ID, "a")
			newProject(b.workspace.ID, "b")
			c := newProject(other.ID, "c")
			id := map[string]int64{"a": a.ID, "other": c.ID, "unknown": c.ID + 100}[tt.target]
			ws := b.workspace.ID
			if tt.otherWS {
				ws = other.ID
			}

			got, err := db.RenameProject(ctx, w, ws, id, tt.newName)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("RenameProject error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (got.ID != id || got.Name != tt.newName || got.WorkspaceID != ws) {
				t.Errorf("RenameProject = %+v, want project %d named %q", got, id, tt.newName)
			}
			list, err := db.ListProjects(ctx, w, b.workspace.ID, 0, 0)
			if err != nil {
				t.Fatalf("ListProjects: %v", err)
			}
			var names []string
			for _, p := range list {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("projects afterwards = %q, want %q", names, tt.wantNames)
			}
			if p, err := db.GetProject(ctx, w, other.ID, c.ID); err != nil || p.Name != "c" {
				t.Errorf("other workspace's project = %+v, %v; want it untouched", p, err)
			}
		})
	}
}

func TestDeleteProject(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	other := b.otherWorkspace(t)
	p, err := db.CreateProject(ctx, w, store.Project{WorkspaceID: b.workspace.ID, Name: "p"})
	if err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	batch, err := db.CreateBatch(ctx, w, store.Batch{WorkspaceID: b.workspace.ID, ProjectID: p.ID, Name: "in p"})
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	ids, err := db.ProjectBatchIDs(ctx, w, b.workspace.ID, p.ID)
	if err != nil || !slices.Equal(ids, []int64{batch.ID}) {
		t.Fatalf("ProjectBatchIDs = %v, %v; want [%d]", ids, err, batch.ID)
	}

	// In order: each step sees what the previous ones left.
	steps := []struct {
		name      string
		workspace int64
		id        int64
		wantErr   error
		wantGone  bool
	}{
		{"other workspace", other.ID, p.ID, store.ErrNotFound, false},
		{"unknown", b.workspace.ID, p.ID + 100, store.ErrNotFound, false},
		{"own", b.workspace.ID, p.ID, nil, true},
		{"again", b.workspace.ID, p.ID, store.ErrNotFound, true},
	}
	for _, st := range steps {
		if err := db.DeleteProject(ctx, w, st.workspace, st.id); !errors.Is(err, st.wantErr) {
			t.Errorf("%s: DeleteProject error = %v, want %v", st.name, err, st.wantErr)
		}
		_, err := db.GetProject(ctx, w, b.workspace.ID, p.ID)
		if gone := errors.Is(err, store.ErrNotFound); gone != st.wantGone {
			t.Errorf("%s: GetProject error = %v, want gone: %v", st.name, err, st.wantGone)
		}
	}
	// The batch stays, in no project.
	got, err := db.GetBatch(ctx, w, b.workspace.ID, batch.ID)
	if err != nil || got.ProjectID != 0 {
		t.Errorf("batch after its project's deletion = %+v, %v; want it kept with no project", got, err)
	}
}

func TestDeleteBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	other := b.otherWorkspace(t)
	batch, items := b.insertBatchItems(t, "doomed", 2)
	keep, keepItems := b.insertBatchItems(t, "kept", 1)
	im := b.insertImage(t, newImage(items[0], 1))
	keptImage := b.insertImage(t, newImage(keepItems[0], 1))
	if _, err := db.RecordAttempt(ctx, w, store.Attempt{ItemID: items[0].ID, WorkspaceID: b.workspace.ID,
		JobAttempt: 1, Status: store.AttemptSucceeded}); err != nil {
		t.Fatalf("RecordAttempt: %v", err)
	}
	if _, err := db.UpdateItemStatus(ctx, w, items[0].ID, store.ItemUpdate{Status: store.ItemSucceeded}); err != nil {
		t.Fatalf("UpdateItemStatus: %v", err)
	}

	steps := []struct {
		name      string
		workspace int64
		id        int64
		wantErr   error
		wantGone  bool
	}{
		{"other workspace", other.ID, batch.ID, store.ErrNotFound, false},
		{"unknown", b.workspace.ID, keep.ID + 100, store.ErrNotFound, false},
		{"own", b.workspace.ID, batch.ID, nil, true},
		{"again", b.workspace.ID, batch.ID, store.ErrNotFound, true},
	}
	for _, st := range steps {
		if err := db.DeleteBatch(ctx, w, st.workspace, st.id); !errors.Is(err, st.wantErr) {
			t.Errorf("%s: DeleteBatch error = %v, want %v", st.name, err, st.wantErr)
		}
		_, err := db.GetBatch(ctx, w, b.workspace.ID, batch.ID)
		if gone := errors.Is(err, store.ErrNotFound); gone != st.wantGone {
			t.Errorf("%s: GetBatch error = %v, want gone: %v", st.name, err, st.wantGone)
		}
	}

	// Everything of the batch went with it, by cascade.
	for _, it := range items {
		if _, err := db.GetItem(ctx, w, b.workspace.ID, it.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetItem(%d) after DeleteBatch error = %v, want ErrNotFound", it.ID, err)
		}
	}
	if _, err := db.GetImage(ctx, w, b.workspace.ID, im.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetImage after DeleteBatch error = %v, want ErrNotFound", err)
	}
	if list, err := db.ListAttempts(ctx, w, b.workspace.ID, items[0].ID, 0, 0); err != nil || len(list) != 0 {
		t.Errorf("ListAttempts after DeleteBatch = %+v, %v; want nothing", list, err)
	}
	if evs, err := db.BatchEvents(ctx, w, b.workspace.ID, batch.ID, store.EventCursor{}, 10); err != nil || len(evs) != 0 {
		t.Errorf("BatchEvents after DeleteBatch = %+v, %v; want nothing", evs, err)
	}
	// The other batch is untouched.
	if _, err := db.GetImage(ctx, w, b.workspace.ID, keptImage.ID); err != nil {
		t.Errorf("GetImage(other batch's image) after DeleteBatch: %v", err)
	}
}

func TestBatchBlobKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batch, items := b.insertBatchItems(t, "keys", 3)
	otherBatch, otherItems := b.insertBatchItems(t, "other", 1)
	empty, _ := b.insertBatchItems(t, "empty", 1)
	// Two images share a file (content-addressed), another item has two.
	b.insertImage(t, imageWithKey(items[0], 1, "cc/shared.png"))
	b.insertImage(t, imageWithKey(items[1], 1, "cc/shared.png"))
	b.insertImage(t, imageWithKey(items[1], 2, "aa/second.png"))
	b.insertImage(t, imageWithKey(otherItems[0], 1, "bb/other.png"))

	tests := []struct {
		name    string
		batchID int64
		want    []string
	}{
		{"distinct and sorted", batch.ID, []string{"aa/second.png", "cc/shared.png"}},
		{"another batch", otherBatch.ID, []string{"bb/other.png"}},
		{"no images", empty.ID, nil},
		{"unknown batch", batch.ID + 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.db.BatchBlobKeys(t.Context(), b.db.Reader(), tt.batchID)
			if err != nil {
				t.Fatalf("BatchBlobKeys: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("BatchBlobKeys = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnreferencedBlobKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, items := b.insertBatchItems(t, "keys", 2)
	b.insertImage(t, imageWithKey(items[0], 1, "used/1.png"))
	b.insertImage(t, imageWithKey(items[1], 1, "used/2.png"))

	// More keys than one query takes (500), with a used one in each part.
	var many, manyFree []string
	for i := range 1200 {
		k := fmt.Sprintf("free/%04d.png", i)
		switch i {
		case 3:
			k = "used/1.png"
		case 700:
			k = "used/2.png"
		default:
			manyFree = append(manyFree, k)
		}
		many = append(many, k)
	}
	tests := []struct {
		name string
		keys []string
		want []string
	}{
		{"none", nil, nil},
		{"all used", []string{"used/1.png", "used/2.png"}, nil},
		{"mixed, input order kept", []string{"free/b.png", "used/2.png", "free/a.png"}, []string{"free/b.png", "free/a.png"}},
		{"more than one chunk", many, manyFree},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.db.UnreferencedBlobKeys(t.Context(), b.db.Reader(), tt.keys)
			if err != nil {
				t.Fatalf("UnreferencedBlobKeys: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("UnreferencedBlobKeys = %d keys %.5q…, want %d keys %.5q…", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

func TestGetBatchProgress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch, items := b.insertBatchItems(t, "progress", 4)
	otherBatch, otherItems := b.insertBatchItems(t, "other", 1)
	empty, _ := b.insertBatchItems(t, "empty", 0)
	for i, st := range []store.ItemStatus{store.ItemSucceeded, store.ItemSucceeded, store.ItemRunning} {
		if _, err := db.UpdateItemStatus(ctx, w, items[i].ID, store.ItemUpdate{Status: st}); err != nil {
			t.Fatalf("UpdateItemStatus: %v", err)
		}
	}
	b.insertImage(t, newImage(items[0], 1))
	b.insertImage(t, newImage(items[1], 1))
	b.insertImage(t, newImage(items[1], 2))
	b.insertImage(t, newImage(otherItems[0], 1))

	tests := []struct {
		name    string
		batchID int64
		want    store.BatchProgress
	}{
		{"counts and cost", batch.ID, store.BatchProgress{
			Counts:    map[store.ItemStatus]int64{store.ItemSucceeded: 2, store.ItemRunning: 1, store.ItemPending: 1},
			CostSpent: 3 * newImageCost,
		}},
		{"another batch", otherBatch.ID, store.BatchProgress{
			Counts: map[store.ItemStatus]int64{store.ItemPending: 1}, CostSpent: newImageCost}},
		{"no items", empty.ID, store.BatchProgress{Counts: map[store.ItemStatus]int64{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := db.GetBatchProgress(ctx, db.Reader(), tt.batchID)
			if err != nil {
				t.Fatalf("GetBatchProgress: %v", err)
			}
			if !maps.Equal(got.Counts, tt.want.Counts) || got.CostSpent != tt.want.CostSpent {
				t.Errorf("GetBatchProgress = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestItemNameTaken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batch, items := b.insertBatchItems(t, "names", 2)
	otherBatch, _ := b.insertBatchItems(t, "other", 0)

	tests := []struct {
		name     string
		batchID  int64
		itemName string
		want     bool
	}{
		{"taken", batch.ID, items[1].Name, true},
		{"free", batch.ID, "9999.png", false},
		{"case matters", batch.ID, "0001.PNG", false},
		{"taken in another batch only", otherBatch.ID, items[0].Name, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.db.ItemNameTaken(t.Context(), b.db.Reader(), tt.batchID, tt.itemName)
			if err != nil {
				t.Fatalf("ItemNameTaken: %v", err)
			}
			if got != tt.want {
				t.Errorf("ItemNameTaken(%q) = %v, want %v", tt.itemName, got, tt.want)
			}
		})
	}
}

func TestImageLineage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, items := b.insertBatchItems(t, "lineage", 2)
	other := b.otherWorkspace(t)
	// g1 ← g2 ← g3 is one line; g4 is another regeneration of g1, a
	// branch; lone belongs to another item and is no relative.
	regen := func(generation int64, parent store.Image) store.Image {
		im := newImage(items[0], generation)
		im.ParentID = parent.ID
		return b.insertImage(t, im)
	}
	g1 := b.insertImage(t, newImage(items[0], 1))
	g2 := regen(2, g1)
	g3 := regen(3, g2)
	g4 := regen(4, g1)
	lone := b.insertImage(t, newImage(items[1], 1))

	type rel struct {
		id       int64
		relation string
	}
	tests := []struct {
		name      string
		workspace int64
		id        int64
		want      []rel
		wantErr   error
	}{
		{"middle", b.workspace.ID, g2.ID, []rel{{g1.ID, "ancestor"}, {g2.ID, "self"}, {g3.ID, "descendant"}}, nil},
		{"root", b.workspace.ID, g1.ID, []rel{{g1.ID, "self"}, {g2.ID, "descendant"}, {g3.ID, "descendant"}, {g4.ID, "descendant"}}, nil},
		{"leaf", b.workspace.ID, g3.ID, []rel{{g1.ID, "ancestor"}, {g2.ID, "ancestor"}, {g3.ID, "self"}}, nil},
		{"branch", b.workspace.ID, g4.ID, []rel{{g1.ID, "ancestor"}, {g4.ID, "self"}}, nil},
		{"alone", b.workspace.ID, lone.ID, []rel{{lone.ID, "self"}}, nil},
		{"other workspace", other.ID, g2.ID, nil, store.ErrNotFound},
		{"unknown", b.workspace.ID, lone.ID + 100, nil, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.db.ImageLineage(t.Context(), b.db.Reader(), tt.workspace, tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ImageLineage error = %v, want %v", err, tt.wantErr)
			}
			var rels []rel
			for _, li := range got {
				rels = append(rels, rel{li.ID, li.Relation})
			}
			if !slices.Equal(rels, tt.want) {
				t.Errorf("ImageLineage = %v, want %v", rels, tt.want)
			}
			for _, li := range got {
				if li.ID == g2.ID && li.Image.ParentID != g1.ID {
					t.Errorf("lineage image %d has parent %d, want the full row (parent %d)", li.ID, li.Image.ParentID, g1.ID)
				}
			}
		})
	}
}
