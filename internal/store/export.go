package store

import (
	"context"
	"fmt"
	"time"
)

// This file holds the image read behind a batch export
// (GET /api/v1/batches/{id}/export.zip), which walks a batch's items a page
// at a time and needs each item's newest image alongside.

// NewestItemImages returns the newest image of each item of the workspace's
// batch whose id is in (afterItemID, lastItemID], keyed by item id. Newest
// means the highest generation (then the highest id). A non-empty review
// considers only images with that review, so ReviewApproved gives each
// item's newest approved image. Items without such an image are absent, as
// is everything of another workspace's batch.
func (db *DB) NewestItemImages(ctx context.Context, q Querier, workspaceID, batchID, afterItemID, lastItemID int64, review Review) (map[int64]Image, error) {
	query := `SELECT ` + imageColumns + ` FROM images
		WHERE batch_id = ? AND workspace_id = ? AND item_id > ? AND item_id <= ?`
	args := []any{batchID, workspaceID, afterItemID, lastItemID}
	if review != "" {
		query += ` AND review = ?`
		args = append(args, string(review))
	}
	// Oldest first, so that the newest of an item overwrites the others
	// below.
	query += ` ORDER BY item_id, generation, id`
	rows, err := q.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("newest images of batch %d: %w", batchID, err)
	}
	images, err := collect(rows, scanImage, "newest images of batch")
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Image, len(images))
	for _, im := range images {
		out[im.ItemID] = im
	}
	return out, nil
}

// AttemptStart is when the last provider call for one generation of an
// item began.
type AttemptStart struct {
	Generation int64
	StartedAt  time.Time
}

// LastAttemptStarts returns, for each item of the workspace's batch whose id
// is in (afterItemID, lastItemID], when the last attempt (the highest job
// attempt) of each of its generations started, lowest generation first.
// The export's manifests take started_at from it, as the CLI's do from the
// call that made the image. Items without attempts are absent.
func (db *DB) LastAttemptStarts(ctx context.Context, q Querier, workspaceID, batchID, afterItemID, lastItemID int64) (map[int64][]AttemptStart, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT a.item_id, a.generation, a.started_at
		FROM attempts a JOIN items i ON i.id = a.item_id
		WHERE i.batch_id = ? AND a.workspace_id = ? AND a.item_id > ? AND a.item_id <= ?
		  AND a.job_attempt = (SELECT MAX(l.job_attempt) FROM attempts l
		                       WHERE l.item_id = a.item_id AND l.generation = a.generation)
		ORDER BY a.item_id, a.generation`), batchID, workspaceID, afterItemID, lastItemID)
	if err != nil {
		return nil, fmt.Errorf("attempt starts of batch %d: %w", batchID, err)
	}
	defer rows.Close()
	out := map[int64][]AttemptStart{}
	for rows.Next() {
		var itemID int64
		var s AttemptStart
		if err := rows.Scan(&itemID, &s.Generation, timeCol{&s.StartedAt}); err != nil {
			return nil, fmt.Errorf("attempt starts of batch %d: %w", batchID, err)
		}
		out[itemID] = append(out[itemID], s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attempt starts of batch %d: %w", batchID, err)
	}
	return out, nil
}
