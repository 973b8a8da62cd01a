package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/riverqueue/river"

	"bulkgen/internal/generate"
	"bulkgen/internal/store"
)

// insertJobs queues, inside tx, one image job per item on its provider's
// queue and links each item to its job (items.job_id), which is how
// cancel, pause and delete find a batch's jobs. It is the one way image
// jobs are inserted. The workers are woken once tx commits (afterCommit).
func (s *Service) insertJobs(ctx context.Context, tx *sql.Tx, items []store.QueuedItem) error {
	if len(items) == 0 {
		return nil
	}
	if s.Queue == nil {
		return &Error{Kind: Unavailable, Code: "unavailable", Message: "this server cannot queue jobs"}
	}
	policy := s.Policy.Normalized()
	params := make([]river.InsertManyParams, len(items))
	for i, it := range items {
		params[i] = river.InsertManyParams{Args: generate.ImageArgs{ItemID: it.ID},
			InsertOpts: &river.InsertOpts{Queue: QueueFor(it.Provider), MaxAttempts: policy.MaxAttempts}}
	}
	res, err := s.Queue.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("queue image jobs: %w", err)
	}
	if len(res) != len(items) {
		return fmt.Errorf("queue image jobs: %d inserted for %d items", len(res), len(items))
	}
	links := make([]store.ItemJob, len(items))
	for i, r := range res {
		links[i] = store.ItemJob{ItemID: items[i].ID, JobID: r.Job.ID}
	}
	return s.DB.SetItemJobs(ctx, tx, links)
}

// enqueuePending queues the pending items of batch that have no job, a
// chunk per transaction, and wakes the workers after each. It stops, with
// no error, when the batch is paused or final meanwhile.
func (s *Service) enqueuePending(ctx context.Context, batchID int64) error {
	var after int64
	for {
		var chunk []store.QueuedItem
		err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
			if err := s.DB.LockBatch(ctx, tx, batchID); err != nil {
				return err
			}
			b, err := s.DB.GetBatchByID(ctx, tx, batchID)
			if err != nil {
				return err
			}
			if b.Status == store.BatchPaused || b.Status.Final() {
				return nil
			}
			if chunk, err = s.DB.ItemsWithoutJob(ctx, tx, batchID, after, submitChunk); err != nil {
				return err
			}
			return s.insertJobs(ctx, tx, chunk)
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		s.wake(chunk)
		if len(chunk) < submitChunk {
			return nil
		}
		after = chunk[len(chunk)-1].ID
	}
}

// wake tells the workers of items' queues that jobs are waiting.
func (s *Service) wake(items []store.QueuedItem) {
	if s.Wake == nil || len(items) == 0 {
		return
	}
	var queues []string
	for _, it := range items {
		q := QueueFor(it.Provider)
		if !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	s.Wake(queues)
}
