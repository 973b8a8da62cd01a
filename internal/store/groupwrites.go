package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// The methods in this file are the image workers' writes in multi-row form
// (an item's start, its success as UpdateItemStatus would write it,
// InsertImage, AddEntry, RecordAttempt), for the transactions that the worker shares between many
// jobs (generate's committer): one statement for a whole group costs about
// what one row's statement costs, where one statement per row made the
// group's transaction, which runs alone, the bottleneck on PostgreSQL.
//
// Each takes at most maxGroupRows rows; the caller splits larger groups.

// maxGroupRows bounds the rows of one multi-row statement: 256 rows of the
// widest (images, 20 columns) stay far below SQLite's 32766 and
// PostgreSQL's 65535 bound parameters.
const maxGroupRows = 256

// ItemRun names one run of an item: River's attempt number of its job.
type ItemRun struct {
	ID      int64
	Attempt int64
}

// runValues renders runs as a VALUES list for "FROM (...) AS v": v.column1
// is the item id, v.column2 the attempt. The casts give PostgreSQL the
// parameters' types, which it cannot infer inside VALUES.
func runValues(runs []ItemRun) (string, []any) {
	var sb strings.Builder
	args := make([]any, 0, 2*len(runs))
	sb.WriteString("(VALUES ")
	for i, r := range runs {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(CAST(? AS BIGINT), CAST(? AS BIGINT))")
		args = append(args, r.ID, r.Attempt)
	}
	sb.WriteString(") AS v")
	return sb.String(), args
}

func checkGroupSize(what string, n int) error {
	if n > maxGroupRows {
		return fmt.Errorf("%s: %d rows, at most %d at once", what, n, maxGroupRows)
	}
	return nil
}

// StartItems moves the items of runs to running for those runs, in one
// statement, and returns the rows it started, by id: it is the image
// workers' read and start at once. An item that is gone or final, or whose
// batch is paused or canceled, is left as it is and not returned; the
// worker then reads the item and its batch to find out which. A started
// item's last error is cleared, and its attempt count only ever rises (a
// late, re-delivered run leaves it).
func (db *DB) StartItems(ctx context.Context, q Querier, runs []ItemRun) (map[int64]Item, error) {
	rows, err := db.moveRuns(ctx, q, "start items", ItemRunning, runs,
		`AND EXISTS (SELECT 1 FROM batches b WHERE b.id = items.batch_id AND b.status NOT IN (?, ?))`,
		[]any{string(BatchPaused), string(BatchCanceled)}, itemColumns)
	if err != nil || rows == nil {
		return nil, err
	}
	items, err := collect(rows, scanItem, "start items")
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Item, len(items))
	for _, it := range items {
		out[it.ID] = it
	}
	return out, nil
}

// SucceedItems moves the items of runs that are still pending or running
// to succeeded, clearing their error and raising their attempt count, and
// returns the ids it changed. An item finished meanwhile (by another run of
// its job, or a cancel) is left as it is.
func (db *DB) SucceedItems(ctx context.Context, q Querier, runs []ItemRun) (map[int64]bool, error) {
	rows, err := db.moveRuns(ctx, q, "succeed items", ItemSucceeded, runs, "", nil, "items.id")
	if err != nil || rows == nil {
		return nil, err
	}
	ids, err := collect(rows, scanInt64, "succeed items")
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// moveRuns moves the still pending or running items of runs to status in
// one UPDATE, clearing their error and raising each one's attempt count to
// its run's, where the item also matches the extra condition where (with
// its arguments), and returns the rows' returning columns. It returns nil
// rows for no runs.
func (db *DB) moveRuns(ctx context.Context, q Querier, what string, status ItemStatus, runs []ItemRun,
	where string, whereArgs []any, returning string) (*sql.Rows, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	if err := checkGroupSize(what, len(runs)); err != nil {
		return nil, err
	}
	values, vargs := runValues(runs)
	args := append([]any{string(status), db.timeArg(db.timestamp())}, vargs...)
	args = append(append(args, string(ItemPending), string(ItemRunning)), whereArgs...)
	rows, err := q.QueryContext(ctx, db.q(`UPDATE items SET status = ?, error = '', error_class = '',
		attempts = CASE WHEN v.column2 > items.attempts THEN v.column2 ELSE items.attempts END, updated_at = ?
		FROM `+values+`
		WHERE items.id = v.column1 AND items.status IN (?, ?) `+where+`
		RETURNING `+returning), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return rows, nil
}

// ImageRef is where InsertImages put one image: the stored row's id, and
// whether this call created it.
type ImageRef struct {
	ID      int64
	Created bool
}

// InsertImages is InsertImage for many images in one statement: it returns,
// for each of ims in order, the id of the image stored for its (ItemID,
// Generation), which an earlier run may have created.
func (db *DB) InsertImages(ctx context.Context, q Querier, ims []Image) ([]ImageRef, error) {
	if len(ims) == 0 {
		return nil, nil
	}
	if err := checkGroupSize("insert images", len(ims)); err != nil {
		return nil, err
	}
	type key struct{ item, gen int64 }
	args := make([]any, 0, 20*len(ims))
	now := db.timeArg(db.timestamp())
	for i := range ims {
		args = append(args, imageInsertArgs(&ims[i], now)...)
	}
	query := insertRows("images", imageInsertColumns, len(ims),
		`ON CONFLICT (item_id, generation) DO NOTHING RETURNING id, item_id, generation`)
	rows, err := q.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("insert images: %w", err)
	}
	type idRow struct {
		id int64
		k  key
	}
	got, err := collect(rows, func(r interface{ Scan(...any) error }) (idRow, error) {
		var x idRow
		err := r.Scan(&x.id, &x.k.item, &x.k.gen)
		return x, err
	}, "insert images")
	if err != nil {
		return nil, err
	}
	created := make(map[key]int64, len(got))
	for _, x := range got {
		created[x.k] = x.id
	}
	out := make([]ImageRef, len(ims))
	for i, im := range ims {
		k := key{im.ItemID, im.Generation}
		if id, ok := created[k]; ok {
			out[i] = ImageRef{ID: id, Created: true}
			delete(created, k) // a second row with the same identity created nothing
			continue
		}
		// Rare: a run that was recorded before this one.
		var id int64
		if err := q.QueryRowContext(ctx, db.q(`SELECT id FROM images WHERE item_id = ? AND generation = ?`),
			im.ItemID, im.Generation).Scan(&id); err != nil {
			return nil, fmt.Errorf("insert images: existing image of item %d: %w", im.ItemID, notFound(err))
		}
		out[i] = ImageRef{ID: id}
	}
	return out, nil
}

// AddEntries is AddEntry for many entries in one statement, for entries
// whose idempotency keys the caller derives from their identity (a
// charge per item and generation): an entry whose key exists is skipped
// without comparing it, unlike AddEntry.
func (db *DB) AddEntries(ctx context.Context, q Querier, es []LedgerEntry) error {
	if len(es) == 0 {
		return nil
	}
	if err := checkGroupSize("add ledger entries", len(es)); err != nil {
		return err
	}
	args := make([]any, 0, 10*len(es))
	now := db.timeArg(db.timestamp())
	for i, e := range es {
		if e.IdemKey == "" {
			return fmt.Errorf("add ledger entries: entry %d has no idempotency key", i)
		}
		args = append(args, ledgerArgs(e, now)...)
	}
	query := insertRows("ledger_entries", ledgerInsertColumns, len(es), `ON CONFLICT (idem_key) DO NOTHING`)
	if _, err := q.ExecContext(ctx, db.q(query), args...); err != nil {
		return fmt.Errorf("add ledger entries: %w", err)
	}
	return nil
}

// RecordAttempts is RecordAttempt for many attempts in one statement. Two
// attempts with the same identity in one call keep the later one, since
// PostgreSQL refuses to update a row twice in one statement.
func (db *DB) RecordAttempts(ctx context.Context, q Querier, as []Attempt) error {
	if len(as) == 0 {
		return nil
	}
	if err := checkGroupSize("record attempts", len(as)); err != nil {
		return err
	}
	type key struct{ item, gen, attempt int64 }
	last := make(map[key]int, len(as))
	for i := range as {
		if as[i].Generation == 0 {
			as[i].Generation = 1
		}
		last[key{as[i].ItemID, as[i].Generation, as[i].JobAttempt}] = i
	}
	args := make([]any, 0, 11*len(as))
	now := db.timestamp()
	n := 0
	for i := range as {
		if last[key{as[i].ItemID, as[i].Generation, as[i].JobAttempt}] != i {
			continue
		}
		n++
		a := as[i] // the caller's StartedAt stays as given
		args = append(args, db.attemptArgs(&a, now)...)
	}
	query := insertRows("attempts", attemptInsertColumns, n, attemptUpsert)
	if _, err := q.ExecContext(ctx, db.q(query), args...); err != nil {
		return fmt.Errorf("record attempts: %w", err)
	}
	return nil
}
