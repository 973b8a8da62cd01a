package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Review is a person's verdict on an image.
type Review string

// The review states.
const (
	ReviewNone     Review = "none"
	ReviewApproved Review = "approved"
	ReviewRejected Review = "rejected"
)

// Image is a row of images: one stored output. (ItemID, Generation) is the
// identity of the job that made it: generation 1 is the item's first image,
// each regeneration of the same item takes the next number and points at
// the image it replaces through ParentID.
type Image struct {
	ID          int64
	ItemID      int64
	BatchID     int64
	WorkspaceID int64
	Generation  int64
	ParentID    int64 // 0 for an original
	BlobKey     string
	SHA256      string // hex
	Bytes       int64
	Width       int64
	Height      int64
	Format      string
	Seed        int64
	HasSeed     bool
	Provider    string
	Model       string
	RequestID   string
	Cost        int64 // credits
	LatencyMS   int64
	Review      Review
	IsPreview   bool // made by the keyless preview engine
	CreatedAt   time.Time
}

const imageColumns = `id, item_id, batch_id, workspace_id, generation, parent_id, blob_key, sha256, bytes,
	width, height, format, seed, provider, model, request_id, cost, latency_ms, review, is_preview, created_at`

// imageInsertColumns are the columns an image insert writes, in the order
// of imageInsertArgs.
const imageInsertColumns = `item_id, batch_id, workspace_id, generation, parent_id, blob_key, sha256, bytes, width,
	height, format, seed, provider, model, request_id, cost, latency_ms, review, is_preview, created_at`

// imageInsertArgs applies im's defaults in place (Generation 0 means 1, an
// empty Review means ReviewNone) and returns its imageInsertColumns values.
func imageInsertArgs(im *Image, createdAt any) []any {
	if im.Generation == 0 {
		im.Generation = 1
	}
	if im.Review == "" {
		im.Review = ReviewNone
	}
	var seed any
	if im.HasSeed {
		seed = im.Seed
	}
	return []any{im.ItemID, im.BatchID, im.WorkspaceID, im.Generation, nullInt64(im.ParentID), im.BlobKey,
		im.SHA256, im.Bytes, im.Width, im.Height, im.Format, seed, im.Provider, im.Model, im.RequestID, im.Cost,
		im.LatencyMS, string(im.Review), im.IsPreview, createdAt}
}

func scanImage(row interface{ Scan(...any) error }) (Image, error) {
	var im Image
	var seed sql.NullInt64
	err := row.Scan(&im.ID, &im.ItemID, &im.BatchID, &im.WorkspaceID, &im.Generation, intCol{&im.ParentID},
		&im.BlobKey, &im.SHA256, &im.Bytes, &im.Width, &im.Height, &im.Format, &seed, &im.Provider,
		&im.Model, &im.RequestID, &im.Cost, &im.LatencyMS, &im.Review, &im.IsPreview, timeCol{&im.CreatedAt})
	im.Seed, im.HasSeed = seed.Int64, seed.Valid
	return im, err
}

// InsertImage stores im unless an image with the same (ItemID, Generation)
// exists, and returns the stored row with created reporting which case
// happened. A job that runs twice therefore records one image; the second
// run gets the first run's row back. ID and CreatedAt are set by the store;
// Generation 0 means 1 and an empty Review means ReviewNone.
func (db *DB) InsertImage(ctx context.Context, q Querier, im Image) (out Image, created bool, err error) {
	out, err = scanImage(q.QueryRowContext(ctx, db.q(insertRows("images", imageInsertColumns, 1,
		`ON CONFLICT (item_id, generation) DO NOTHING RETURNING `+imageColumns)),
		imageInsertArgs(&im, db.timeArg(db.timestamp()))...))
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Image{}, false, fmt.Errorf("insert image for item %d: %w", im.ItemID, err)
	}
	// DO NOTHING returns no row on a conflict: fetch the one already there.
	out, err = scanImage(q.QueryRowContext(ctx, db.q(`SELECT `+imageColumns+` FROM images
		WHERE item_id = ? AND generation = ?`), im.ItemID, im.Generation))
	if err != nil {
		return Image{}, false, fmt.Errorf("insert image for item %d: existing row: %w", im.ItemID, err)
	}
	return out, false, nil
}

// GetImage returns the workspace's image id, or ErrNotFound (also when the
// image belongs to another workspace).
func (db *DB) GetImage(ctx context.Context, q Querier, workspaceID, id int64) (Image, error) {
	im, err := scanImage(q.QueryRowContext(ctx, db.q(`SELECT `+imageColumns+` FROM images
		WHERE id = ? AND workspace_id = ?`), id, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("get image %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("get image %d: %w", id, err)
	}
	return im, nil
}

// ImageFilter narrows ListImages; zero fields match everything.
type ImageFilter struct {
	BatchID int64
	ItemID  int64
	Review  Review
}

// ListImages returns a page of the workspace's images in id order (creation
// order), starting after the id `after` (0 for the first page).
func (db *DB) ListImages(ctx context.Context, q Querier, workspaceID int64, f ImageFilter, after int64, limit int) ([]Image, error) {
	where := []string{"workspace_id = ?", "id > ?"}
	args := []any{workspaceID, after}
	if f.BatchID != 0 {
		where = append(where, "batch_id = ?")
		args = append(args, f.BatchID)
	}
	if f.ItemID != 0 {
		where = append(where, "item_id = ?")
		args = append(args, f.ItemID)
	}
	if f.Review != "" {
		where = append(where, "review = ?")
		args = append(args, string(f.Review))
	}
	args = append(args, clampLimit(limit))
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+imageColumns+` FROM images
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return collect(rows, scanImage, "list images")
}

// SetImageReview records a review of the workspace's image id, or returns
// ErrNotFound.
func (db *DB) SetImageReview(ctx context.Context, q Querier, workspaceID, id int64, r Review) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE images SET review = ? WHERE id = ? AND workspace_id = ?`),
		string(r), id, workspaceID)
	return checkUpdated(res, err, "review image", id)
}
