package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"bulkgen/internal/store"
)

// AbandonAfter is how long a batch may stay submitting before Repair
// takes it for the leftover of a Create that died: far longer than
// writing the largest batch takes.
const AbandonAfter = 15 * time.Minute

// Repair finishes what a process that died in the middle of Create left
// behind: it deletes the batches still submitting after AbandonAfter
// (nothing of them ran, nothing was reserved), and queues the jobs that
// active batches' pending items lack. The server runs it at start. Queuing
// takes each batch's lock and reads which items lack a job inside it, so
// Repair running beside a Create, or on two nodes at once, never queues an
// item twice.
func (s *Service) Repair(ctx context.Context) error {
	stale, err := s.DB.StaleSubmittingBatches(ctx, s.DB.Reader(), s.now().Add(-AbandonAfter))
	if err != nil {
		return err
	}
	for _, id := range stale {
		err := s.DB.Tx(ctx, func(tx *sql.Tx) error { return s.DB.DeleteBatchByID(ctx, tx, id) })
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("remove abandoned batch %d: %w", id, err)
		}
		s.logger().WarnContext(ctx, "removed a batch whose creation was interrupted", "batch_id", id)
	}
	active, err := s.DB.ActiveBatchIDs(ctx, s.DB.Reader())
	if err != nil {
		return err
	}
	for _, id := range active {
		if err := s.enqueuePending(ctx, id); err != nil {
			return fmt.Errorf("queue the jobs of batch %d: %w", id, err)
		}
	}
	return nil
}
