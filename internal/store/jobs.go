package store

import (
	"context"
	"fmt"
)

// This file reads River's river_job table as a whole, for the server's
// readiness check and the queue metrics. The reads of one batch's jobs are
// in lifecycle.go.

// JobCount is the number of River jobs in one state on one queue.
type JobCount struct {
	State JobState
	// Queue is the River queue name, e.g. "provider_openai" (see
	// batch.QueueFor).
	Queue string
	Count int64
}

func scanJobCount(r interface{ Scan(...any) error }) (JobCount, error) {
	var jc JobCount
	err := r.Scan(&jc.State, &jc.Queue, &jc.Count)
	return jc, err
}

// CountJobs counts River's jobs by state and queue, every state included
// (finished jobs stay until River's cleaner deletes them). Pairs with no
// job are absent.
func (db *DB) CountJobs(ctx context.Context, q Querier) ([]JobCount, error) {
	rows, err := q.QueryContext(ctx, `SELECT state, queue, COUNT(*) FROM river_job GROUP BY state, queue`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return collect(rows, scanJobCount, "count jobs")
}

// PingJobTable checks that River's job table exists and answers a query,
// which is what "the queue is reachable" means: River keeps its state in
// this database. It reads at most one row, however long the queue.
func (db *DB) PingJobTable(ctx context.Context, q Querier) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM river_job LIMIT 1) AS j`).Scan(&n); err != nil {
		return fmt.Errorf("ping job table: %w", err)
	}
	return nil
}
