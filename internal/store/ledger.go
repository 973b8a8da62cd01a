package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// EntryKind is the reason for a ledger entry.
type EntryKind string

// The ledger entry kinds; package ledger says what each means.
const (
	EntryGrant      EntryKind = "grant"
	EntryReserve    EntryKind = "reserve"
	EntryCharge     EntryKind = "charge"
	EntryRelease    EntryKind = "release"
	EntryAdjustment EntryKind = "adjustment"
)

// LedgerEntry is a row of ledger_entries, which is append-only. Amount is
// the signed change to the workspace's balance in credits (the ledger
// package decides the sign of each kind); IdemKey makes an entry happen at
// most once, e.g. "charge:image:42:attempt:1".
type LedgerEntry struct {
	ID          int64
	WorkspaceID int64
	Kind        EntryKind
	Amount      int64
	BatchID     int64 // 0 when not about a batch
	ItemID      int64 // 0 when not about an item
	ImageID     int64 // 0 when not about an image
	Attempt     int64
	IdemKey     string
	Note        string
	CreatedAt   time.Time
}

const ledgerColumns = `id, workspace_id, kind, amount, batch_id, item_id, image_id, attempt, idem_key, note, created_at`

// ledgerInsertColumns are the columns an entry insert writes, in the order
// of ledgerArgs.
const ledgerInsertColumns = `workspace_id, kind, amount, batch_id, item_id, image_id, attempt, idem_key, note, created_at`

func ledgerArgs(e LedgerEntry, createdAt any) []any {
	return []any{e.WorkspaceID, string(e.Kind), e.Amount, nullInt64(e.BatchID), nullInt64(e.ItemID),
		nullInt64(e.ImageID), e.Attempt, e.IdemKey, e.Note, createdAt}
}

func scanLedgerEntry(row interface{ Scan(...any) error }) (LedgerEntry, error) {
	var e LedgerEntry
	err := row.Scan(&e.ID, &e.WorkspaceID, &e.Kind, &e.Amount, intCol{&e.BatchID}, intCol{&e.ItemID},
		intCol{&e.ImageID}, &e.Attempt, &e.IdemKey, &e.Note, timeCol{&e.CreatedAt})
	return e, err
}

// AddEntry appends e unless an entry with the same IdemKey exists, and
// returns the stored entry with created reporting which case happened.
// Replaying the same entry is harmless; reusing a key for a different
// workspace, kind or amount returns ErrConflict, since that is a bug in the
// caller's key scheme. ID and CreatedAt are set by the store.
func (db *DB) AddEntry(ctx context.Context, q Querier, e LedgerEntry) (out LedgerEntry, created bool, err error) {
	if e.IdemKey == "" {
		return LedgerEntry{}, false, errors.New("add ledger entry: empty idempotency key")
	}
	out, err = scanLedgerEntry(q.QueryRowContext(ctx, db.q(insertRows("ledger_entries", ledgerInsertColumns, 1,
		`ON CONFLICT (idem_key) DO NOTHING RETURNING `+ledgerColumns)), ledgerArgs(e, db.timeArg(db.timestamp()))...))
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return LedgerEntry{}, false, fmt.Errorf("add ledger entry %q: %w", e.IdemKey, err)
	}
	out, err = scanLedgerEntry(q.QueryRowContext(ctx, db.q(`SELECT `+ledgerColumns+` FROM ledger_entries
		WHERE idem_key = ?`), e.IdemKey))
	if err != nil {
		return LedgerEntry{}, false, fmt.Errorf("add ledger entry %q: existing row: %w", e.IdemKey, err)
	}
	if out.WorkspaceID != e.WorkspaceID || out.Kind != e.Kind || out.Amount != e.Amount {
		return LedgerEntry{}, false, fmt.Errorf("add ledger entry %q: key already used for a different entry: %w", e.IdemKey, ErrConflict)
	}
	return out, false, nil
}

// ListLedgerEntries returns a page of the workspace's entries, newest first.
// after is the last id of the previous page (0 for the first page): the
// page holds ids below it.
func (db *DB) ListLedgerEntries(ctx context.Context, q Querier, workspaceID, after int64, limit int) ([]LedgerEntry, error) {
	query := `SELECT ` + ledgerColumns + ` FROM ledger_entries WHERE workspace_id = ?`
	args := []any{workspaceID}
	if after > 0 {
		query += ` AND id < ?`
		args = append(args, after)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, clampLimit(limit))
	rows, err := q.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list ledger entries: %w", err)
	}
	return collect(rows, scanLedgerEntry, "list ledger entries")
}
