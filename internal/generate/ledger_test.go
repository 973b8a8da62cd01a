package generate_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/batch"
	"bulkgen/internal/generate"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/preview"
	"bulkgen/internal/store"
)

// switchable plays the preview engine, or refuses every request (as a
// content filter would) while reject is set.
type switchable struct {
	ok     provider.Provider
	reject atomic.Bool
}

func (s *switchable) Name() string { return preview.Name }
func (s *switchable) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	if s.reject.Load() {
		return provider.Result{}, &provider.Error{Class: provider.Rejected, Provider: preview.Name, Message: "content policy"}
	}
	return s.ok.Generate(ctx, req)
}

// TestLedgerProperty runs random sequences of batch actions and image
// outcomes — create (refused when the credits do not cover it), an image
// made, an image refused, a job run again after a crash, cancel, retry,
// regenerate, delete — against a limited workspace, and after every step
// checks the ledger against a model of what must have happened:
//
//	balance = grants − charges − open reservations ≥ 0
//
// with the charges counted once per image made and the open reservations
// 3 credits for each item that is pending or running.
func TestLedgerProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			eng, err := preview.New(preview.Config{RandSeed: 1})
			if err != nil {
				t.Fatal(err)
			}
			sw := &switchable{ok: eng}
			b := setup(t, options{provider: sw})
			// Leave 60 of setup's 1000 credits, so that creates and
			// retries run out and are refused now and then.
			if _, _, err := b.db.AddEntry(t.Context(), b.db.Writer(), store.LedgerEntry{WorkspaceID: b.ws.ID,
				Kind: store.EntryAdjustment, Amount: -940, IdemKey: "adjust:test"}); err != nil {
				t.Fatal(err)
			}
			p := &ledgerModel{b: b, sw: sw, rnd: rand.New(rand.NewPCG(seed, 7)), grants: 60, made: map[int64]bool{}}
			for step := range 60 {
				op := p.step(t)
				p.check(t, fmt.Sprintf("step %d (%s)", step, op))
				if t.Failed() {
					return
				}
			}
		})
	}
}

// ledgerModel drives a bundle and keeps what the ledger must say.
type ledgerModel struct {
	b       *bundle
	sw      *switchable
	rnd     *rand.Rand
	grants  int64
	charged int64 // credits of the images made so far, deleted ones included
	made    map[int64]bool
}

const price = 3 // the preview engine's price in pricedCatalog

func (m *ledgerModel) step(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	batches := m.batches(t)
	switch op := m.rnd.IntN(8); {
	case op == 0 || len(batches) == 0:
		n := 1 + m.rnd.IntN(12)
		rows := make([]map[string]string, n)
		for i := range rows {
			rows[i] = map[string]string{"prompt": fmt.Sprintf("image %d of %d", i, m.rnd.Int())}
		}
		_, err := m.b.batches.Create(ctx, batch.Spec{WorkspaceID: m.b.ws.ID, Name: "p",
			Plan: batch.Config{Defaults: batch.Defaults{Model: "preview", Size: "16x16"}}},
			batch.InputFunc(func() (batch.RowSource, error) { return &mapRows{rows: rows}, nil }))
		if be, ok := batch.AsError(err); ok && be.Code == "insufficient_credits" {
			return fmt.Sprintf("create %d: refused", n)
		}
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		return fmt.Sprintf("create %d", n)
	case op <= 3:
		return m.runJob(t, op == 3)
	case op == 4:
		return m.replay(t)
	case op == 5:
		id := batches[m.rnd.IntN(len(batches))].ID
		_, err := m.b.batches.Cancel(ctx, m.b.ws.ID, id)
		return fmt.Sprintf("cancel %d: %v", id, err)
	case op == 6:
		id := batches[m.rnd.IntN(len(batches))].ID
		_, err := m.b.batches.Retry(ctx, m.b.ws.ID, id)
		return fmt.Sprintf("retry %d: %v", id, err)
	default:
		if m.rnd.IntN(2) == 0 {
			id := batches[m.rnd.IntN(len(batches))].ID
			return fmt.Sprintf("delete %d: %v", id, m.b.batches.Delete(ctx, m.b.ws.ID, id))
		}
		ims, err := m.b.db.ListImages(ctx, m.b.db.Reader(), m.b.ws.ID, store.ImageFilter{}, 0, 1000)
		if err != nil || len(ims) == 0 {
			return "regenerate: no image"
		}
		im := ims[m.rnd.IntN(len(ims))]
		_, err = m.b.batches.Regenerate(ctx, m.b.ws.ID, []int64{im.ID}, batch.Overrides{})
		return fmt.Sprintf("regenerate %d: %v", im.ID, err)
	}
}

// runJob runs the job of a random queued item, which succeeds or is
// refused.
func (m *ledgerModel) runJob(t *testing.T, refuse bool) string {
	t.Helper()
	it, ok := m.queuedItem(t)
	if !ok {
		return "run: nothing queued"
	}
	m.sw.reject.Store(refuse)
	err := m.b.worker.Work(t.Context(), m.job(it, 1))
	m.sw.reject.Store(false)
	if refuse {
		var cancelled *river.JobCancelError
		if !errors.As(err, &cancelled) {
			t.Fatalf("refused image: Work = %v, want a JobCancel", err)
		}
		return fmt.Sprintf("refuse item %d", it.ID)
	}
	if err != nil {
		t.Fatalf("image: Work = %v", err)
	}
	if !m.made[it.ID] {
		m.made[it.ID] = true
		m.charged += price
	}
	return fmt.Sprintf("make item %d", it.ID)
}

// replay runs the job of a finished item again, as River does after a
// crash between the work and recording its end: nothing may change.
func (m *ledgerModel) replay(t *testing.T) string {
	t.Helper()
	items, err := m.b.db.ListItems(t.Context(), m.b.db.Reader(), m.b.ws.ID, store.ItemFilter{}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var done []store.Item
	for _, it := range items {
		if (it.Status == store.ItemSucceeded || it.Status == store.ItemFailed) && it.JobID != 0 {
			done = append(done, it)
		}
	}
	if len(done) == 0 {
		return "replay: nothing finished"
	}
	it := done[m.rnd.IntN(len(done))]
	m.sw.reject.Store(m.rnd.IntN(2) == 0)
	_ = m.b.worker.Work(t.Context(), m.job(it, 2))
	m.sw.reject.Store(false)
	return fmt.Sprintf("replay item %d (%s)", it.ID, it.Status)
}

func (m *ledgerModel) job(it store.Item, attempt int) *river.Job[generate.ImageArgs] {
	return &river.Job[generate.ImageArgs]{
		JobRow: &rivertype.JobRow{ID: it.JobID, Attempt: attempt, MaxAttempts: 3, Queue: batch.QueueFor(preview.Name), Kind: "image"},
		Args:   generate.ImageArgs{ItemID: it.ID},
	}
}

func (m *ledgerModel) queuedItem(t *testing.T) (store.Item, bool) {
	t.Helper()
	items, err := m.b.db.ListItems(t.Context(), m.b.db.Reader(), m.b.ws.ID, store.ItemFilter{Status: store.ItemPending}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var queued []store.Item
	for _, it := range items {
		if it.JobID != 0 {
			queued = append(queued, it)
		}
	}
	if len(queued) == 0 {
		return store.Item{}, false
	}
	return queued[m.rnd.IntN(len(queued))], true
}

func (m *ledgerModel) batches(t *testing.T) []store.Batch {
	t.Helper()
	bs, err := m.b.db.ListBatches(t.Context(), m.b.db.Reader(), m.b.ws.ID, store.BatchFilter{}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// check compares the ledger with the model.
func (m *ledgerModel) check(t *testing.T, after string) {
	t.Helper()
	ctx := t.Context()
	if err := m.b.batches.Ledger.Verify(ctx, m.b.db.Reader(), m.b.ws.ID); err != nil {
		t.Errorf("after %s: %v", after, err)
	}
	items, err := m.b.db.ListItems(ctx, m.b.db.Reader(), m.b.ws.ID, store.ItemFilter{}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var open int64
	for _, it := range items {
		if it.Status == store.ItemPending || it.Status == store.ItemRunning {
			open += it.CostEstimate
		}
	}
	acc, err := m.b.batches.Ledger.Account(ctx, m.b.db.Reader(), m.b.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := m.b.db.SumLedger(ctx, m.b.db.Reader(), m.b.ws.ID, time.Time{}, store.EntryCharge)
	if err != nil {
		t.Fatal(err)
	}
	if -sums[store.EntryCharge] != m.charged {
		t.Errorf("after %s: charges %d, want %d (one per image made)", after, -sums[store.EntryCharge], m.charged)
	}
	if want := m.grants - m.charged - open; acc.Balance != want || acc.Reserved != open {
		t.Errorf("after %s: balance %d reserved %d, want %d = %d − %d − %d and %d", after, acc.Balance, acc.Reserved,
			want, m.grants, m.charged, open, open)
	}
	if acc.Balance < 0 {
		t.Errorf("after %s: balance %d below zero", after, acc.Balance)
	}
}
