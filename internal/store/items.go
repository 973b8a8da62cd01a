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

// ItemStatus is where one image request is in its life.
type ItemStatus string

// The item statuses; Succeeded, Failed and Canceled are final.
const (
	ItemPending   ItemStatus = "pending"
	ItemRunning   ItemStatus = "running"
	ItemSucceeded ItemStatus = "succeeded"
	ItemFailed    ItemStatus = "failed"
	ItemCanceled  ItemStatus = "canceled"
)

// Item is a row of items: one image to make, after template expansion (an
// input row asking for N images gives N items, Index 1..N).
type Item struct {
	ID             int64
	BatchID        int64
	WorkspaceID    int64
	SourceLine     int64 // line of the input file the item came from
	Index          int64 // 1-based image index within its row
	Status         ItemStatus
	Prompt         string
	NegativePrompt string
	Model          string
	Provider       string
	RemoteModel    string // the provider's model id, fixed when planned
	Width          int64
	Height         int64
	AspectRatio    string
	Quality        string
	Style          string
	Format         string
	Seed           int64
	HasSeed        bool            // Seed was given (0 is a valid seed)
	Options        json.RawMessage // provider options ("opt.<name>" columns) as a JSON object
	Vars           json.RawMessage // the row's template variables as a JSON object
	Name           string          // output file name relative to the batch folder; unique per batch
	CostEstimate   int64           // credits reserved for this item
	Error          string
	ErrorClass     string
	Attempts       int64
	// ParentImageID is the image this item regenerates (0 for an item
	// planned from input); the worker copies it into images.parent_id.
	ParentImageID int64
	// JobID is the River job queued to make the item, 0 when none is (a
	// paused batch's items, or before the job is inserted).
	JobID     int64
	promptSeq int64 // the item's row of item_prompts, set by InsertItems
	CreatedAt time.Time
	UpdatedAt time.Time
}

// itemInsertColumns are the columns InsertItems writes, in argument order.
// The prompt is not among them: the items that share one point at a
// single item_prompts row (prompt_seq; migration 0006).
const itemInsertColumns = `batch_id, workspace_id, source_line, idx, status, prompt_seq, model, provider,
	remote_model, width, height, aspect_ratio, quality, style, format, seed, options, vars, name, cost_estimate,
	error, error_class, attempts, parent_image_id, created_at, updated_at`

const itemInsertColumnCount = 26

// itemPrompt reads one column of an item's prompt row; it is a subquery,
// not a join, so that it also serves RETURNING (SQLite's RETURNING may
// not name another table, but may hold a subquery).
func itemPrompt(column string) string {
	return `COALESCE((SELECT p.` + column + ` FROM item_prompts p
		WHERE p.batch_id = items.batch_id AND p.seq = items.prompt_seq), '')`
}

// itemColumns selects from items what scanItem reads.
var itemColumns = `items.id, items.batch_id, items.workspace_id, items.source_line, items.idx, items.status, ` +
	itemPrompt("prompt") + `, ` + itemPrompt("negative_prompt") + `, items.model, items.provider, items.remote_model,
	items.width, items.height, items.aspect_ratio, items.quality, items.style, items.format, items.seed, items.options,
	items.vars, items.name, items.cost_estimate, items.error, items.error_class, items.attempts, items.parent_image_id,
	items.created_at, items.updated_at, items.job_id`

func scanItem(row interface{ Scan(...any) error }) (Item, error) {
	var it Item
	var seed sql.NullInt64
	err := row.Scan(&it.ID, &it.BatchID, &it.WorkspaceID, &it.SourceLine, &it.Index, &it.Status, &it.Prompt,
		&it.NegativePrompt, &it.Model, &it.Provider, &it.RemoteModel, &it.Width, &it.Height, &it.AspectRatio, &it.Quality,
		&it.Style, &it.Format, &seed, jsonCol{&it.Options}, jsonCol{&it.Vars}, &it.Name, &it.CostEstimate,
		&it.Error, &it.ErrorClass, &it.Attempts, intCol{&it.ParentImageID}, timeCol{&it.CreatedAt}, timeCol{&it.UpdatedAt},
		intCol{&it.JobID})
	it.Seed, it.HasSeed = seed.Int64, seed.Valid
	return it, err
}

// itemArgs returns it's values in itemInsertColumns order.
func (db *DB) itemArgs(it *Item) []any {
	var seed any
	if it.HasSeed {
		seed = it.Seed
	}
	return []any{it.BatchID, it.WorkspaceID, it.SourceLine, it.Index, string(it.Status), it.promptSeq,
		it.Model, it.Provider, it.RemoteModel, it.Width, it.Height, it.AspectRatio, it.Quality,
		it.Style, it.Format, seed, jsonArg(it.Options), jsonArg(it.Vars), it.Name, it.CostEstimate,
		it.Error, it.ErrorClass, it.Attempts, nullInt64(it.ParentImageID), db.timeArg(it.CreatedAt), db.timeArg(it.UpdatedAt)}
}

// insertItemsChunk is how many rows go in one INSERT: 400 rows × 26
// columns stays far below SQLite's 32766 and PostgreSQL's 65535 bound
// parameters.
const insertItemsChunk = 400

// InsertItems inserts items with multi-row INSERTs, normally inside the
// caller's transaction that also creates the batch and its jobs. It sets
// each item's ID, CreatedAt and UpdatedAt (and Status to ItemPending when
// empty) in place. Two items with the same (BatchID, Name) return
// ErrConflict.
func (db *DB) InsertItems(ctx context.Context, q Querier, items []Item) error {
	now := db.timestamp()
	for start := 0; start < len(items); start += insertItemsChunk {
		chunk := items[start:min(start+insertItemsChunk, len(items))]
		if err := db.insertItemChunk(ctx, q, chunk, now); err != nil {
			return err
		}
	}
	return nil
}

// itemKey identifies an item before it has an id.
type itemKey struct {
	batchID int64
	name    string
}

func (db *DB) insertItemChunk(ctx context.Context, q Querier, chunk []Item, now time.Time) error {
	if err := db.insertPrompts(ctx, q, chunk); err != nil {
		return err
	}
	args := make([]any, 0, len(chunk)*itemInsertColumnCount)
	byKey := make(map[itemKey]int, len(chunk))
	for i := range chunk {
		it := &chunk[i]
		if it.Status == "" {
			it.Status = ItemPending
		}
		it.CreatedAt, it.UpdatedAt = now, now
		args = append(args, db.itemArgs(it)...)
		key := itemKey{it.BatchID, it.Name}
		if _, dup := byKey[key]; dup {
			return fmt.Errorf("insert items: batch %d name %q twice: %w", it.BatchID, it.Name, ErrConflict)
		}
		byKey[key] = i
	}
	// RETURNING gives no promise about row order, so ids are matched back
	// through the (batch_id, name) key the table keeps unique.
	query := insertRows("items", itemInsertColumns, len(chunk), `RETURNING id, batch_id, name`)
	rows, err := q.QueryContext(ctx, db.q(query), args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("insert items: %w", ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert items: %w", err)
	}
	type idRow struct {
		id  int64
		key itemKey
	}
	got, err := collect(rows, func(r interface{ Scan(...any) error }) (idRow, error) {
		var x idRow
		err := r.Scan(&x.id, &x.key.batchID, &x.key.name)
		return x, err
	}, "insert items")
	if isUniqueViolation(err) {
		return fmt.Errorf("insert items: %w", ErrConflict)
	}
	if err != nil {
		return err
	}
	if len(got) != len(chunk) {
		return fmt.Errorf("insert items: %d rows returned for %d inserted", len(got), len(chunk))
	}
	for _, x := range got {
		i, ok := byKey[x.key]
		if !ok {
			return fmt.Errorf("insert items: unexpected row batch %d name %q", x.key.batchID, x.key.name)
		}
		chunk[i].ID = x.id
	}
	return nil
}

// promptKey identifies a prompt row of a batch by its content.
type promptKey struct {
	batchID          int64
	prompt, negative string
}

// insertPrompts stores the prompts of chunk's items, once for the items of
// a batch that share the same prompt and negative prompt (the n images of
// a row), numbering them after the batch's last, and sets each item's
// promptSeq.
func (db *DB) insertPrompts(ctx context.Context, q Querier, chunk []Item) error {
	seqs := make(map[promptKey]int64)
	last := make(map[int64]int64) // batch → its highest seq so far
	var args []any
	rows := 0
	for i := range chunk {
		it := &chunk[i]
		k := promptKey{it.BatchID, it.Prompt, it.NegativePrompt}
		if seq, ok := seqs[k]; ok {
			it.promptSeq = seq
			continue
		}
		top, known := last[it.BatchID]
		if !known {
			if err := q.QueryRowContext(ctx, db.q(`SELECT COALESCE(MAX(seq), 0) FROM item_prompts WHERE batch_id = ?`),
				it.BatchID).Scan(&top); err != nil {
				return fmt.Errorf("insert prompts: %w", err)
			}
		}
		top++
		last[it.BatchID], seqs[k], it.promptSeq = top, top, top
		args = append(args, it.BatchID, top, it.Prompt, it.NegativePrompt)
		rows++
	}
	if _, err := q.ExecContext(ctx, db.q(insertRows("item_prompts", `batch_id, seq, prompt, negative_prompt`, rows, "")), args...); err != nil {
		return fmt.Errorf("insert prompts: %w", err)
	}
	return nil
}

// GetItem returns the workspace's item id, or ErrNotFound (also when the
// item belongs to another workspace).
func (db *DB) GetItem(ctx context.Context, q Querier, workspaceID, id int64) (Item, error) {
	return db.getItem(ctx, q, `id = ? AND workspace_id = ?`, id, workspaceID)
}

// GetItemByID returns item id whatever its workspace. It is for workers,
// whose job arguments carry only ids; request handlers use GetItem.
func (db *DB) GetItemByID(ctx context.Context, q Querier, id int64) (Item, error) {
	return db.getItem(ctx, q, `id = ?`, id)
}

func (db *DB) getItem(ctx context.Context, q Querier, where string, id int64, more ...any) (Item, error) {
	it, err := scanItem(q.QueryRowContext(ctx, db.q(`SELECT `+itemColumns+` FROM items WHERE `+where),
		append([]any{id}, more...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, fmt.Errorf("get item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, fmt.Errorf("get item %d: %w", id, err)
	}
	return it, nil
}

// ItemFilter narrows ListItems; zero fields match everything.
type ItemFilter struct {
	BatchID int64
	Status  ItemStatus
}

// ListItems returns a page of the workspace's items in id order (which is
// input order within a batch), starting after the id `after` (0 for the
// first page).
func (db *DB) ListItems(ctx context.Context, q Querier, workspaceID int64, f ItemFilter, after int64, limit int) ([]Item, error) {
	where := []string{"workspace_id = ?", "id > ?"}
	args := []any{workspaceID, after}
	if f.BatchID != 0 {
		where = append(where, "batch_id = ?")
		args = append(args, f.BatchID)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	args = append(args, clampLimit(limit))
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+itemColumns+` FROM items
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`), args...)
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	return collect(rows, scanItem, "list items")
}

// ItemUpdate is a status change for UpdateItemStatus.
type ItemUpdate struct {
	Status     ItemStatus
	Error      string // cleared when empty
	ErrorClass string // cleared when empty
	// Attempts raises the item's attempt count to this value; a lower value
	// (a late, re-delivered job) leaves it alone.
	Attempts int64
	// From, when not empty, makes the update conditional: it applies only
	// while the item's current status is one of these. Workers use it so a
	// re-delivered job cannot move a finished item back to running.
	From []ItemStatus
}

// UpdateItemStatus applies u to item id and reports whether a row changed
// (false for an unknown id or when the From guard did not match).
func (db *DB) UpdateItemStatus(ctx context.Context, q Querier, id int64, u ItemUpdate) (bool, error) {
	query := `UPDATE items SET status = ?, error = ?, error_class = ?,
		attempts = CASE WHEN ? > attempts THEN ? ELSE attempts END, updated_at = ?
		WHERE id = ?`
	args := []any{string(u.Status), u.Error, u.ErrorClass, u.Attempts, u.Attempts, db.timeArg(db.timestamp()), id}
	if len(u.From) > 0 {
		query += ` AND status IN (` + placeholders(len(u.From)) + `)`
		for _, s := range u.From {
			args = append(args, string(s))
		}
	}
	res, err := q.ExecContext(ctx, db.q(query), args...)
	if err != nil {
		return false, fmt.Errorf("update item %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update item %d: %w", id, err)
	}
	return n > 0, nil
}

// CountBatchItems counts the workspace's batch's items by status, from the
// items themselves (not the batch's counters, which lag behind the
// workers). A status no item has is absent from the map; another
// workspace's batch has no items.
func (db *DB) CountBatchItems(ctx context.Context, q Querier, workspaceID, batchID int64) (map[ItemStatus]int64, error) {
	counts, err := db.countItems(ctx, q, `batch_id = ? AND workspace_id = ?`, batchID, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("count items of batch %d: %w", batchID, err)
	}
	return counts, nil
}

// countItems counts the items matching where, by status.
func (db *DB) countItems(ctx context.Context, q Querier, where string, args ...any) (map[ItemStatus]int64, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT status, COUNT(*) FROM items WHERE `+where+` GROUP BY status`), args...)
	if err != nil {
		return nil, err
	}
	type count struct {
		status ItemStatus
		n      int64
	}
	counts, err := collect(rows, func(r interface{ Scan(...any) error }) (count, error) {
		var c count
		err := r.Scan(&c.status, &c.n)
		return c, err
	}, "count items")
	if err != nil {
		return nil, err
	}
	out := make(map[ItemStatus]int64, len(counts))
	for _, c := range counts {
		out[c.status] = c.n
	}
	return out, nil
}
