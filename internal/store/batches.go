package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// BatchStatus is where a batch is in its life.
type BatchStatus string

// The batch statuses. Succeeded, Failed, Canceled and Partial (some images
// failed or were canceled, some succeeded) are final.
const (
	BatchQueued    BatchStatus = "queued"
	BatchRunning   BatchStatus = "running"
	BatchPaused    BatchStatus = "paused"
	BatchSucceeded BatchStatus = "succeeded"
	BatchFailed    BatchStatus = "failed"
	BatchCanceled  BatchStatus = "canceled"
	BatchPartial   BatchStatus = "partial"
)

// Final reports whether no more work will happen in a batch with status s.
func (s BatchStatus) Final() bool {
	switch s {
	case BatchSucceeded, BatchFailed, BatchCanceled, BatchPartial:
		return true
	}
	return false
}

// Batch is a row of batches: one submitted input file (or API request) and
// its totals. Costs are in credits.
type Batch struct {
	ID             int64
	WorkspaceID    int64
	ProjectID      int64 // 0 when the batch is in no project
	UserID         int64 // who submitted it; 0 when unknown or deleted
	Name           string
	Status         BatchStatus
	SourceFile     string
	Template       string          // the prompt template, when the batch came from one
	Defaults       json.RawMessage // batch-wide defaults applied to every row (a JSON object)
	NamingTemplate string
	DryRun         bool
	TotalCount     int64
	SucceededCount int64
	FailedCount    int64
	CanceledCount  int64
	CostEstimate   int64
	CostSpent      int64
	// Reserved is the credits still held for the batch: reserved, and not
	// yet charged for an image or released.
	Reserved int64
	// Submitting is true while Create is still writing the batch in
	// chunks: such a batch is not shown and nothing of it runs.
	Submitting bool
	CreatedAt  time.Time
	StartedAt  time.Time // zero until the first item runs
	FinishedAt time.Time // zero until the batch reaches a final status
}

const batchColumns = `id, workspace_id, project_id, user_id, name, status, source_file, template, defaults,
	naming_template, dry_run, total_count, succeeded_count, failed_count, canceled_count,
	cost_estimate, cost_spent, reserved, submitting, created_at, started_at, finished_at`

func scanBatch(row interface{ Scan(...any) error }) (Batch, error) {
	var b Batch
	err := row.Scan(&b.ID, &b.WorkspaceID, intCol{&b.ProjectID}, intCol{&b.UserID}, &b.Name, &b.Status,
		&b.SourceFile, &b.Template, jsonCol{&b.Defaults}, &b.NamingTemplate, &b.DryRun,
		&b.TotalCount, &b.SucceededCount, &b.FailedCount, &b.CanceledCount, &b.CostEstimate, &b.CostSpent,
		&b.Reserved, &b.Submitting, timeCol{&b.CreatedAt}, timeCol{&b.StartedAt}, timeCol{&b.FinishedAt})
	return b, err
}

// CreateBatch inserts b and returns the stored row. ID and CreatedAt are set
// by the store, an empty Status means BatchQueued, and the done counters,
// CostSpent and Reserved start at zero whatever b says.
func (db *DB) CreateBatch(ctx context.Context, q Querier, b Batch) (Batch, error) {
	if b.Status == "" {
		b.Status = BatchQueued
	}
	out, err := scanBatch(q.QueryRowContext(ctx, db.q(`INSERT INTO batches
		(workspace_id, project_id, user_id, name, status, source_file, template, defaults,
		 naming_template, dry_run, total_count, cost_estimate, submitting, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+batchColumns),
		b.WorkspaceID, nullInt64(b.ProjectID), nullInt64(b.UserID), b.Name, string(b.Status), b.SourceFile, b.Template,
		jsonArg(b.Defaults), b.NamingTemplate, b.DryRun, b.TotalCount, b.CostEstimate, b.Submitting, db.timeArg(db.timestamp())))
	if err != nil {
		return Batch{}, fmt.Errorf("create batch: %w", err)
	}
	return out, nil
}

// GetBatch returns the workspace's batch id, or ErrNotFound (also when the
// batch belongs to another workspace, or is still being submitted).
func (db *DB) GetBatch(ctx context.Context, q Querier, workspaceID, id int64) (Batch, error) {
	return db.getBatch(ctx, q, workspaceID, id, false)
}

// LockWorkspaceBatch is GetBatch inside a transaction that then holds the
// batch's lock (see LockBatch) until it ends: what every batch action
// does before it changes the batch's items.
func (db *DB) LockWorkspaceBatch(ctx context.Context, q Querier, workspaceID, id int64) (Batch, error) {
	return db.getBatch(ctx, q, workspaceID, id, true)
}

func (db *DB) getBatch(ctx context.Context, q Querier, workspaceID, id int64, lock bool) (Batch, error) {
	query := `SELECT ` + batchColumns + ` FROM batches WHERE id = ? AND workspace_id = ? AND NOT submitting`
	if lock && db.dialect == Postgres {
		query += ` FOR NO KEY UPDATE`
	}
	b, err := scanBatch(q.QueryRowContext(ctx, db.q(query), id, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("get batch %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %d: %w", id, err)
	}
	return b, nil
}

// BatchFilter narrows ListBatches; zero fields match everything.
type BatchFilter struct {
	ProjectID int64
	Status    BatchStatus
	// CreatedAfter and CreatedBefore bound created_at (exclusive); the
	// zero time leaves that side open.
	CreatedAfter  time.Time
	CreatedBefore time.Time
}

// ListBatches returns a page of the workspace's batches, newest first. after
// is the last id of the previous page (0 for the first page): the page holds
// ids below it.
func (db *DB) ListBatches(ctx context.Context, q Querier, workspaceID int64, f BatchFilter, after int64, limit int) ([]Batch, error) {
	where := []string{"workspace_id = ?", "NOT submitting"}
	args := []any{workspaceID}
	if f.ProjectID != 0 {
		where = append(where, "project_id = ?")
		args = append(args, f.ProjectID)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if !f.CreatedAfter.IsZero() {
		where = append(where, "created_at > ?")
		args = append(args, db.timeArg(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, db.timeArg(f.CreatedBefore))
	}
	if after > 0 {
		where = append(where, "id < ?")
		args = append(args, after)
	}
	args = append(args, clampLimit(limit))
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+batchColumns+` FROM batches
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return collect(rows, scanBatch, "list batches")
}

// SetBatchStatus moves batch id to status. The first move to running stamps
// started_at; a move to a final status stamps finished_at (and a move back
// out of one clears it, for a resumed batch). Returns ErrNotFound for an
// unknown id.
func (db *DB) SetBatchStatus(ctx context.Context, q Querier, id int64, status BatchStatus) error {
	now := db.timeArg(db.timestamp())
	var finished any // NULL unless final
	if status.Final() {
		finished = now
	}
	var started any // keeps started_at unless the batch starts now
	if status == BatchRunning {
		started = now
	}
	res, err := q.ExecContext(ctx, db.q(`UPDATE batches
		SET status = ?, started_at = COALESCE(started_at, ?), finished_at = ?
		WHERE id = ?`), string(status), started, finished, id)
	return checkUpdated(res, err, "set status of batch", id)
}

// RecountBatch recomputes a batch's done counters from its items and its
// spent cost from its images. Unlike incrementing, it is idempotent, so a
// job that runs twice cannot count twice.
func (db *DB) RecountBatch(ctx context.Context, q Querier, id int64) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE batches SET
		succeeded_count = (SELECT COUNT(*) FROM items WHERE batch_id = ? AND status = 'succeeded'),
		failed_count    = (SELECT COUNT(*) FROM items WHERE batch_id = ? AND status = 'failed'),
		canceled_count  = (SELECT COUNT(*) FROM items WHERE batch_id = ? AND status = 'canceled'),
		cost_spent      = (SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT) FROM images WHERE batch_id = ?)
		WHERE id = ?`), id, id, id, id, id)
	return checkUpdated(res, err, "recount batch", id)
}

// SetBatchTotals records a batch's item count and cost estimate once its
// items are written (in the same transaction that created it).
func (db *DB) SetBatchTotals(ctx context.Context, q Querier, id, total, estimate int64) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE batches SET total_count = ?, cost_estimate = ? WHERE id = ?`), total, estimate, id)
	return checkUpdated(res, err, "set batch totals", id)
}
