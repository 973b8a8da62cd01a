package store

import (
	"context"
	"fmt"
	"time"
)

// AttemptStatus is the outcome of one provider call.
type AttemptStatus string

// The attempt statuses.
const (
	AttemptRunning   AttemptStatus = "running"
	AttemptSucceeded AttemptStatus = "succeeded"
	AttemptFailed    AttemptStatus = "failed"
	AttemptSnoozed   AttemptStatus = "snoozed" // rate limited; retried later without using an attempt
	AttemptCanceled  AttemptStatus = "canceled"
)

// Attempt is a row of attempts: one provider call for an item. (ItemID,
// Generation, JobAttempt) is its identity, JobAttempt being River's attempt
// number, so recording the same call twice updates one row.
type Attempt struct {
	ID          int64
	ItemID      int64
	WorkspaceID int64
	Generation  int64 // as in Image; 0 means 1
	JobAttempt  int64
	Status      AttemptStatus
	ErrorClass  string
	Error       string
	LatencyMS   int64
	RequestID   string
	StartedAt   time.Time // zero means now
	FinishedAt  time.Time // zero while running
}

const attemptColumns = `id, item_id, workspace_id, generation, job_attempt, status, error_class, error,
	latency_ms, request_id, started_at, finished_at`

func scanAttempt(row interface{ Scan(...any) error }) (Attempt, error) {
	var a Attempt
	err := row.Scan(&a.ID, &a.ItemID, &a.WorkspaceID, &a.Generation, &a.JobAttempt, &a.Status, &a.ErrorClass,
		&a.Error, &a.LatencyMS, &a.RequestID, timeCol{&a.StartedAt}, timeCol{&a.FinishedAt})
	return a, err
}

// RecordAttempt inserts a, or updates the row with the same identity (a
// call first recorded as running and then finished, or a job that ran
// twice), and returns the stored row. started_at keeps its first value.
func (db *DB) RecordAttempt(ctx context.Context, q Querier, a Attempt) (Attempt, error) {
	args := db.attemptArgs(&a, db.timestamp())
	out, err := scanAttempt(q.QueryRowContext(ctx, db.q(insertRows("attempts", attemptInsertColumns, 1,
		attemptUpsert+` RETURNING `+attemptColumns)), args...))
	if err != nil {
		return Attempt{}, fmt.Errorf("record attempt %d of item %d: %w", a.JobAttempt, a.ItemID, err)
	}
	return out, nil
}

// attemptInsertColumns are the columns an attempt insert writes, in the
// order of attemptArgs; attemptUpsert makes the insert of an attempt that
// exists (same item, generation and job attempt) update it, keeping its
// first started_at.
const (
	attemptInsertColumns = `item_id, workspace_id, generation, job_attempt, status, error_class, error, latency_ms,
		request_id, started_at, finished_at`
	attemptUpsert = `ON CONFLICT (item_id, generation, job_attempt) DO UPDATE SET
		status = excluded.status, error_class = excluded.error_class, error = excluded.error,
		latency_ms = excluded.latency_ms, request_id = excluded.request_id, finished_at = excluded.finished_at`
)

// attemptArgs applies a's defaults in place (Generation 0 means 1, a zero
// StartedAt means now) and returns its attemptInsertColumns values.
func (db *DB) attemptArgs(a *Attempt, now time.Time) []any {
	if a.Generation == 0 {
		a.Generation = 1
	}
	if a.StartedAt.IsZero() {
		a.StartedAt = now
	}
	return []any{a.ItemID, a.WorkspaceID, a.Generation, a.JobAttempt, string(a.Status), a.ErrorClass, a.Error,
		a.LatencyMS, a.RequestID, db.timeArg(a.StartedAt), db.timeArg(a.FinishedAt)}
}

// ListAttempts returns a page of the workspace's attempts for one item in id
// order, starting after the id `after` (0 for the first page).
func (db *DB) ListAttempts(ctx context.Context, q Querier, workspaceID, itemID, after int64, limit int) ([]Attempt, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+attemptColumns+` FROM attempts
		WHERE workspace_id = ? AND item_id = ? AND id > ? ORDER BY id LIMIT ?`),
		workspaceID, itemID, after, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return collect(rows, scanAttempt, "list attempts")
}
