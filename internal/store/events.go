package store

import (
	"context"
	"fmt"
	"strconv"
)

// This file reads batch_events, the per-batch log of item and batch status
// changes that database triggers write (migration 0003_events). It backs
// the live progress stream GET /api/v1/batches/{id}/events. The two
// databases order the log differently; the dialect's queries are in
// dialect.go (eventsAfterQuery, eventHeadQuery).

// EventCursor is a position in a batch's event log. On SQLite the id alone
// orders events in commit order and XID is always 0; on PostgreSQL events
// are ordered by (XID, ID), where XID is the writing transaction's id (see
// migrations/postgres/0003_events.sql). The zero cursor is the start of
// every log.
type EventCursor struct {
	XID uint64
	ID  int64
}

// BatchEvent is one row of a batch's event log.
type BatchEvent struct {
	// Cursor is the event's position: reading after it continues the log.
	Cursor EventCursor
	// ItemID is the item whose status changed, or 0 when the batch's own
	// status changed.
	ItemID int64
	// Status is the item's (or the batch's) new status.
	Status string
	// ImageID is the item's newest image at the time of reading, or 0.
	ImageID int64
}

func scanBatchEvent(r interface{ Scan(...any) error }) (BatchEvent, error) {
	var ev BatchEvent
	var xid string
	if err := r.Scan(&xid, &ev.Cursor.ID, &ev.ItemID, &ev.Status, &ev.ImageID); err != nil {
		return ev, err
	}
	var err error
	if ev.Cursor.XID, err = strconv.ParseUint(xid, 10, 64); err != nil {
		return ev, fmt.Errorf("xid %q: %w", xid, err)
	}
	return ev, nil
}

// BatchEvents returns up to limit events of the workspace's batch that come
// after the cursor, in log order. Another workspace's batch has no events
// (an empty result, not ErrNotFound: callers check the batch first).
//
// On PostgreSQL it returns only events whose transaction is older than
// every transaction still running, so that no event can later appear
// before a cursor a reader has already passed; an event committed just now
// may therefore show up on a later call only.
func (db *DB) BatchEvents(ctx context.Context, q Querier, workspaceID, batchID int64, after EventCursor, limit int) ([]BatchEvent, error) {
	query, args := db.eventsAfterQuery(workspaceID, batchID, after, limit)
	rows, err := q.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read events of batch %d: %w", batchID, err)
	}
	return collect(rows, scanBatchEvent, "read events of batch")
}

// BatchEventHead returns the cursor of the newest event of the workspace's
// batch that a reader may rely on (see BatchEvents): a new reader starts
// there. It returns the zero cursor for a batch with no such event,
// including another workspace's batch.
func (db *DB) BatchEventHead(ctx context.Context, q Querier, workspaceID, batchID int64) (EventCursor, error) {
	var c EventCursor
	var xid string
	if err := q.QueryRowContext(ctx, db.q(db.eventHeadQuery()), batchID, workspaceID).Scan(&xid, &c.ID); err != nil {
		return EventCursor{}, fmt.Errorf("read event head of batch %d: %w", batchID, err)
	}
	var err error
	if c.XID, err = strconv.ParseUint(xid, 10, 64); err != nil {
		return EventCursor{}, fmt.Errorf("read event head of batch %d: xid %q: %w", batchID, xid, err)
	}
	return c, nil
}
