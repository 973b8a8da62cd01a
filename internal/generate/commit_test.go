package generate

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// commitFixture is a migrated database with one batch of n pending items.
type commitFixture struct {
	db    *store.DB
	ws    store.Workspace
	batch store.Batch
	items []store.Item
}

func newCommitFixture(t *testing.T, n int) *commitFixture {
	t.Helper()
	ctx := t.Context()
	db := storetest.New(t)
	w := db.Writer()
	u, err := db.CreateUser(ctx, w, store.User{Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := db.CreateWorkspace(ctx, w, store.Workspace{OwnerUserID: u.ID, Name: "Ann's"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateBatch(ctx, w, store.Batch{WorkspaceID: ws.ID, UserID: u.ID, Name: "b", TotalCount: int64(n)})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]store.Item, n)
	for i := range items {
		items[i] = store.Item{BatchID: b.ID, WorkspaceID: ws.ID, Index: 1, Prompt: fmt.Sprint("p", i),
			Model: "preview", Provider: "preview", Width: 64, Height: 64, Format: "png",
			Name: fmt.Sprintf("%04d.png", i), CostEstimate: 3}
	}
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatal(err)
	}
	return &commitFixture{db: db, ws: ws, batch: b, items: items}
}

// successFor is the success record of item it's first run.
func successFor(it store.Item) *successRecord {
	key := fmt.Sprintf("%02x/%02x/%064x.png", it.ID%256, it.ID/256%256, it.ID)
	return &successRecord{
		item:    it,
		run:     store.ItemRun{ID: it.ID, Attempt: 1},
		image:   store.Image{ItemID: it.ID, BatchID: it.BatchID, WorkspaceID: it.WorkspaceID, Generation: 1, BlobKey: key, Format: "png", Cost: it.CostEstimate},
		attempt: store.Attempt{ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: 1, JobAttempt: 1, Status: store.AttemptSucceeded, FinishedAt: time.Now()},
	}
}

// TestCommitterGroups runs the start and the success of many items from as
// many goroutines at once, with the first group held back until all of
// them wait, so that the later records share transactions: every item
// ends succeeded with one image, one charge and one attempt, and the batch
// learns that it is done.
func TestCommitterGroups(t *testing.T) {
	t.Parallel()
	const n = 60
	f := newCommitFixture(t, n)
	c := &committer{db: f.db}
	release := make(chan struct{})
	var once sync.Once
	var maxSize int // written by the leaders, one at a time
	c.beforeGroup = func(size int) {
		once.Do(func() { <-release })
		maxSize = max(maxSize, size)
	}

	var wg sync.WaitGroup
	errs := make(chan error, n)
	done := make(chan bool, n)
	for _, it := range f.items {
		wg.Go(func() {
			s := &startRecord{run: store.ItemRun{ID: it.ID, Attempt: 1}, gen: 1}
			if err := c.do(&record{start: s}); err != nil || !s.started {
				errs <- fmt.Errorf("item %d: start: started=%v err=%v", it.ID, s.started, err)
				return
			}
			r := &record{success: successFor(s.item)}
			if err := c.do(r); err != nil || r.success.final || !r.success.created {
				errs <- fmt.Errorf("item %d: success: final=%v created=%v err=%v", it.ID, r.success.final, r.success.created, err)
				return
			}
			done <- r.batchDone
		})
	}
	// Let the first group go once every other goroutine waits behind it.
	for {
		c.mu.Lock()
		w := len(c.waiting)
		c.mu.Unlock()
		if w == n-1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	close(done)
	for err := range errs {
		t.Error(err)
	}
	settlers := 0
	for d := range done {
		if d {
			settlers++
		}
	}
	if settlers != 1 {
		t.Errorf("%d records learned that the batch is done, want exactly one (it settles the batch)", settlers)
	}
	if maxSize < 2 {
		t.Errorf("largest group had %d records; want groups", maxSize)
	}

	ctx := t.Context()
	counts, err := f.db.CountBatchItems(ctx, f.db.Reader(), f.ws.ID, f.batch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.ItemSucceeded] != n || len(counts) != 1 {
		t.Errorf("item counts %v, want %d succeeded", counts, n)
	}
	ims, err := f.db.ListImages(ctx, f.db.Reader(), f.ws.ID, store.ImageFilter{BatchID: f.batch.ID}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ims) != n {
		t.Errorf("%d images, want %d", len(ims), n)
	}
	if sums, err := f.db.SumLedger(ctx, f.db.Reader(), f.ws.ID, time.Time{}, store.EntryCharge); err != nil || sums[store.EntryCharge] != -3*n {
		t.Errorf("charges sum to %d, %v; want %d", sums[store.EntryCharge], err, -3*n)
	}
	usage, err := f.db.MonthUsage(ctx, f.db.Reader(), f.ws.ID, time.Now().UTC().Format("2006-01"))
	if err != nil || len(usage) != 1 || usage[0].Images != n || usage[0].Credits != 3*n || usage[0].Model != "preview" {
		t.Errorf("usage %+v, %v; want %d preview images for %d credits", usage, err, n, 3*n)
	}
	for _, it := range f.items[:3] {
		as, err := f.db.ListAttempts(ctx, f.db.Reader(), f.ws.ID, it.ID, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 1 || as[0].Status != store.AttemptSucceeded {
			t.Errorf("item %d attempts %+v, want one succeeded", it.ID, as)
		}
	}
	b, err := f.db.GetBatch(ctx, f.db.Reader(), f.ws.ID, f.batch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != store.BatchRunning {
		t.Errorf("batch status %s, want running (its first start moves it)", b.Status)
	}
	// The counters were kept by the groups, exactly.
	if b.SucceededCount != n || b.CostSpent != 3*n || b.Reserved != -3*n {
		t.Errorf("batch counters: %d succeeded, %d spent, %d reserved; want %d, %d, %d", b.SucceededCount, b.CostSpent, b.Reserved, n, 3*n, -3*n)
	}
}

// TestCommitterIsolatesBadRecord: a record whose write fails makes its
// group fail, and the group is written again record by record, so only
// that record gets the error.
func TestCommitterIsolatesBadRecord(t *testing.T) {
	t.Parallel()
	f := newCommitFixture(t, 3)
	c := &committer{db: f.db}
	ctx := t.Context()
	for _, it := range f.items {
		if _, err := f.db.UpdateItemStatus(ctx, f.db.Writer(), it.ID, store.ItemUpdate{Status: store.ItemRunning, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	good1, bad, good2 := successFor(f.items[0]), successFor(f.items[1]), successFor(f.items[2])
	bad.image.BatchID = f.batch.ID + 1000 // no such batch: the image's foreign key fails
	group := []*record{{success: good1}, {success: bad}, {success: good2}}
	c.writeGroup(ctx, group)
	for i, r := range group {
		wantErr := i == 1
		if (r.err != nil) != wantErr {
			t.Errorf("record %d: err %v, want error %v", i, r.err, wantErr)
		}
	}
	if !good1.created || !good2.created || bad.created {
		t.Errorf("created = %v %v %v, want true false true", good1.created, bad.created, good2.created)
	}
	counts, err := f.db.CountBatchItems(ctx, f.db.Reader(), f.ws.ID, f.batch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.ItemSucceeded] != 2 || counts[store.ItemRunning] != 1 {
		t.Errorf("item counts %v, want 2 succeeded and the bad one still running", counts)
	}
}

// TestCommitterFinishedItem: a success for an item someone else finished
// meanwhile writes nothing and says so; a start for it starts nothing.
func TestCommitterFinishedItem(t *testing.T) {
	t.Parallel()
	f := newCommitFixture(t, 1)
	c := &committer{db: f.db}
	ctx := t.Context()
	it := f.items[0]
	if _, err := f.db.UpdateItemStatus(ctx, f.db.Writer(), it.ID, store.ItemUpdate{Status: store.ItemCanceled}); err != nil {
		t.Fatal(err)
	}
	s := &startRecord{run: store.ItemRun{ID: it.ID, Attempt: 1}, gen: 1}
	if err := c.do(&record{start: s}); err != nil || s.started {
		t.Errorf("start of a canceled item: started=%v err=%v, want false, nil", s.started, err)
	}
	r := &record{success: successFor(it)}
	if err := c.do(r); err != nil || !r.success.final || r.success.created || r.batchDone {
		t.Errorf("success of a canceled item: final=%v created=%v batchDone=%v err=%v; want true false false nil",
			r.success.final, r.success.created, r.batchDone, err)
	}
	ims, err := f.db.ListImages(ctx, f.db.Reader(), f.ws.ID, store.ImageFilter{BatchID: f.batch.ID}, 0, 10)
	if err != nil || len(ims) != 0 {
		t.Errorf("images %d, %v; want none", len(ims), err)
	}
}

// TestCommitterPanic: a panic while writing a group becomes its records'
// error, and the committer goes on serving later records.
func TestCommitterPanic(t *testing.T) {
	t.Parallel()
	f := newCommitFixture(t, 1)
	c := &committer{} // no database: writing the group panics
	start := func() *startRecord {
		return &startRecord{run: store.ItemRun{ID: f.items[0].ID, Attempt: 1}, gen: 1}
	}
	if err := c.do(&record{start: start()}); err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("do with a panicking group: %v, want a panic error", err)
	}
	c.db = f.db
	s := start()
	if err := c.do(&record{start: s}); err != nil || !s.started {
		t.Errorf("next record: started=%v err=%v, want the item started", s.started, err)
	}
}
