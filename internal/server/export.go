package server

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"bulkgen/internal/blob"
	"bulkgen/internal/export"
	"bulkgen/internal/generate"
	"bulkgen/internal/manifest"
	"bulkgen/internal/store"
)

// The export filters of GET /api/v1/batches/{id}/export.zip.
const (
	exportAll       = "all"       // every item in the manifests, every image made
	exportSucceeded = "succeeded" // succeeded items and their images
	exportApproved  = "approved"  // items whose image was approved, and that image
)

// exportPage is how many items one database read covers; it bounds the
// memory an export holds at once.
const exportPage = 500

// The manifests' entry names; image names never take them.
const (
	manifestCSV   = "manifest.csv"
	manifestJSONL = "manifest.jsonl"
)

// handleBatchExport handles GET /api/v1/batches/{id}/export.zip: the
// batch's images under their item names, then manifest.csv and
// manifest.jsonl, as a ZIP streamed straight into the response.
//
// ?filter=all (default) exports every item (failed ones appear in the
// manifests only), succeeded only the succeeded items, approved only items
// whose image was approved. Each item contributes its newest image (for
// approved: its newest approved one).
//
// The archive is read from one read-only snapshot of the database, so the
// three passes it makes (images, then each manifest) agree even while the
// batch is still running. Once the first byte is sent the status cannot
// change: a failure then aborts the connection, leaving a truncated archive
// that no unzip tool mistakes for a whole one.
func (s *Server) handleBatchExport(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("filter")
	switch filter {
	case "":
		filter = exportAll
	case exportAll, exportSucceeded, exportApproved:
	default:
		return &Error{Status: http.StatusBadRequest, Code: "invalid_parameter",
			Message: fmt.Sprintf("filter must be all, succeeded or approved, not %q", filter), Details: map[string]string{"field": "filter"}}
	}
	if s.ext.Blobs == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "image storage is not configured on this server"}
	}

	tx, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	b, err := s.db.GetBatch(ctx, tx, caller(r).WorkspaceID, id)
	if err != nil {
		return err
	}

	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="batch-%d-%s.zip"`, b.ID, filter))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := s.writeExport(ctx, w, tx, b, filter); err != nil {
		s.logger.ErrorContext(ctx, "export failed", "request_id", requestID(ctx), "batch_id", b.ID, "err", err)
		panic(http.ErrAbortHandler) // see the doc comment: the client must not get a valid-looking archive
	}
	return nil
}

// snapshot begins a read-only transaction whose reads all see one state of
// the database: REPEATABLE READ on PostgreSQL; on SQLite any read
// transaction in WAL mode keeps the snapshot of its first read.
func (s *Server) snapshot(ctx context.Context) (*sql.Tx, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.db.Dialect() == store.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.Reader().BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("begin export snapshot: %w", err)
	}
	return tx, nil
}

// writeExport writes the archive of batch b to w, reading through q.
func (s *Server) writeExport(ctx context.Context, w io.Writer, q store.Querier, b store.Batch, filter string) error {
	z := export.NewZip(w)

	// Pass 1: the images, stored.
	names := export.NewNamer(manifestCSV, manifestJSONL)
	err := s.exportEntries(ctx, q, b, filter, false, func(it *store.Item, im *store.Image, _ *time.Time) error {
		if im == nil {
			return nil
		}
		name := names.Name(it.Name, generate.Extension(im.Format))
		obj, err := s.ext.Blobs.Open(ctx, im.BlobKey)
		if errors.Is(err, blob.ErrNotFound) {
			// A lost file should not make the rest of the batch impossible
			// to download; the manifests still describe it.
			s.logger.WarnContext(ctx, "export: image file missing", "batch_id", b.ID, "image_id", im.ID, "blob_key", im.BlobKey)
			return nil
		}
		if err != nil {
			return fmt.Errorf("open image %d: %w", im.ID, err)
		}
		defer obj.Close()
		_, err = z.Store(name, it.UpdatedAt, obj)
		return err
	})
	if err != nil {
		return err
	}

	// Passes 2 and 3: the manifests, one record per item, in the same
	// order and with the same names as pass 1.
	now := s.now()
	cw, err := z.Deflate(manifestCSV, now)
	if err != nil {
		return err
	}
	csvw, err := manifest.NewCSVWriter(cw)
	if err != nil {
		return err
	}
	if err := s.exportRecords(ctx, q, b, filter, csvw.Write); err != nil {
		return err
	}
	if err := csvw.Flush(); err != nil {
		return err
	}
	jw, err := z.Deflate(manifestJSONL, now)
	if err != nil {
		return err
	}
	if err := s.exportRecords(ctx, q, b, filter, manifest.NewJSONLWriter(jw).Write); err != nil {
		return err
	}
	return z.Close()
}

// exportRecords calls write with the manifest record of every exported
// item.
func (s *Server) exportRecords(ctx context.Context, q store.Querier, b store.Batch, filter string, write func(*manifest.Record) error) error {
	names := export.NewNamer(manifestCSV, manifestJSONL)
	var rec manifest.Record
	return s.exportEntries(ctx, q, b, filter, true, func(it *store.Item, im *store.Image, started *time.Time) error {
		fillRecord(&rec, b, it, im, started)
		if im != nil {
			rec.ImageFile = names.Name(it.Name, generate.Extension(im.Format))
		}
		return write(&rec)
	})
}

// fillRecord overwrites rec with the manifest record of item it and its
// exported image im (nil when there is none); started is when the provider
// call behind the image (or the item's last try) began, nil if none did.
func fillRecord(rec *manifest.Record, b store.Batch, it *store.Item, im *store.Image, started *time.Time) {
	*rec = manifest.Record{
		SourceFile:     b.SourceFile,
		SourceLine:     int(it.SourceLine),
		Index:          int(it.Index),
		Status:         manifestStatus(it.Status),
		Error:          it.Error,
		ErrorClass:     it.ErrorClass,
		Prompt:         it.Prompt,
		NegativePrompt: it.NegativePrompt,
		Model:          it.Model,
		Provider:       it.Provider,
		Width:          int(it.Width),
		Height:         int(it.Height),
		AspectRatio:    it.AspectRatio,
		Quality:        it.Quality,
		Style:          it.Style,
		Format:         it.Format,
		Seed:           it.Seed,
		Attempts:       int(it.Attempts),
		StartedAt:      started,
	}
	if len(it.Vars) > 0 && string(it.Vars) != "{}" {
		_ = json.Unmarshal(it.Vars, &rec.Vars) // a malformed value only loses the vars column
	}
	switch it.Status {
	case store.ItemSucceeded, store.ItemFailed, store.ItemCanceled:
		t := it.UpdatedAt
		rec.FinishedAt = &t
	}
	if im != nil {
		rec.Width, rec.Height = int(im.Width), int(im.Height)
		rec.Format = im.Format
		rec.Provider, rec.Model = im.Provider, cmp.Or(im.Model, it.Model)
		rec.Bytes, rec.SHA256 = im.Bytes, im.SHA256
		rec.Cost, rec.LatencyMS = im.Cost, im.LatencyMS
		rec.RequestID, rec.Preview = im.RequestID, im.IsPreview
	}
}

// manifestStatus maps an item status onto the manifest's vocabulary.
func manifestStatus(st store.ItemStatus) string {
	switch st {
	case store.ItemSucceeded:
		return manifest.StatusSucceeded
	case store.ItemFailed:
		return manifest.StatusFailed
	case store.ItemCanceled:
		return manifest.StatusSkipped
	}
	return manifest.StatusPending
}

// exportEntries calls fn for every item of b that filter selects, in id
// order, with the item's exported image (nil when it has none), reading
// exportPage items and their images at a time. With starts, fn also gets
// when the last attempt behind the image began (for an item without an
// image, its newest generation's last attempt); otherwise nil.
func (s *Server) exportEntries(ctx context.Context, q store.Querier, b store.Batch, filter string, starts bool,
	fn func(it *store.Item, im *store.Image, started *time.Time) error) error {
	f := store.ItemFilter{BatchID: b.ID}
	if filter == exportSucceeded {
		f.Status = store.ItemSucceeded
	}
	var after int64
	for {
		items, err := s.db.ListItems(ctx, q, b.WorkspaceID, f, after, exportPage)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		last := items[len(items)-1].ID
		var review store.Review
		if filter == exportApproved {
			review = store.ReviewApproved
		}
		images, err := s.db.NewestItemImages(ctx, q, b.WorkspaceID, b.ID, after, last, review)
		if err != nil {
			return err
		}
		var started map[int64][]store.AttemptStart
		if starts {
			if started, err = s.db.LastAttemptStarts(ctx, q, b.WorkspaceID, b.ID, after, last); err != nil {
				return err
			}
		}
		for i := range items {
			var im *store.Image
			if found, ok := images[items[i].ID]; ok {
				im = &found
			} else if filter == exportApproved {
				continue
			}
			if err := fn(&items[i], im, startOf(started[items[i].ID], im)); err != nil {
				return err
			}
		}
		if len(items) < exportPage {
			return nil
		}
		after = last
	}
}

// startOf picks from an item's attempt starts (lowest generation first) the
// one of image im's generation, or the newest generation's when im is nil.
func startOf(starts []store.AttemptStart, im *store.Image) *time.Time {
	if len(starts) == 0 {
		return nil
	}
	if im == nil {
		t := starts[len(starts)-1].StartedAt
		return &t
	}
	gen := max(im.Generation, 1)
	for _, st := range starts {
		if st.Generation == gen {
			t := st.StartedAt
			return &t
		}
	}
	return nil
}
