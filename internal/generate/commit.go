package generate

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"bulkgen/internal/ledger"
	"bulkgen/internal/provider"
	"bulkgen/internal/store"
)

// groupTimeout bounds one shared transaction. It does not derive from the
// context of the job that happens to lead the group: the other jobs'
// records must not fail because that one job was canceled.
const groupTimeout = 30 * time.Second

// maxGroup bounds how many records share one transaction, so that one
// transaction's locks and retries stay small.
const maxGroup = 128

// committer writes the records of the image jobs' hot path — an item
// starting, an image succeeding — in shared transactions (group commit).
//
// Each record is a handful of small rows. Written in a transaction of
// their own, a statement per row, the transactions (BEGIN, COMMIT and its
// WAL flush, and on SQLite the wait for the one writer connection) and the
// round trips were most of the cost and capped the server near 200
// images/s (see `bulkgen bench serve` in the README). A group writes each
// kind of row for all its records with one multi-row statement
// (store.DB.StartItems, SucceedItems, InsertImages, ChargeImages,
// RecordAttempts), sent in two rounds (store.Pipeline): on PostgreSQL a
// group costs two network round trips, BEGIN and COMMIT included. Records
// that arrive while a group is being written wait and go into the next
// one together, so groups grow with the load and a lone record is written
// at once.
//
// One group is written at a time per process. Two or four at once were no
// faster on PostgreSQL in `bulkgen bench serve` (within the machine's
// noise); a likely reason is that every row a group writes references the
// same batch and workspace rows, whose foreign-key locks concurrent
// transactions then share.
//
// There is no goroutine of its own: the job whose record finds no group in
// progress writes the group (it leads), and when it is done it hands the
// lead to the first record that arrived meanwhile. A record's outcome is
// the same whether it was written alone or in a group: each one's
// statements are guarded on the item's status, and when a shared
// transaction fails, its records are written again one transaction each, so
// that one bad record cannot fail the others.
type committer struct {
	db *store.DB

	mu      sync.Mutex
	leading bool
	waiting []*record

	// beforeGroup, when set (by tests), is called by each leader with the
	// size of the group it is about to write.
	beforeGroup func(size int)
}

// record is one job's part of a group, with its outcome: either an item
// starting (start set) or an image succeeding (success set).
type record struct {
	start   *startRecord
	success *successRecord

	// batchDone reports, for one success per batch and group, that the
	// batch's counters said every item was final once the group's changes
	// applied: that record's job settles the batch after the commit.
	batchDone bool
	err       error
	done      chan bool // true: the receiver leads the next group
}

// startRecord moves an item to running for one run of its job and records
// the attempt as running.
type startRecord struct {
	run store.ItemRun
	gen int64

	// Outcome: the started item, or started false when the item is gone
	// or final or its batch paused or canceled.
	item    store.Item
	started bool
}

// successRecord records an image: the item's success, the image row, the
// charge and the finished attempt.
type successRecord struct {
	item    store.Item
	run     store.ItemRun
	image   store.Image
	attempt store.Attempt

	// Outcome: final when the item was finished by someone else meanwhile
	// (nothing of this run was written); created false when an image of
	// this item and generation was already recorded.
	final   bool
	created bool
	// ref is where the image's insert reports its row, once sent.
	ref *store.ImageRef
}

// do writes r, alone or with others, and returns its error.
func (c *committer) do(r *record) error {
	r.done = make(chan bool, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, r)
	if c.leading {
		c.mu.Unlock()
		if lead := <-r.done; !lead {
			return r.err
		}
		c.mu.Lock()
	} else {
		c.leading = true
	}
	// This goroutine leads: write one group, then hand over.
	n := min(len(c.waiting), maxGroup)
	group := slices.Clone(c.waiting[:n])
	c.waiting = c.waiting[n:]
	c.mu.Unlock()

	if c.beforeGroup != nil {
		c.beforeGroup(len(group))
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	c.writeGroup(ctx, group)

	c.mu.Lock()
	if len(c.waiting) > 0 {
		next := c.waiting[0]
		c.mu.Unlock()
		next.done <- true
	} else {
		c.leading = false
		c.mu.Unlock()
	}
	for _, g := range group {
		if g != r {
			g.done <- false
		}
	}
	return r.err
}

// writeGroup writes group in one transaction, or, when that fails, each
// record in its own.
func (c *committer) writeGroup(ctx context.Context, group []*record) {
	// A panic here (a bug) must not leave the other jobs of the group, and
	// every later one, waiting for a leader that is gone: it becomes every
	// record's error, which River records on each job and retries.
	defer func() {
		if p := recover(); p != nil {
			for _, r := range group {
				r.err = fmt.Errorf("group commit: panic: %v", p)
			}
		}
	}()
	write := func(rs []*record) error {
		var done map[int64]bool
		err := c.db.Pipelined(ctx, func(p *store.Pipeline) (err error) {
			done, err = c.apply(p, rs)
			return err
		})
		if err == nil {
			markDone(rs, done)
		}
		return err
	}
	err := write(group)
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.err = err
		}
	} else {
		for _, r := range group {
			r.err = write([]*record{r})
		}
	}
	for _, r := range group {
		if s := r.success; r.err == nil && s != nil && s.ref != nil {
			s.created = s.ref.Created
		}
	}
}

// apply writes group's records with one statement per kind of row, in
// two rounds (store.Pipeline): the batches' locks and the items' moves,
// whose outcome decides the rest; then the attempts, batch starts, images,
// their charges, the batches' counters and the month's usage, with the
// commit. Once the last round is sent, done holds the batches whose
// counters say every item is final.
func (c *committer) apply(p *store.Pipeline, group []*record) (done map[int64]bool, err error) {
	var starts []*startRecord
	var successes []*successRecord
	var batches []int64
	for _, r := range group {
		r.batchDone = false
		switch {
		case r.start != nil:
			r.start.item, r.start.started = store.Item{}, false
			starts = append(starts, r.start)
		case r.success != nil:
			r.success.final, r.success.created, r.success.ref = false, false, nil
			successes = append(successes, r.success)
			batches = append(batches, r.success.item.BatchID)
		}
	}
	// The locks of the successes' batches come first, in id order, before
	// any item row is written: every batch action takes its batch's lock
	// before its items too, so the two cannot deadlock, and the counters
	// written at the end cannot be changed under the group. A start
	// changes no counter and takes no lock (its batch may move from queued
	// to running, which StartBatch does atomically).
	slices.Sort(batches)
	c.db.LockBatches(p, slices.Compact(batches))

	started := map[int64]store.Item{}
	if err := c.db.StartItems(p, runsOf(starts, func(s *startRecord) store.ItemRun { return s.run }), started); err != nil {
		return nil, err
	}
	changed := map[int64]bool{}
	if err := c.db.SucceedItems(p, runsOf(successes, func(s *successRecord) store.ItemRun { return s.run }), changed); err != nil {
		return nil, err
	}
	if err := p.Flush(); err != nil {
		return nil, err
	}

	attempts := c.applyStarts(p, starts, started)
	owners, refs, err := c.insertImages(p, successes, changed)
	if err != nil {
		return nil, err
	}
	for _, s := range owners {
		attempts = append(attempts, s.attempt)
	}
	if err := c.db.RecordAttempts(p, attempts); err != nil {
		return nil, err
	}
	w := successWrites(owners)
	if err := c.db.ChargeImages(p, w.charges); err != nil {
		return nil, err
	}
	done = map[int64]bool{}
	if err := c.db.AddBatchCountsMany(p, w.counts, func(id int64) { done[id] = true }); err != nil {
		return nil, err
	}
	if err := c.db.AddUsage(p, w.usage); err != nil {
		return nil, err
	}
	for i, s := range owners {
		s.ref = &refs[i] // filled in when the round, with the commit, is sent
	}
	return done, nil
}

// writes are the rows a group's images add beyond themselves: a charge
// each, and the changes to their batches' counters and to the month's
// usage, one row per batch and per workspace and model.
type writes struct {
	charges []store.ImageCharge
	counts  []store.BatchDelta
	usage   []store.UsageDelta
}

func successWrites(owners []*successRecord) writes {
	var w writes
	counts := map[int64]int{}           // batch → index in w.counts
	usage := map[store.UsageDelta]int{} // (workspace, month, model) → index in w.usage
	month := ledger.Month(time.Now())
	for _, s := range owners {
		it := s.item
		w.charges = append(w.charges, store.ImageCharge{Generation: s.image.Generation,
			Entry: ledger.Charge(it.WorkspaceID, it.BatchID, it.ID, s.image.Generation, s.run.Attempt, it.CostEstimate, it.Model)})
		i, ok := counts[it.BatchID]
		if !ok {
			i = len(w.counts)
			counts[it.BatchID] = i
			w.counts = append(w.counts, store.BatchDelta{BatchID: it.BatchID})
		}
		w.counts[i].Add(store.BatchDelta{Succeeded: 1, Spent: it.CostEstimate, Reserved: -it.CostEstimate})
		k := store.UsageDelta{WorkspaceID: it.WorkspaceID, Month: month, Model: it.Model}
		j, ok := usage[k]
		if !ok {
			j = len(w.usage)
			usage[k] = j
			w.usage = append(w.usage, k)
		}
		w.usage[j].Images++
		w.usage[j].Credits += it.CostEstimate
	}
	return w
}

// markDone sets batchDone on one committed success of each batch in done:
// settling recounts the batch, once is enough.
func markDone(group []*record, done map[int64]bool) {
	for _, r := range group {
		if s := r.success; s != nil && s.ref != nil && done[s.item.BatchID] {
			r.batchDone = true
			delete(done, s.item.BatchID)
		}
	}
}

func runsOf[R any](rs []R, run func(R) store.ItemRun) []store.ItemRun {
	out := make([]store.ItemRun, len(rs))
	for i, r := range rs {
		out[i] = run(r)
	}
	return out
}

// applyStarts marks the records of starts whose items started (in
// started), queues the end of their interrupted earlier attempts and the
// start of their batches, and returns their running attempts.
func (c *committer) applyStarts(p *store.Pipeline, starts []*startRecord, started map[int64]store.Item) []store.Attempt {
	var attempts []store.Attempt
	var batches []int64
	for _, s := range starts {
		it, ok := started[s.run.ID]
		if !ok {
			continue
		}
		s.item, s.started = it, true
		if s.run.Attempt > 1 {
			// An earlier run of this generation still recorded as running
			// died mid-call (River rescued the job): it will never finish.
			c.db.FailInterruptedAttempts(p, it.ID, s.gen, s.run.Attempt, string(provider.Retryable),
				"interrupted: the process stopped during the call")
		}
		attempts = append(attempts, store.Attempt{
			ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: s.gen, JobAttempt: s.run.Attempt,
			Status: store.AttemptRunning,
		})
		batches = append(batches, it.BatchID)
	}
	slices.Sort(batches)
	for _, id := range slices.Compact(batches) {
		c.db.StartBatch(p, id)
	}
	return attempts
}

// insertImages marks the records of successes whose items another run or
// a cancel finished meanwhile (not in changed) as final, and queues the
// images of the others, which it returns (owners) with their images and
// the refs the round fills in.
func (c *committer) insertImages(p *store.Pipeline, successes []*successRecord, changed map[int64]bool) (owners []*successRecord, refs []store.ImageRef, err error) {
	var ims []store.Image
	for _, s := range successes {
		if !changed[s.item.ID] {
			// Nothing of this run is wanted.
			s.final = true
			continue
		}
		ims = append(ims, s.image)
		owners = append(owners, s)
	}
	refs = make([]store.ImageRef, len(ims))
	return owners, refs, c.db.InsertImages(p, ims, refs)
}
