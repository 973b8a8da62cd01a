package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// LockBatch holds batch id's row lock until the caller's transaction ends.
// Workers take it before they change one of the batch's items, so that
// their RecountBatch calls run one after the other: on PostgreSQL, under
// READ COMMITTED, two concurrent recounts each miss the other's item and
// the last one to commit writes a count that is one short. SQLite
// transactions already take the database's write lock at BEGIN, so there it
// only checks that the batch exists. Returns ErrNotFound for an unknown id.
//
// The lock is FOR NO KEY UPDATE, not FOR UPDATE: it serializes the same
// way, but unlike FOR UPDATE it does not block the foreign-key checks of
// rows inserted meanwhile for the batch (items, images, attempts, events),
// which take FOR KEY SHARE on it. See also ShareLockBatch.
func (db *DB) LockBatch(ctx context.Context, q Querier, id int64) error {
	query := `SELECT id FROM batches WHERE id = ?`
	if db.dialect == Postgres {
		query += ` FOR NO KEY UPDATE`
	}
	var got int64
	err := q.QueryRowContext(ctx, db.q(query), id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lock batch %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("lock batch %d: %w", id, err)
	}
	return nil
}
