// Package batchcheck audits a finished batch: every item made its image
// exactly once, was charged exactly once, left no file behind, and the
// batch's counters and credits add up. `bulkgen admin check-batch` prints
// its report, and the crash test (scripts/crash-test.sh) fails on any
// problem it lists after killing a server in the middle of a batch.
package batchcheck

import (
	"context"
	"errors"
	"fmt"
	"time"

	"bulkgen/internal/blob"
	"bulkgen/internal/ledger"
	"bulkgen/internal/store"
)

// Report is what Check found. Problems lists every inconsistency; a batch
// whose report has none ran every image exactly once.
type Report struct {
	BatchID        int64            `json:"batch_id"`
	Status         string           `json:"status"`
	Total          int64            `json:"total"`
	ItemsByStatus  map[string]int64 `json:"items_by_status"`
	Images         int              `json:"images"`
	ImagesPerItem  map[string]int   `json:"images_per_item"` // "0", "1", "2+" → items
	DistinctSHA256 int              `json:"distinct_sha256"`
	Attempts       map[string]int   `json:"attempts_by_status"`
	ItemsRetried   int              `json:"items_retried"` // items that needed more than one attempt
	Charges        int              `json:"charges"`
	Charged        int64            `json:"charged"`      // credits charged for the batch's images
	Reserved       int64            `json:"reserved"`     // credits the batch still holds
	Balance        int64            `json:"balance"`      // the workspace's balance
	Files          int              `json:"files"`        // objects in the blob store
	OrphanFiles    int              `json:"orphan_files"` // objects no image row uses
	LiveJobs       int64            `json:"live_jobs"`
	Problems       []string         `json:"problems"`
}

// Options tune Check.
type Options struct {
	// LiveJobWait is how long to wait for River to record the end of a
	// finished batch's last jobs (it does so just after their work
	// returns); 0 means 10 s.
	LiveJobWait time.Duration
}

// Check audits workspace's batch id on db and blobs. blobs must list its
// objects (blob.Lister) for orphans to be found; without it the file
// checks are skipped. It returns an error only when it cannot read.
func Check(ctx context.Context, db *store.DB, blobs blob.Store, workspaceID, id int64, opt Options) (Report, error) {
	b, err := db.GetBatch(ctx, db.Reader(), workspaceID, id)
	if err != nil {
		return Report{}, err
	}
	c := &checker{ctx: ctx, db: db, q: db.Reader(), ws: workspaceID, b: b, r: Report{
		BatchID: id, Status: string(b.Status), Total: b.TotalCount, Reserved: b.Reserved,
		ItemsByStatus: map[string]int64{}, ImagesPerItem: map[string]int{}, Attempts: map[string]int{}, Problems: []string{},
	}}
	steps := []func() error{c.items, c.counters, func() error { return c.jobs(opt) }, c.credits}
	if l, ok := blobs.(blob.Lister); ok {
		steps = append(steps, func() error { return c.files(blobs, l) })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return Report{}, err
		}
	}
	return c.r, nil
}

type checker struct {
	ctx        context.Context
	db         *store.DB
	q          store.Querier
	ws         int64
	b          store.Batch
	r          Report
	referenced map[string]bool // blob keys of every image of the workspace
}

func (c *checker) problem(format string, args ...any) {
	c.r.Problems = append(c.r.Problems, fmt.Sprintf(format, args...))
}

// items checks each item's images, charges and attempts.
func (c *checker) items() error {
	id := c.b.ID
	items, err := pages(func(after int64) ([]store.Item, error) {
		return c.db.ListItems(c.ctx, c.q, c.ws, store.ItemFilter{BatchID: id}, after, 1000)
	}, func(it store.Item) int64 { return it.ID })
	if err != nil {
		return err
	}
	images, err := pages(func(after int64) ([]store.Image, error) {
		return c.db.ListImages(c.ctx, c.q, c.ws, store.ImageFilter{}, after, 1000)
	}, func(im store.Image) int64 { return im.ID })
	if err != nil {
		return err
	}
	perItem := map[int64][]store.Image{}
	c.referenced = map[string]bool{}
	shas := map[string]int{}
	for _, im := range images {
		c.referenced[im.BlobKey] = true
		if im.BatchID != id {
			continue
		}
		c.r.Images++
		perItem[im.ItemID] = append(perItem[im.ItemID], im)
		shas[im.SHA256]++
	}
	c.r.DistinctSHA256 = len(shas)
	for sha, n := range shas {
		if n > 1 {
			c.problem("%d images share the content %s", n, sha)
		}
	}
	charges, err := c.charges()
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := c.item(it, perItem[it.ID], charges[it.ID]); err != nil {
			return err
		}
	}
	if int64(len(items)) != c.b.TotalCount {
		c.problem("batch counts %d items, %d exist", c.b.TotalCount, len(items))
	}
	return nil
}

// charges counts the charge entries of each of the batch's items.
func (c *checker) charges() (map[int64]int, error) {
	charges := map[int64]int{}
	var after int64
	for {
		es, err := c.db.ListLedgerEntries(c.ctx, c.q, c.ws, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Kind == store.EntryCharge && e.BatchID == c.b.ID {
				charges[e.ItemID]++
				c.r.Charges++
				c.r.Charged -= e.Amount
			}
		}
		if len(es) < 1000 {
			return charges, nil
		}
		after = es[len(es)-1].ID
	}
}

func (c *checker) item(it store.Item, ims []store.Image, charges int) error {
	c.r.ItemsByStatus[string(it.Status)]++
	switch len(ims) {
	case 0:
		c.r.ImagesPerItem["0"]++
	case 1:
		c.r.ImagesPerItem["1"]++
	default:
		c.r.ImagesPerItem["2+"]++
	}
	gens := map[int64]bool{}
	for _, im := range ims {
		if gens[im.Generation] {
			c.problem("item %d has two images of generation %d", it.ID, im.Generation)
		}
		gens[im.Generation] = true
	}
	want := 0
	if it.Status == store.ItemSucceeded {
		want = 1
	}
	if len(ims) != want {
		c.problem("item %d is %s with %d images", it.ID, it.Status, len(ims))
	}
	if charges != want {
		c.problem("item %d is %s with %d charges", it.ID, it.Status, charges)
	}
	as, err := c.db.ListAttempts(c.ctx, c.q, c.ws, it.ID, 0, 1000)
	if err != nil {
		return err
	}
	succeeded := 0
	for _, a := range as {
		c.r.Attempts[string(a.Status)]++
		if a.Status == store.AttemptSucceeded {
			succeeded++
		}
		if a.Status == store.AttemptRunning && final(it.Status) {
			c.problem("item %d is %s but its attempt %d is still recorded as running", it.ID, it.Status, a.JobAttempt)
		}
	}
	if len(as) > 1 {
		c.r.ItemsRetried++
	}
	if it.Status == store.ItemSucceeded && (succeeded != 1 || it.Attempts < 1) {
		c.problem("item %d succeeded with %d succeeded attempts (attempts %d)", it.ID, succeeded, it.Attempts)
	}
	return nil
}

// counters compares the batch's counters with its items.
func (c *checker) counters() error {
	b := c.b
	for st, got := range map[store.ItemStatus]int64{store.ItemSucceeded: b.SucceededCount, store.ItemFailed: b.FailedCount, store.ItemCanceled: b.CanceledCount} {
		if c.r.ItemsByStatus[string(st)] != got {
			c.problem("batch counts %d %s items, %d are", got, st, c.r.ItemsByStatus[string(st)])
		}
	}
	if b.CostSpent != c.r.Charged {
		c.problem("batch says %d credits spent, its charges sum to %d", b.CostSpent, c.r.Charged)
	}
	if !b.Status.Final() {
		c.problem("batch is %s, not final", b.Status)
	}
	return nil
}

// jobs checks that a final batch has no job that may still run.
func (c *checker) jobs(opt Options) error {
	wait := opt.LiveJobWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		live, err := c.db.LiveJobs(c.ctx, c.q, c.b.ID)
		if err != nil {
			return err
		}
		c.r.LiveJobs = live
		if !c.b.Status.Final() || live == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.b.Status.Final() && c.r.LiveJobs > 0 {
		c.problem("%d jobs still live %s after the batch finished", c.r.LiveJobs, wait)
	}
	return nil
}

// credits checks that a final batch holds nothing and that the
// workspace's balance is its ledger's sum.
func (c *checker) credits() error {
	if c.b.Status.Final() && c.b.Reserved != 0 {
		c.problem("batch is %s but still holds %d credits", c.b.Status, c.b.Reserved)
	}
	l := &ledger.Ledger{DB: c.db}
	acc, err := l.Account(c.ctx, c.q, c.ws)
	if err != nil {
		return err
	}
	c.r.Balance = acc.Balance
	if err := l.Verify(c.ctx, c.q, c.ws); err != nil {
		c.problem("credits: %v", err)
	}
	return nil
}

// files checks that every stored object is an image row's file (a second
// file for one item would be a duplicate) and that every image's file is
// there.
func (c *checker) files(blobs blob.Store, l blob.Lister) error {
	err := l.List(c.ctx, func(key string, _ time.Time) error {
		c.r.Files++
		if !c.referenced[key] {
			c.r.OrphanFiles++
			c.problem("file %s belongs to no image", key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list image files: %w", err)
	}
	for key := range c.referenced {
		obj, err := blobs.Open(c.ctx, key)
		if err != nil {
			if !errors.Is(err, blob.ErrNotFound) {
				return err
			}
			c.problem("image file %s is missing", key)
			continue
		}
		_ = obj.Close()
	}
	return nil
}

// pages reads every row of a cursor-paginated list.
func pages[T any](list func(after int64) ([]T, error), id func(T) int64) ([]T, error) {
	var out []T
	var after int64
	for {
		page, err := list(after)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out, nil
		}
		after = id(page[len(page)-1])
	}
}

func final(s store.ItemStatus) bool {
	return s == store.ItemSucceeded || s == store.ItemFailed || s == store.ItemCanceled
}
