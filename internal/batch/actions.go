package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"bulkgen/internal/ledger"
	"bulkgen/internal/store"
)

// Status is a batch as people read it: its row with the number of items
// in each status.
type Status struct {
	store.Batch
	// Counts holds every item status, zero included.
	Counts map[store.ItemStatus]int64
}

// ETA estimates the time left at the rate of finished images since the
// batch started: nil until the first image is done, and once the batch is
// final or paused.
func (st Status) ETA(now time.Time) *time.Duration {
	b := st.Batch
	if b.Status.Final() || b.Status == store.BatchPaused || b.StartedAt.IsZero() {
		return nil
	}
	done := st.Counts[store.ItemSucceeded] + st.Counts[store.ItemFailed]
	left := st.Counts[store.ItemPending] + st.Counts[store.ItemRunning]
	elapsed := now.Sub(b.StartedAt)
	if done == 0 || elapsed <= 0 {
		return nil
	}
	d := (time.Duration(left) * elapsed / time.Duration(done)).Round(time.Second)
	return &d
}

// status adds b's counts: the counters kept on its row, and its running
// items, counted from an index (there are at most as many as workers).
func (s *Service) status(ctx context.Context, q store.Querier, b store.Batch) (Status, error) {
	running, err := s.DB.RunningItems(ctx, q, b.ID)
	if err != nil {
		return Status{}, err
	}
	done := b.SucceededCount + b.FailedCount + b.CanceledCount
	return Status{Batch: b, Counts: map[store.ItemStatus]int64{
		store.ItemPending:   max(0, b.TotalCount-done-running),
		store.ItemRunning:   running,
		store.ItemSucceeded: b.SucceededCount,
		store.ItemFailed:    b.FailedCount,
		store.ItemCanceled:  b.CanceledCount,
	}}, nil
}

// Get returns the workspace's batch id with its counts, or ErrNotFound.
// It reads the batch's row and one short index range, whatever the
// batch's size.
func (s *Service) Get(ctx context.Context, workspaceID, id int64) (Status, error) {
	b, err := s.DB.GetBatch(ctx, s.DB.Reader(), workspaceID, id)
	if err != nil {
		return Status{}, err
	}
	return s.status(ctx, s.DB.Reader(), b)
}

// List returns a page of the workspace's batches, newest first, with
// their counts (see store.DB.ListBatches for after and limit).
func (s *Service) List(ctx context.Context, workspaceID int64, f store.BatchFilter, after int64, limit int) ([]Status, error) {
	bs, err := s.DB.ListBatches(ctx, s.DB.Reader(), workspaceID, f, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Status, len(bs))
	for i, b := range bs {
		if out[i], err = s.status(ctx, s.DB.Reader(), b); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// act runs fn on the workspace's batch id in one transaction that holds
// the batch's lock, then queues the jobs fn asked for (a chunk per
// transaction, after the commit) and returns the batch as it is then.
func (s *Service) act(ctx context.Context, workspaceID, id int64, fn func(tx *sql.Tx, b store.Batch) (enqueue bool, err error)) (Status, error) {
	var enqueue bool
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		b, err := s.DB.LockWorkspaceBatch(ctx, tx, workspaceID, id)
		if err != nil {
			return err
		}
		enqueue, err = fn(tx, b)
		return err
	})
	if err != nil {
		return Status{}, err
	}
	if enqueue {
		if err := s.enqueuePending(ctx, id); err != nil {
			return Status{}, err
		}
	}
	return s.Get(ctx, workspaceID, id)
}

// Cancel cancels the batch's pending items (their queued jobs are
// deleted and their reservation released); running items finish. A final
// batch is a Conflict.
func (s *Service) Cancel(ctx context.Context, workspaceID, id int64) (Status, error) {
	return s.act(ctx, workspaceID, id, func(tx *sql.Tx, b store.Batch) (bool, error) {
		if b.Status.Final() {
			return false, stateError(string(b.Status), "cancel")
		}
		if _, err := s.DB.DropWaitingJobs(ctx, tx, b.ID, store.ItemPending); err != nil {
			return false, err
		}
		moved, err := s.DB.MoveBatchItems(ctx, tx, b.ID, store.ItemPending, store.ItemCanceled)
		if err != nil {
			return false, err
		}
		if err := s.releaseMoved(ctx, tx, b, moved, "cancel"); err != nil {
			return false, err
		}
		if err := s.DB.AddBatchCounts(ctx, tx, store.BatchDelta{BatchID: b.ID, Canceled: moved.Count, Reserved: -moved.Estimate}); err != nil {
			return false, err
		}
		if err := s.DB.SetBatchStatus(ctx, tx, b.ID, store.BatchCanceled); err != nil {
			return false, err
		}
		return false, s.settleTx(ctx, tx, b.ID)
	})
}

// releaseMoved releases the reservation of items an action moved out of
// pending.
func (s *Service) releaseMoved(ctx context.Context, tx *sql.Tx, b store.Batch, moved store.Moved, action string) error {
	return s.Ledger.Release(ctx, tx, b.WorkspaceID, b.ID, 0, moved.Estimate,
		fmt.Sprintf("release:batch:%d:%s:%d", b.ID, action, s.now().UnixNano()),
		fmt.Sprintf("batch %d: %d images %s", b.ID, moved.Count, action))
}

// Pause stops the batch's pending items from starting (their queued jobs
// are deleted; the items and their reservation stay); running items
// finish. Only a queued or running batch can pause.
func (s *Service) Pause(ctx context.Context, workspaceID, id int64) (Status, error) {
	return s.act(ctx, workspaceID, id, func(tx *sql.Tx, b store.Batch) (bool, error) {
		if b.Status != store.BatchQueued && b.Status != store.BatchRunning {
			return false, stateError(string(b.Status), "pause")
		}
		if _, err := s.DB.DropWaitingJobs(ctx, tx, b.ID, store.ItemPending); err != nil {
			return false, err
		}
		return false, s.DB.SetBatchStatus(ctx, tx, b.ID, store.BatchPaused)
	})
}

// Resume queues a job for every pending item that has none. Only a paused
// batch can resume.
func (s *Service) Resume(ctx context.Context, workspaceID, id int64) (Status, error) {
	return s.act(ctx, workspaceID, id, func(tx *sql.Tx, b store.Batch) (bool, error) {
		if b.Status != store.BatchPaused {
			return false, stateError(string(b.Status), "resume")
		}
		return true, s.reopen(ctx, tx, b)
	})
}

// Retry moves the batch's failed items back to pending with new jobs (in
// a paused batch they wait for resume), reserving their cost again. A
// batch without failed items is a Conflict; a workspace that cannot pay
// for them again, a Payment error.
func (s *Service) Retry(ctx context.Context, workspaceID, id int64) (Status, error) {
	return s.act(ctx, workspaceID, id, func(tx *sql.Tx, b store.Batch) (bool, error) {
		moved, err := s.DB.MoveBatchItems(ctx, tx, b.ID, store.ItemFailed, store.ItemPending)
		if err != nil {
			return false, err
		}
		if moved.Count == 0 {
			return false, &Error{Kind: Conflict, Code: "nothing_to_retry", Message: "the batch has no failed items"}
		}
		err = s.Ledger.Reserve(ctx, tx, ledger.Hold{WorkspaceID: b.WorkspaceID, BatchID: b.ID, Amount: moved.Estimate,
			Key:  fmt.Sprintf("reserve:batch:%d:retry:%d", b.ID, s.now().UnixNano()),
			Note: fmt.Sprintf("batch %d: retry %d images", b.ID, moved.Count)})
		if err != nil {
			return false, creditError(err)
		}
		if err := s.DB.AddBatchCounts(ctx, tx, store.BatchDelta{BatchID: b.ID, Failed: -moved.Count, Reserved: moved.Estimate}); err != nil {
			return false, err
		}
		if b.Status == store.BatchPaused {
			return false, nil
		}
		return true, s.reopen(ctx, tx, b)
	})
}

// reopen sets the status of a batch that has work again (resumed, retried,
// regenerated): running when it has started before, queued otherwise.
func (s *Service) reopen(ctx context.Context, tx *sql.Tx, b store.Batch) error {
	status := store.BatchQueued
	if !b.StartedAt.IsZero() {
		status = store.BatchRunning
	}
	if err := s.DB.SetBatchStatus(ctx, tx, b.ID, status); err != nil {
		return err
	}
	// A resumed batch whose items all finished while it was paused is
	// final at once.
	return s.settleTx(ctx, tx, b.ID)
}

// Delete deletes the batch with its items and images, deletes its queued
// jobs and releases what it still held. Running jobs find their item gone
// and stop. The image files are left to the blob sweeper (package blobgc),
// which removes those no image uses once they are older than any job could
// still be writing them: deleting them here could remove a file that a
// worker is writing at the same moment for another image with the same
// content.
func (s *Service) Delete(ctx context.Context, workspaceID, id int64) error {
	return s.DB.Tx(ctx, func(tx *sql.Tx) error {
		return s.deleteTx(ctx, tx, workspaceID, id)
	})
}

func (s *Service) deleteTx(ctx context.Context, tx *sql.Tx, workspaceID, id int64) error {
	b, err := s.DB.LockWorkspaceBatch(ctx, tx, workspaceID, id)
	if err != nil {
		return err
	}
	if _, err := s.DB.DropWaitingJobs(ctx, tx, b.ID, ""); err != nil {
		return err
	}
	if err := s.Ledger.Release(ctx, tx, b.WorkspaceID, b.ID, 0, b.Reserved, fmt.Sprintf("release:batch:%d:delete", b.ID),
		fmt.Sprintf("batch %d deleted", b.ID)); err != nil {
		return err
	}
	return s.DB.DeleteBatch(ctx, tx, workspaceID, b.ID)
}

// DeleteProject deletes the workspace's project with every batch in it
// (as Delete does each), in one transaction.
func (s *Service) DeleteProject(ctx context.Context, workspaceID, projectID int64) error {
	return s.DB.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.DB.GetProject(ctx, tx, workspaceID, projectID); err != nil {
			return err
		}
		ids, err := s.DB.ProjectBatchIDs(ctx, tx, workspaceID, projectID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.deleteTx(ctx, tx, workspaceID, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return s.DB.DeleteProject(ctx, tx, workspaceID, projectID)
	})
}

// Review sets the review of the workspace's image id and returns it.
func (s *Service) Review(ctx context.Context, workspaceID, imageID int64, r store.Review) (store.Image, error) {
	if err := s.DB.SetImageReview(ctx, s.DB.Writer(), workspaceID, imageID, r); err != nil {
		return store.Image{}, err
	}
	return s.DB.GetImage(ctx, s.DB.Writer(), workspaceID, imageID)
}

// Settle gives batch id its final status once none of its items can
// change any more, and releases what is left of its reservation (nothing,
// when every image was charged or released). It implements
// generate.Settler: the image worker calls it after the transaction that
// finished a batch's last items has committed. It does nothing for a batch
// that is not done, or gone; calling it twice is harmless.
func (s *Service) Settle(ctx context.Context, id int64) error {
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.DB.LockBatch(ctx, tx, id); err != nil {
			return err
		}
		return s.settleTx(ctx, tx, id)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}

// settleTx is Settle inside a transaction that holds the batch's lock.
func (s *Service) settleTx(ctx context.Context, tx *sql.Tx, id int64) error {
	b, err := s.DB.GetBatchByID(ctx, tx, id)
	if err != nil {
		return err
	}
	if b.Submitting || b.SucceededCount+b.FailedCount+b.CanceledCount < b.TotalCount {
		return nil
	}
	// The counters say everything is done; the items have the last word.
	// This reads the whole batch once, when it ends.
	counts, err := s.DB.CountBatchItems(ctx, tx, b.WorkspaceID, b.ID)
	if err != nil {
		return err
	}
	if counts[store.ItemPending]+counts[store.ItemRunning] > 0 {
		return nil
	}
	if counts[store.ItemSucceeded] != b.SucceededCount || counts[store.ItemFailed] != b.FailedCount ||
		counts[store.ItemCanceled] != b.CanceledCount {
		s.logger().ErrorContext(ctx, "batch counters differ from its items; recounting", "batch_id", b.ID,
			"succeeded", b.SucceededCount, "failed", b.FailedCount, "canceled", b.CanceledCount, "counts", counts)
		if err := s.DB.RecountBatch(ctx, tx, b.ID); err != nil {
			return err
		}
	}
	if !b.Status.Final() {
		if err := s.DB.SetBatchStatus(ctx, tx, b.ID, FinalStatus(counts)); err != nil {
			return err
		}
	}
	if b.Reserved > 0 {
		// Every image charges or releases its own share, so nothing should
		// be left; should something be, the workspace gets it back.
		s.logger().WarnContext(ctx, "a finished batch still held credits; releasing them", "batch_id", b.ID, "reserved", b.Reserved)
		if err := s.Ledger.Release(ctx, tx, b.WorkspaceID, b.ID, 0, b.Reserved,
			fmt.Sprintf("release:batch:%d:settle:%d", b.ID, s.now().UnixNano()), fmt.Sprintf("batch %d finished", b.ID)); err != nil {
			return err
		}
		return s.DB.AddBatchCounts(ctx, tx, store.BatchDelta{BatchID: b.ID, Reserved: -b.Reserved})
	}
	return nil
}

// FinalStatus is the status of a batch none of whose items can change any
// more: succeeded when every item succeeded, partial when some did, failed
// when none did and some failed, canceled otherwise.
func FinalStatus(counts map[store.ItemStatus]int64) store.BatchStatus {
	ok, failed, canceled := counts[store.ItemSucceeded], counts[store.ItemFailed], counts[store.ItemCanceled]
	switch {
	case failed == 0 && canceled == 0:
		return store.BatchSucceeded
	case ok > 0:
		return store.BatchPartial
	case failed > 0:
		return store.BatchFailed
	}
	return store.BatchCanceled
}
