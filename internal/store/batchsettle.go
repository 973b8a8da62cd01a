package store

import (
	"context"
	"fmt"
)

// This file holds the batch queries of the image worker's hot path. They
// exist so that a worker changes its item without writing, or waiting for,
// the batch's row on every image (see generate.ImageWorker): on PostgreSQL
// 32 workers that each took the batch's row lock for a transaction, commit
// included, ran one after the other at about 20 images a second.

// ShareLockBatch takes a shared lock on batch id's row until the caller's
// transaction ends. Workers take it before they move one of the batch's
// items to a final status: any number of workers hold it at once, but a
// batch action (cancel, pause, retry) that updates the batch row waits for
// them, and they for it, so the action's recount cannot miss an item that
// a worker finished in the meantime. SQLite transactions already run one at
// a time (the write lock is taken at BEGIN), so there it does nothing.
func (db *DB) ShareLockBatch(ctx context.Context, q Querier, id int64) error {
	if db.dialect != Postgres {
		return nil
	}
	var got int64
	if err := q.QueryRowContext(ctx, db.q(shareLockBatchSQL), id).Scan(&got); err != nil {
		return fmt.Errorf("share-lock batch %d: %w", id, notFound(err))
	}
	return nil
}

const shareLockBatchSQL = `SELECT id FROM batches WHERE id = ? FOR SHARE`

// ShareLockBatches queues ShareLockBatch for each of ids, which must be
// in ascending order so that two transactions cannot take the same locks
// in opposite orders.
func (db *DB) ShareLockBatches(p *Pipeline, ids []int64) {
	if db.dialect != Postgres {
		return
	}
	for _, id := range ids {
		p.Queue(shareLockBatchSQL, []any{id}, func(r Rows) error {
			if !r.Next() {
				if err := r.Err(); err != nil {
					return err
				}
				return fmt.Errorf("share-lock batch %d: %w", id, ErrNotFound)
			}
			return nil
		})
	}
}

// StartBatch moves batch id from queued to running, stamping started_at,
// and does nothing in any other status: it is the first image job's
// "the batch has started" without a read of the batch first, and once the
// batch runs it matches no row, so it takes no lock.
//
// It is queued on p: the image workers start batches in their shared
// transaction.
func (db *DB) StartBatch(p *Pipeline, id int64) {
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
