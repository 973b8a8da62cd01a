package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"bulkgen/internal/store"
)

// newBatch creates a batch in the bundle's workspace.
func (b *testBundle) newBatch(t *testing.T, name string) store.Batch {
	t.Helper()
	batch, err := b.db.CreateBatch(t.Context(), b.db.Writer(), store.Batch{
		WorkspaceID: b.workspace.ID, UserID: b.user.ID, Name: name, TotalCount: 3, CostEstimate: 120,
	})
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	return batch
}

func TestBatchRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()

	proj, err := db.CreateProject(ctx, w, store.Project{WorkspaceID: b.workspace.ID, Name: "p"})
	if err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	in := store.Batch{
		WorkspaceID: b.workspace.ID, ProjectID: proj.ID, UserID: b.user.ID, Name: "cats",
		SourceFile: "cats.csv", Template: "a {animal}", Defaults: json.RawMessage(`{"model":"gpt-image-1","n":2}`),
		NamingTemplate: "{row}-{index}", DryRun: true, TotalCount: 10, CostEstimate: 400,
		SucceededCount: 99, // ignored: a new batch has done nothing yet
	}
	created, err := db.CreateBatch(ctx, w, in)
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	got, err := db.GetBatch(ctx, db.Reader(), b.workspace.ID, created.ID)
	if err != nil {
		t.Fatalf("GetBatch: %v", err)
	}
	if !sameJSON(t, got.Defaults, in.Defaults) {
		t.Errorf("Defaults = %s, want %s", got.Defaults, in.Defaults)
	}
	if got.Status != store.BatchQueued || got.ProjectID != proj.ID || got.UserID != b.user.ID || !got.DryRun ||
		got.Name != "cats" || got.SourceFile != "cats.csv" || got.Template != in.Template || got.NamingTemplate != in.NamingTemplate ||
		got.TotalCount != 10 || got.CostEstimate != 400 || got.SucceededCount != 0 ||
		!got.CreatedAt.Equal(created.CreatedAt) || !got.StartedAt.IsZero() || !got.FinishedAt.IsZero() {
		t.Errorf("GetBatch = %+v, want the fields of %+v", got, in)
	}

	other := b.otherWorkspace(t)
	if _, err := db.GetBatch(ctx, w, other.ID, created.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetBatch(other workspace) error = %v, want ErrNotFound", err)
	}

	// A batch without project or defaults stores NULL and {}.
	bare, err := db.CreateBatch(ctx, w, store.Batch{WorkspaceID: b.workspace.ID})
	if err != nil {
		t.Fatalf("CreateBatch(bare): %v", err)
	}
	if bare.ProjectID != 0 || !sameJSON(t, bare.Defaults, json.RawMessage(`{}`)) {
		t.Errorf("bare batch = %+v, want no project and {} defaults", bare)
	}
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func TestListBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db := b.db

	var ids []int64
	for i := range 5 {
		ids = append(ids, b.newBatch(t, fmt.Sprint("batch ", i)).ID)
	}
	if err := db.SetBatchStatus(ctx, db.Writer(), ids[1], store.BatchRunning); err != nil {
		t.Fatalf("SetBatchStatus: %v", err)
	}
	other := b.otherWorkspace(t)
	if _, err := db.CreateBatch(ctx, db.Writer(), store.Batch{WorkspaceID: other.ID}); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}

	// Newest first, two per page, without the other workspace's batch.
	var got []int64
	after := int64(0)
	for page := 0; ; page++ {
		batches, err := db.ListBatches(ctx, db.Reader(), b.workspace.ID, store.BatchFilter{}, after, 2)
		if err != nil {
			t.Fatalf("ListBatches: %v", err)
		}
		if len(batches) == 0 {
			break
		}
		if page > 5 {
			t.Fatalf("ListBatches does not end")
		}
		for _, x := range batches {
			got = append(got, x.ID)
		}
		after = batches[len(batches)-1].ID
	}
	want := []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if !equalIDs(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}

	running, err := db.ListBatches(ctx, db.Reader(), b.workspace.ID, store.BatchFilter{Status: store.BatchRunning}, 0, 0)
	if err != nil {
		t.Fatalf("ListBatches(running): %v", err)
	}
	if len(running) != 1 || running[0].ID != ids[1] {
		t.Errorf("ListBatches(running) = %+v, want batch %d only", running, ids[1])
	}
}

func TestSetBatchStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	batch := b.newBatch(t, "x")

	steps := []struct {
		status                    store.BatchStatus
		wantStarted, wantFinished bool
	}{
		{store.BatchRunning, true, false},
		{store.BatchPaused, true, false},
		{store.BatchRunning, true, false},
		{store.BatchPartial, true, true},
		{store.BatchRunning, true, false}, // resumed: no longer finished
		{store.BatchSucceeded, true, true},
	}
	var firstStart = batch.StartedAt
	for i, s := range steps {
		if err := db.SetBatchStatus(ctx, w, batch.ID, s.status); err != nil {
			t.Fatalf("step %d SetBatchStatus(%s): %v", i, s.status, err)
		}
		got, err := db.GetBatch(ctx, w, b.workspace.ID, batch.ID)
		if err != nil {
			t.Fatalf("GetBatch: %v", err)
		}
		if got.Status != s.status || got.StartedAt.IsZero() != !s.wantStarted || got.FinishedAt.IsZero() != !s.wantFinished {
			t.Errorf("step %d: status %s started %v finished %v; want %s started=%v finished=%v",
				i, got.Status, got.StartedAt, got.FinishedAt, s.status, s.wantStarted, s.wantFinished)
		}
		if i == 0 {
			firstStart = got.StartedAt
		} else if !got.StartedAt.Equal(firstStart) {
			t.Errorf("step %d: started_at moved from %v to %v", i, firstStart, got.StartedAt)
		}
	}
	if err := db.SetBatchStatus(ctx, w, batch.ID+1000, store.BatchRunning); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetBatchStatus(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := w.ExecContext(ctx, `UPDATE batches SET status = 'exploded'`); err == nil {
		t.Errorf("status 'exploded' accepted, want the CHECK constraint to refuse it")
	}
}
