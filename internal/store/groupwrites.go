package store

import "fmt"

// The methods in this file are the image workers' writes in multi-row form
// (an item's start, its success as UpdateItemStatus would write it,
// InsertImage, AddEntry, RecordAttempt), queued on the Pipeline of the
// transaction that the worker shares between many jobs (generate's
// committer): one statement for a whole group costs about what one row's
// statement costs, where one statement per row made the group's
// transaction, which runs alone, the bottleneck on PostgreSQL.
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
	args := make([]any, 0, 2*len(runs))
	for _, r := range runs {
		args = append(args, r.ID, r.Attempt)
	}
	return "(VALUES " + repeatList("(CAST(? AS BIGINT), CAST(? AS BIGINT))", len(runs)) + ") AS v", args
}

func checkGroupSize(what string, n int) error {
	if n > maxGroupRows {
		return fmt.Errorf("%s: %d rows, at most %d at once", what, n, maxGroupRows)
	}
	return nil
}

// StartItems queues the move of runs' items to running for those runs,
// one statement: it is the image workers' read and start at once. Once
// the round is sent, started holds the rows it started, by id. An item
// that is gone or final, or whose batch is paused or canceled, is left as
// it is and not added; the worker then reads the item and its batch to
// find out which. A started item's last error is cleared, and its attempt
// count only ever rises (a late, re-delivered run leaves it).
func (db *DB) StartItems(p *Pipeline, runs []ItemRun, started map[int64]Item) error {
	return db.moveRuns(p, "start items", ItemRunning, runs,
		`AND EXISTS (SELECT 1 FROM batches b WHERE b.id = items.batch_id AND b.status NOT IN (?, ?))`,
		[]any{string(BatchPaused), string(BatchCanceled)}, itemColumns,
		func(r Rows) error {
			it, err := scanItem(r)
			started[it.ID] = it
			return err
		})
}

// SucceedItems queues the move of runs' items that are still pending or
// running to succeeded, clearing their error and raising their attempt
// count; once the round is sent, changed holds the ids it moved. An item
// finished meanwhile (by another run of its job, or a cancel) is left as
// it is.
func (db *DB) SucceedItems(p *Pipeline, runs []ItemRun, changed map[int64]bool) error {
	return db.moveRuns(p, "succeed items", ItemSucceeded, runs, "", nil, "items.id",
		func(r Rows) error {
			id, err := scanInt64(r)
			changed[id] = true
			return err
		})
}

// moveRuns queues the move of runs' still pending or running items to
// status in one UPDATE, clearing their error and raising each one's
// attempt count to its run's, where the item also matches the extra
// condition where (with its arguments); scan reads each returned row.
func (db *DB) moveRuns(p *Pipeline, what string, status ItemStatus, runs []ItemRun,
	where string, whereArgs []any, returning string, scan func(Rows) error) error {
	if len(runs) == 0 {
		return nil
	}
	if err := checkGroupSize(what, len(runs)); err != nil {
		return err
	}
	values, vargs := runValues(runs)
	args := append([]any{string(status), db.timeArg(db.timestamp())}, vargs...)
	args = append(append(args, string(ItemPending), string(ItemRunning)), whereArgs...)
	p.Queue(`UPDATE items SET status = ?, error = '', error_class = '',
		attempts = CASE WHEN v.column2 > items.attempts THEN v.column2 ELSE items.attempts END, updated_at = ?
		FROM `+values+`
		WHERE items.id = v.column1 AND items.status IN (?, ?) `+where+`
		RETURNING `+returning, args, eachRow(what, scan))
	return nil
}

// eachRow makes a reader that calls scan for every row, naming what in
// its errors.
func eachRow(what string, scan func(Rows) error) func(Rows) error {
	return func(r Rows) error {
		for r.Next() {
			if err := scan(r); err != nil {
				return fmt.Errorf("%s: scan: %w", what, err)
			}
		}
		return nil
	}
}

// ImageRef is where InsertImages put one image: the stored row's id, and
// whether this call created it.
type ImageRef struct {
	ID      int64
	Created bool
}

// InsertImages queues the insert of ims, one statement, skipping an image
// whose (ItemID, Generation) is stored already. Once the round is sent,
// refs (len(ims) long) holds, for each of ims in order, the id of the row
// it created, or a zero ImageRef where the image existed (a run recorded
// before this one). The ids are reported (Pipeline.Report): the round may
// carry the commit.
func (db *DB) InsertImages(p *Pipeline, ims []Image, refs []ImageRef) error {
	if len(ims) == 0 {
		return nil
	}
	if err := checkGroupSize("insert images", len(ims)); err != nil {
		return err
	}
	if len(refs) != len(ims) {
		return fmt.Errorf("insert images: %d refs for %d images", len(refs), len(ims))
	}
	type key struct{ item, gen int64 }
	args := make([]any, 0, 20*len(ims))
	now := db.timeArg(db.timestamp())
	index := make(map[key]int, len(ims))
	for i := range ims {
		args = append(args, imageInsertArgs(&ims[i], now)...)
		k := key{ims[i].ItemID, ims[i].Generation}
		if _, dup := index[k]; !dup {
			index[k] = i // a second image with the same identity creates nothing
		}
	}
	p.Report(insertRows("images", imageInsertColumns, len(ims),
		`ON CONFLICT (item_id, generation) DO NOTHING RETURNING id, item_id, generation`), args,
		eachRow("insert images", func(r Rows) error {
			var id int64
			var k key
			if err := r.Scan(&id, &k.item, &k.gen); err != nil {
				return err
			}
			if i, ok := index[k]; ok {
				refs[i] = ImageRef{ID: id, Created: true}
			}
			return nil
		}))
	return nil
}

// ImageCharge is a ledger entry charging for the image stored for its
// ItemID and Generation; ChargeImages fills in the image's id.
type ImageCharge struct {
	Entry      LedgerEntry
	Generation int64
}

// ChargeImages queues AddEntry for charges of images, one statement,
// each entry's ImageID taken from the image stored for its item and
// generation when the statement runs: queued after InsertImages in the
// same round, it needs no round trip for the new images' ids.
func (db *DB) ChargeImages(p *Pipeline, cs []ImageCharge) error {
	if len(cs) == 0 {
		return nil
	}
	if err := checkGroupSize("charge images", len(cs)); err != nil {
		return err
	}
	args := make([]any, 0, 11*len(cs))
	now := db.timeArg(db.timestamp())
	for i, c := range cs {
		if c.Entry.IdemKey == "" {
			return fmt.Errorf("charge images: entry %d has no idempotency key", i)
		}
		a := ledgerArgs(c.Entry, now)
		args = append(append(append(args, a[:5]...), c.Entry.ItemID, c.Generation), a[6:]...)
	}
	// ledgerInsertColumns with image_id (the sixth) read from images. The
	// idempotency keys derive from the charges' identity (a charge per
	// item and generation): an entry whose key exists is skipped without
	// comparing it, unlike AddEntry.
	const row = `(?, ?, ?, ?, ?, (SELECT id FROM images WHERE item_id = ? AND generation = ?), ?, ?, ?, ?)`
	p.Queue(`INSERT INTO ledger_entries (`+ledgerInsertColumns+`) VALUES `+repeatList(row, len(cs))+
		` ON CONFLICT (idem_key) DO NOTHING`, args, nil)
	return nil
}

// RecordAttempts queues RecordAttempt for many attempts, one statement.
// Two attempts with the same identity in one call keep the later one,
// since PostgreSQL refuses to update a row twice in one statement.
func (db *DB) RecordAttempts(p *Pipeline, as []Attempt) error {
	if len(as) == 0 {
		return nil
	}
	if err := checkGroupSize("record attempts", len(as)); err != nil {
		return err
	}
	// One row per identity, the later attempt in the earlier's place.
	type key struct{ item, gen, attempt int64 }
	rows := make([]Attempt, 0, len(as))
	index := make(map[key]int, len(as))
	for _, a := range as { // copies: the caller's attempts stay as given
		if a.Generation == 0 {
			a.Generation = 1
		}
		k := key{a.ItemID, a.Generation, a.JobAttempt}
		if i, ok := index[k]; ok {
			rows[i] = a
			continue
		}
		index[k] = len(rows)
		rows = append(rows, a)
	}
	args := make([]any, 0, 11*len(rows))
	now := db.timestamp()
	for i := range rows {
		args = append(args, db.attemptArgs(&rows[i], now)...)
	}
	p.Queue(insertRows("attempts", attemptInsertColumns, len(rows), attemptUpsert), args, nil)
	return nil
}

// FailInterruptedAttempts queues the end, as failed with class and
// message, of the attempts of item's generation gen before job attempt
// before that are still recorded as running: their process died mid-call
// (River rescued the job), so they will never finish on their own.
func (db *DB) FailInterruptedAttempts(p *Pipeline, itemID, gen, before int64, class, message string) {
	p.Queue(`UPDATE attempts SET status = ?, error_class = ?, error = ?, finished_at = ?
		WHERE item_id = ? AND generation = ? AND job_attempt < ? AND status = ?`,
		[]any{string(AttemptFailed), class, message, db.timeArg(db.timestamp()), itemID, gen, before, string(AttemptRunning)}, nil)
}
