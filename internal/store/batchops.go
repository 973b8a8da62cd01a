package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// This file holds the batch service's writes (internal/batch): the
// batch's counters, the chunked submission, and the link between items and
// their River jobs (items.job_id), through which a batch's jobs are found
// by primary key instead of by their JSON arguments.

// BatchDelta is a change to a batch's counters: every field is added to
// its column (negative to take away).
type BatchDelta struct {
	BatchID   int64
	Total     int64 // total_count
	Estimate  int64 // cost_estimate
	Succeeded int64
	Failed    int64
	Canceled  int64
	Spent     int64 // cost_spent
	Reserved  int64
}

func (d BatchDelta) zero() bool {
	return d.Total == 0 && d.Estimate == 0 && d.Succeeded == 0 && d.Failed == 0 && d.Canceled == 0 && d.Spent == 0 && d.Reserved == 0
}

// Add adds e's changes to d's (same batch).
func (d *BatchDelta) Add(e BatchDelta) {
	d.Total += e.Total
	d.Estimate += e.Estimate
	d.Succeeded += e.Succeeded
	d.Failed += e.Failed
	d.Canceled += e.Canceled
	d.Spent += e.Spent
	d.Reserved += e.Reserved
}

const batchDeltaSet = `total_count = total_count + ?, cost_estimate = cost_estimate + ?,
	succeeded_count = succeeded_count + ?, failed_count = failed_count + ?, canceled_count = canceled_count + ?,
	cost_spent = cost_spent + ?, reserved = reserved + ?`

// AddBatchCounts applies d to its batch's counters. The counters are
// changed only by the one who changed the items they count, in the same
// transaction, so that they stay exact without recounting.
func (db *DB) AddBatchCounts(ctx context.Context, q Querier, d BatchDelta) error {
	if d.zero() {
		return nil
	}
	res, err := q.ExecContext(ctx, db.q(`UPDATE batches SET `+batchDeltaSet+` WHERE id = ?`),
		d.Total, d.Estimate, d.Succeeded, d.Failed, d.Canceled, d.Spent, d.Reserved, d.BatchID)
	return checkUpdated(res, err, "count batch", d.BatchID)
}

// BatchDone reports a batch whose counters say every item is final once
// a group's changes are applied: AddBatchCountsMany's report.
type BatchDone struct {
	BatchID int64
	Done    bool
}

// AddBatchCountsMany queues AddBatchCounts for many batches in one
// statement (the image workers' group). Once the round is sent, done holds
// the batches whose counters then say every item is final, for the worker
// to settle after the commit.
func (db *DB) AddBatchCountsMany(p *Pipeline, ds []BatchDelta, done func(batchID int64)) error {
	var rows []BatchDelta
	for _, d := range ds {
		if !d.zero() {
			rows = append(rows, d)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := checkGroupSize("count batches", len(rows)); err != nil {
		return err
	}
	args := make([]any, 0, 8*len(rows))
	for _, d := range rows {
		args = append(args, d.BatchID, d.Total, d.Estimate, d.Succeeded, d.Failed, d.Canceled, d.Spent, d.Reserved)
	}
	const row = `(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT),
		CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))`
	p.Report(`UPDATE batches SET total_count = total_count + v.column2, cost_estimate = cost_estimate + v.column3,
		succeeded_count = succeeded_count + v.column4, failed_count = failed_count + v.column5,
		canceled_count = canceled_count + v.column6, cost_spent = cost_spent + v.column7, reserved = reserved + v.column8
		FROM (VALUES `+repeatList(row, len(rows))+`) AS v
		WHERE batches.id = v.column1
		RETURNING batches.id, batches.succeeded_count + batches.failed_count + batches.canceled_count >= batches.total_count`,
		args, eachRow("count batches", func(r Rows) error {
			var id int64
			var finished bool
			if err := r.Scan(&id, &finished); err != nil {
				return err
			}
			if finished && done != nil {
				done(id)
			}
			return nil
		}))
	return nil
}

// GetBatchByID returns batch id whatever its workspace, submitting or
// not. It is for the batch service and the workers, whose job arguments
// carry only ids; request handlers use GetBatch.
func (db *DB) GetBatchByID(ctx context.Context, q Querier, id int64) (Batch, error) {
	b, err := scanBatch(q.QueryRowContext(ctx, db.q(`SELECT `+batchColumns+` FROM batches WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("get batch %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %d: %w", id, err)
	}
	return b, nil
}

// FinishSubmit ends the submission of batch id: it becomes visible and
// queued with its totals and reservation. It returns ErrNotFound when the
// batch is gone or no longer submitting.
func (db *DB) FinishSubmit(ctx context.Context, q Querier, id, total, estimate, reserved int64) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE batches SET submitting = FALSE, status = ?,
		total_count = ?, cost_estimate = ?, reserved = ? WHERE id = ? AND submitting`),
		string(BatchQueued), total, estimate, reserved, id)
	return checkUpdated(res, err, "finish submitting batch", id)
}

// StaleSubmittingBatches returns the ids of batches still submitting that
// were created before before: their Create died (a crash, a lost
// connection) and left them half written.
func (db *DB) StaleSubmittingBatches(ctx context.Context, q Querier, before time.Time) ([]int64, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT id FROM batches WHERE submitting AND created_at < ? ORDER BY id`),
		db.timeArg(before))
	if err != nil {
		return nil, fmt.Errorf("find abandoned batches: %w", err)
	}
	return collect(rows, scanInt64, "find abandoned batches")
}

// DeleteBatchByID deletes batch id with its items, images and attempts
// (by cascade), whatever its workspace. It returns ErrNotFound when it is
// gone.
func (db *DB) DeleteBatchByID(ctx context.Context, q Querier, id int64) error {
	res, err := q.ExecContext(ctx, db.q(`DELETE FROM batches WHERE id = ?`), id)
	return checkUpdated(res, err, "delete batch", id)
}

// QueuedItem is an item id with the provider whose queue its job goes to.
type QueuedItem struct {
	ID       int64
	Provider string
}

func scanQueuedItem(r interface{ Scan(...any) error }) (QueuedItem, error) {
	var it QueuedItem
	err := r.Scan(&it.ID, &it.Provider)
	return it, err
}

// ItemsWithoutJob returns up to limit of batch's pending items with id
// above after that have no job that may still run: the items a
// submission, a resume or a retry queues, a chunk at a time. An item's job
// is found by primary key (items.job_id); a pause deletes the jobs without
// unlinking the items, which would be a second write of every item.
func (db *DB) ItemsWithoutJob(ctx context.Context, q Querier, batchID, after int64, limit int) ([]QueuedItem, error) {
	args := []any{batchID, string(ItemPending), after}
	for _, s := range LiveJobStates {
		args = append(args, string(s))
	}
	args = append(args, limit)
	rows, err := q.QueryContext(ctx, db.q(`SELECT id, provider FROM items
		WHERE batch_id = ? AND status = ? AND id > ?
		AND (job_id IS NULL OR NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = items.job_id
			AND j.state IN (`+placeholders(len(LiveJobStates))+`)))
		ORDER BY id LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("find unqueued items of batch %d: %w", batchID, err)
	}
	return collect(rows, scanQueuedItem, "find unqueued items of batch")
}

// ItemJob links an item to the River job that makes it.
type ItemJob struct {
	ItemID, JobID int64
}

// SetItemJobs records each item's job, one statement.
func (db *DB) SetItemJobs(ctx context.Context, q Querier, links []ItemJob) error {
	for start := 0; start < len(links); start += maxGroupRows {
		part := links[start:min(start+maxGroupRows, len(links))]
		args := make([]any, 0, 2*len(part))
		for _, l := range part {
			args = append(args, l.ItemID, l.JobID)
		}
		if _, err := q.ExecContext(ctx, db.q(`UPDATE items SET job_id = v.column2
			FROM (VALUES `+repeatList("(CAST(? AS BIGINT), CAST(? AS BIGINT))", len(part))+`) AS v
			WHERE items.id = v.column1`), args...); err != nil {
			return fmt.Errorf("link items to jobs: %w", err)
		}
	}
	return nil
}

// DropWaitingJobs deletes the River jobs of batch's items in status (any
// status when "") that have not started (or wait for a retry); a resume
// queues them again (ItemsWithoutJob finds them). A job that is running is
// left to finish: it finds its item canceled or its batch paused. It
// returns how many jobs it deleted. The jobs are found through items.job_id and
// river_job's primary key, so the work grows with the batch, whatever
// the size of the queue or the state of the planner's statistics.
func (db *DB) DropWaitingJobs(ctx context.Context, q Querier, batchID int64, status ItemStatus) (int64, error) {
	items := `SELECT job_id FROM items WHERE batch_id = ? AND job_id IS NOT NULL`
	args := []any{batchID}
	if status != "" {
		items += ` AND status = ?`
		args = append(args, string(status))
	}
	for _, s := range WaitingJobStates {
		args = append(args, string(s))
	}
	res, err := q.ExecContext(ctx, db.q(`DELETE FROM river_job WHERE id IN (`+items+`)
		AND state IN (`+placeholders(len(WaitingJobStates))+`)`), args...)
	if err != nil {
		return 0, fmt.Errorf("drop jobs of batch %d: %w", batchID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("drop jobs of batch %d: %w", batchID, err)
	}
	return n, nil
}

// LiveJobs counts the River jobs of batch's items that may still run.
func (db *DB) LiveJobs(ctx context.Context, q Querier, batchID int64) (int64, error) {
	args := []any{batchID}
	for _, s := range LiveJobStates {
		args = append(args, string(s))
	}
	var n int64
	if err := q.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM river_job
		WHERE id IN (SELECT job_id FROM items WHERE batch_id = ? AND job_id IS NOT NULL)
		AND state IN (`+placeholders(len(LiveJobStates))+`)`), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count jobs of batch %d: %w", batchID, err)
	}
	return n, nil
}

// Moved sums up the items a MoveBatchItems moved.
type Moved struct {
	Count int64
	// Estimate is the sum of their cost estimates: the credits they held
	// or will hold.
	Estimate int64
}

// MoveBatchItems moves every item of a batch whose status is from to the
// status to, clearing its error and its job link, and sums up the moved
// items. Retrying a batch's failed items and canceling its pending ones are
// such moves.
func (db *DB) MoveBatchItems(ctx context.Context, q Querier, batchID int64, from, to ItemStatus) (Moved, error) {
	update := `UPDATE items SET status = ?, error = '', error_class = '', job_id = NULL, updated_at = ?
		WHERE batch_id = ? AND status = ?`
	args := []any{string(to), db.timeArg(db.timestamp()), batchID, string(from)}
	var m Moved
	if db.dialect == Postgres {
		// The sum is taken in the statement that moves the items (a
		// separate SUM first could count an item a worker starts in
		// between); PostgreSQL sums the moved rows itself, where
		// RETURNING would ship a 100,000-item batch's rows to the client.
		err := q.QueryRowContext(ctx, db.q(`WITH moved AS (`+update+` RETURNING cost_estimate)
			SELECT COUNT(*), CAST(COALESCE(SUM(cost_estimate), 0) AS BIGINT) FROM moved`), args...).Scan(&m.Count, &m.Estimate)
		if err != nil {
			return Moved{}, fmt.Errorf("move items of batch %d from %s to %s: %w", batchID, from, to, err)
		}
		return m, nil
	}
	rows, err := q.QueryContext(ctx, db.q(update+` RETURNING cost_estimate`), args...)
	if err != nil {
		return Moved{}, fmt.Errorf("move items of batch %d from %s to %s: %w", batchID, from, to, err)
	}
	err = eachRow("move items", func(r Rows) error {
		var est int64
		if err := r.Scan(&est); err != nil {
			return err
		}
		m.Count++
		m.Estimate += est
		return nil
	})(rows)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return Moved{}, fmt.Errorf("move items of batch %d: %w", batchID, err)
	}
	return m, nil
}

// RunningItems counts batch's running items: at most as many as there are
// workers, read from the (batch_id, status) index.
func (db *DB) RunningItems(ctx context.Context, q Querier, batchID int64) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM items WHERE batch_id = ? AND status = ?`),
		batchID, string(ItemRunning)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count running items of batch %d: %w", batchID, err)
	}
	return n, nil
}

// ActiveBatchIDs returns the ids of the batches that are queued or
// running (and not still submitting), in id order.
func (db *DB) ActiveBatchIDs(ctx context.Context, q Querier) ([]int64, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT id FROM batches WHERE status IN (?, ?) AND NOT submitting ORDER BY id`),
		string(BatchQueued), string(BatchRunning))
	if err != nil {
		return nil, fmt.Errorf("find active batches: %w", err)
	}
	return collect(rows, scanInt64, "find active batches")
}
