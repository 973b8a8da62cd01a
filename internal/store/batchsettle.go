package store

import (
	"context"
	"fmt"
)

// This file holds the batch queries of the image worker's hot path, which
// touch a batch's row once per group of images, not once per image (see
// generate.ImageWorker).

// LockBatches queues LockBatch for each of ids, which must be in
// ascending order so that two transactions cannot take the same locks in
// opposite orders. The image workers' group takes the locks of every batch
// it touches before it writes any item (it changes their counters at the
// end), the order every batch action follows too (LockBatch, then items):
// a group and an action on one batch run one after the other, and never
// deadlock. SQLite transactions already run one at a time, so there it
// does nothing.
func (db *DB) LockBatches(p *Pipeline, ids []int64) {
	if db.dialect != Postgres {
		return
	}
	for _, id := range ids {
		p.Queue(`SELECT id FROM batches WHERE id = ? FOR NO KEY UPDATE`, []any{id}, func(r Rows) error {
			if !r.Next() {
				if err := r.Err(); err != nil {
					return err
				}
				return fmt.Errorf("lock batch %d: %w", id, ErrNotFound)
			}
			return nil
		})
	}
}

// StartBatch moves batch id from queued to running, stamping started_at,
// and does nothing in any other status: it is the first image job's
// "the batch has started" without a read of the batch first, and once the
// batch runs it matches no row.
//
// It is queued on p: the image workers start batches in their shared
// transaction, after they have moved items. A batch action (cancel, pause)
// takes the batch's lock before it moves items, so on PostgreSQL waiting
// for the batch's lock here could close a cycle with such an action; a
// batch whose lock is held is skipped instead (the action changes its
// status anyway, and a later start moves it if it is still queued).
func (db *DB) StartBatch(p *Pipeline, id int64) {
	if db.dialect == Postgres {
		p.Queue(`UPDATE batches SET status = ?, started_at = COALESCE(started_at, ?)
			WHERE id IN (SELECT id FROM batches WHERE id = ? AND status = ? FOR NO KEY UPDATE SKIP LOCKED)`,
			[]any{string(BatchRunning), db.timeArg(db.timestamp()), id, string(BatchQueued)}, nil)
		return
	}
	p.Queue(`UPDATE batches SET status = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND status = ?`,
		[]any{string(BatchRunning), db.timeArg(db.timestamp()), id, string(BatchQueued)}, nil)
}

// BatchHasUnfinished reports whether any item of batch id is still pending
// or running. It reads one index entry at most (items_batch_status_idx).
func (db *DB) BatchHasUnfinished(ctx context.Context, q Querier, id int64) (bool, error) {
	var n int64
	if err := q.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM (SELECT 1 FROM items
		WHERE batch_id = ? AND status IN (?, ?) LIMIT 1) AS t`), id, string(ItemPending), string(ItemRunning)).Scan(&n); err != nil {
		return false, fmt.Errorf("unfinished items of batch %d: %w", id, err)
	}
	return n > 0, nil
}
