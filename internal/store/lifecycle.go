package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// This file holds the queries behind the REST API's batch, project and
// image management: renames and deletes, per-state counts, bulk status
// moves, the image lineage, and the few reads of River's river_job table
// that let a batch's queued jobs be found from its items.

// RenameProject renames the workspace's project id. It returns ErrNotFound
// for a project of another workspace and ErrConflict when the name is taken.
func (db *DB) RenameProject(ctx context.Context, q Querier, workspaceID, id int64, name string) (Project, error) {
	p, err := scanProject(q.QueryRowContext(ctx, db.q(`UPDATE projects SET name = ?
		WHERE id = ? AND workspace_id = ? RETURNING `+projectColumns), name, id, workspaceID))
	if isUniqueViolation(err) {
		return Project{}, fmt.Errorf("rename project %d: %w", id, ErrConflict)
	}
	if err != nil {
		return Project{}, fmt.Errorf("rename project %d: %w", id, notFound(err))
	}
	return p, nil
}

// DeleteProject deletes the workspace's project id, or returns ErrNotFound.
// Its batches are not deleted by the database (their project_id becomes
// NULL); callers delete them first with DeleteBatch.
func (db *DB) DeleteProject(ctx context.Context, q Querier, workspaceID, id int64) error {
	res, err := q.ExecContext(ctx, db.q(`DELETE FROM projects WHERE id = ? AND workspace_id = ?`), id, workspaceID)
	return checkUpdated(res, err, "delete project", id)
}

// ProjectBatchIDs returns the ids of every batch in the workspace's project.
func (db *DB) ProjectBatchIDs(ctx context.Context, q Querier, workspaceID, projectID int64) ([]int64, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT id FROM batches WHERE workspace_id = ? AND project_id = ? ORDER BY id`),
		workspaceID, projectID)
	if err != nil {
		return nil, fmt.Errorf("list batches of project %d: %w", projectID, err)
	}
	return collect(rows, scanInt64, "list batches of project")
}

// DeleteBatch deletes the workspace's batch id with its items, images and
// attempts (by cascade), or returns ErrNotFound. It does not touch blobs:
// the caller reads BatchBlobKeys first and deletes the files that
// UnreferencedBlobKeys reports once the transaction has committed.
func (db *DB) DeleteBatch(ctx context.Context, q Querier, workspaceID, id int64) error {
	res, err := q.ExecContext(ctx, db.q(`DELETE FROM batches WHERE id = ? AND workspace_id = ?`), id, workspaceID)
	return checkUpdated(res, err, "delete batch", id)
}

// BatchBlobKeys returns the distinct blob keys of a batch's images.
func (db *DB) BatchBlobKeys(ctx context.Context, q Querier, batchID int64) ([]string, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT DISTINCT blob_key FROM images WHERE batch_id = ? ORDER BY blob_key`), batchID)
	if err != nil {
		return nil, fmt.Errorf("blob keys of batch %d: %w", batchID, err)
	}
	return collect(rows, scanString, "blob keys of batch")
}

// UnreferencedBlobKeys returns those of keys that no image row uses any
// more. Images are content-addressed, so two batches can share a file; only
// the keys this returns may be deleted from the blob store.
func (db *DB) UnreferencedBlobKeys(ctx context.Context, q Querier, keys []string) ([]string, error) {
	var out []string
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		rows, err := q.QueryContext(ctx, db.q(`SELECT DISTINCT blob_key FROM images WHERE blob_key IN (`+
			placeholders(len(part))+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("find referenced blobs: %w", err)
		}
		used, err := collect(rows, scanString, "find referenced blobs")
		if err != nil {
			return nil, err
		}
		inUse := make(map[string]bool, len(used))
		for _, k := range used {
			inUse[k] = true
		}
		for _, k := range part {
			if !inUse[k] {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// BatchProgress is a batch's live counts, read from its items and images.
type BatchProgress struct {
	// Counts holds the number of items in each status (missing means 0).
	Counts map[ItemStatus]int64
	// CostSpent is the sum of the batch's image costs, in credits.
	CostSpent int64
}

// GetBatchProgress counts a batch's items by status and sums the cost of
// its images.
func (db *DB) GetBatchProgress(ctx context.Context, q Querier, batchID int64) (BatchProgress, error) {
	counts, err := db.countItems(ctx, q, `batch_id = ?`, batchID)
	if err != nil {
		return BatchProgress{}, fmt.Errorf("count items of batch %d: %w", batchID, err)
	}
	p := BatchProgress{Counts: counts}
	if err := q.QueryRowContext(ctx, db.q(`SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT) FROM images WHERE batch_id = ?`),
		batchID).Scan(&p.CostSpent); err != nil {
		return p, fmt.Errorf("sum cost of batch %d: %w", batchID, err)
	}
	return p, nil
}

// ItemNameTaken reports whether a batch already has an item named name.
func (db *DB) ItemNameTaken(ctx context.Context, q Querier, batchID int64, name string) (bool, error) {
	var n int64
	if err := q.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM items WHERE batch_id = ? AND name = ?`),
		batchID, name).Scan(&n); err != nil {
		return false, fmt.Errorf("check item name: %w", err)
	}
	return n > 0, nil
}

// River job states, as River names them. An image job carries
// {"item_id": N} (generate.ImageArgs); items.job_id links an item to it.

// JobState is a River job state ("available", "running", …).
type JobState string

// The River job states that can still run.
const (
	JobAvailable JobState = "available"
	JobPending   JobState = "pending"
	JobRetryable JobState = "retryable"
	JobRunning   JobState = "running"
	JobScheduled JobState = "scheduled"
)

// WaitingJobStates are the states of a job that has not started, or waits
// to be retried: cancelling such a job stops it for good.
var WaitingJobStates = []JobState{JobAvailable, JobPending, JobRetryable, JobScheduled}

// LiveJobStates adds running to WaitingJobStates: every job that may still
// produce an image.
var LiveJobStates = []JobState{JobAvailable, JobPending, JobRetryable, JobScheduled, JobRunning}

// LineageImage is an image of a lineage with its place relative to the
// image asked about.
type LineageImage struct {
	Image
	// Relation is "ancestor", "self" or "descendant".
	Relation string
}

// ImageLineage returns the workspace's image id with its ancestors (parent,
// grandparent, …) and descendants (regenerations, their regenerations, …)
// in id order, which is creation order. It returns ErrNotFound when the
// image is not the workspace's.
func (db *DB) ImageLineage(ctx context.Context, q Querier, workspaceID, id int64) ([]LineageImage, error) {
	// UNION (not UNION ALL) also stops the walk should a cycle ever exist.
	rows, err := q.QueryContext(ctx, db.q(`WITH RECURSIVE
		up(id, parent_id) AS (
			SELECT id, parent_id FROM images WHERE id = ? AND workspace_id = ?
			UNION
			SELECT p.id, p.parent_id FROM images p JOIN up ON p.id = up.parent_id WHERE p.workspace_id = ?
		),
		down(id) AS (
			SELECT id FROM images WHERE id = ? AND workspace_id = ?
			UNION
			SELECT c.id FROM images c JOIN down ON c.parent_id = down.id WHERE c.workspace_id = ?
		)
		SELECT `+imageColumns+`, CASE WHEN id = ? THEN 'self'
			WHEN id IN (SELECT id FROM up) THEN 'ancestor' ELSE 'descendant' END
		FROM images
		WHERE workspace_id = ? AND (id IN (SELECT id FROM up) OR id IN (SELECT id FROM down))
		ORDER BY id`),
		id, workspaceID, workspaceID, id, workspaceID, workspaceID, id, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("lineage of image %d: %w", id, err)
	}
	out, err := collect(rows, func(r interface{ Scan(...any) error }) (LineageImage, error) {
		var li LineageImage
		var rel string
		im, err := scanImage(scanTail{r, &rel})
		li.Image, li.Relation = im, rel
		return li, err
	}, "lineage of image")
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lineage of image %d: %w", id, ErrNotFound)
	}
	return out, nil
}

// scanTail scans a row whose leading columns a scan function reads and
// whose last column goes into tail.
type scanTail struct {
	row  interface{ Scan(...any) error }
	tail any
}

func (s scanTail) Scan(dest ...any) error { return s.row.Scan(append(dest, s.tail)...) }

func scanInt64(r interface{ Scan(...any) error }) (int64, error) {
	var v int64
	err := r.Scan(&v)
	return v, err
}

func scanString(r interface{ Scan(...any) error }) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}

// placeholders returns "?, ?, …" with n marks (n ≥ 1).
func placeholders(n int) string { return repeatList("?", n) }

// repeatList returns n copies of item separated by ", " (n ≥ 1): the
// placeholders of a row, or the rows of a multi-row statement.
func repeatList(item string, n int) string {
	return item + strings.Repeat(", "+item, n-1)
}

// insertRows is "INSERT INTO table (columns) VALUES (?, …), … suffix" with
// rows rows of placeholders, one per column.
func insertRows(table, columns string, rows int, suffix string) string {
	row := "(" + placeholders(strings.Count(columns, ",")+1) + ")"
	return "INSERT INTO " + table + " (" + columns + ") VALUES " + repeatList(row, rows) + " " + suffix
}

// notFound maps sql.ErrNoRows onto ErrNotFound and leaves other errors.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
