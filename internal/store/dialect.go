package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// This file is the one place where SQLite and PostgreSQL differ at run time.
// The SQL in every other file is written once, with "?" placeholders, and
// sticks to what both databases understand: INSERT … ON CONFLICT … DO
// NOTHING/UPDATE with excluded.col, RETURNING, TRUE/FALSE, CAST(… AS BIGINT).
// The schema differences (id columns, timestamptz, jsonb, bytea) live in the
// two migration folders.

// q rewrites a query written with "?" placeholders for db's dialect.
func (db *DB) q(query string) string {
	if db.dialect == Postgres {
		return rebind(query)
	}
	return query
}

// rebind turns "?" placeholders into PostgreSQL's "$1", "$2", … It leaves
// question marks inside single-quoted literals alone. Our queries never use
// "?" for anything else (no jsonb "?" operator).
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inString = !inString
			b.WriteByte(c)
		case c == '?' && !inString:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sqliteTimeFormat is a fixed-width UTC text form. SQLite compares times as
// text, so every stored time must have the same shape (River's SQLite driver
// makes the same choice); modernc.org/sqlite parses it back into time.Time
// for columns declared TIMESTAMP.
const sqliteTimeFormat = "2006-01-02 15:04:05.000000"

// timeArg converts t into a query argument; the zero time becomes NULL.
func (db *DB) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	if db.dialect == SQLite {
		return t.Format(sqliteTimeFormat)
	}
	return t
}

// timeCol scans a possibly NULL time column into *t (NULL becomes the zero
// time). It accepts time.Time and the text forms SQLite may hand back when a
// column has lost its declared type (RETURNING, expressions).
type timeCol struct{ t *time.Time }

// Scan implements sql.Scanner.
func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("scan time: unsupported type %T", src)
	}
	return nil
}

func (c timeCol) parse(s string) error {
	for _, layout := range []string{
		sqliteTimeFormat,
		"2006-01-02 15:04:05.999999999",
		"2006-01-02 15:04:05.999999999-07:00",
		time.RFC3339Nano,
	} {
		if t, err := time.Parse(layout, s); err == nil {
			*c.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("scan time: cannot parse %q", s)
}

// jsonArg converts a JSON document into a query argument. Text works for
// both SQLite TEXT and PostgreSQL jsonb columns; an empty document is "{}".
func jsonArg(raw json.RawMessage) any {
	if len(raw) == 0 {
		return "{}"
	}
	return string(raw)
}

// jsonCol scans a JSON column (TEXT or jsonb) into *raw.
type jsonCol struct{ raw *json.RawMessage }

// Scan implements sql.Scanner.
func (c jsonCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.raw = nil
	case string:
		*c.raw = json.RawMessage(v)
	case []byte:
		*c.raw = append(json.RawMessage(nil), v...)
	default:
		return fmt.Errorf("scan json: unsupported type %T", src)
	}
	return nil
}

// nullInt64 turns 0 into NULL, for optional foreign keys.
func nullInt64(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// intCol scans a possibly NULL integer column into *v (NULL becomes 0).
type intCol struct{ v *int64 }

// Scan implements sql.Scanner.
func (c intCol) Scan(src any) error {
	var n sql.NullInt64
	if err := n.Scan(src); err != nil {
		return err
	}
	*c.v = n.Int64
	return nil
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure in either database.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		// SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
		return sqliteErr.Code() == 2067 || sqliteErr.Code() == 1555
	}
	return false
}

// clampLimit bounds a page size: non-positive means the default.
func clampLimit(limit int) int {
	const defaultLimit, maxLimit = 100, 1000
	switch {
	case limit <= 0:
		return defaultLimit
	case limit > maxLimit:
		return maxLimit
	}
	return limit
}

// The batch event log (events.go) is ordered by id on SQLite, whose writers
// are serialised so that ids are commit order. On PostgreSQL ids are handed
// out at INSERT, not at COMMIT, so the log is ordered by (xid, id) and
// readers take only rows whose transaction is older than every running one
// (pg_snapshot_xmin): no row can later appear before that point. Both
// dialects return the xid as text ("0" on SQLite), because xid8 has no
// database/sql type.

// eventsAfterQuery returns the query and arguments of BatchEvents.
func (db *DB) eventsAfterQuery(workspaceID, batchID int64, after EventCursor, limit int) (string, []any) {
	if db.dialect == Postgres {
		return `SELECT e.xid::text, e.id, COALESCE(e.item_id, 0), e.status,
			COALESCE((SELECT MAX(im.id) FROM images im WHERE im.item_id = e.item_id), 0)
			FROM batch_events e
			WHERE e.batch_id = ? AND e.workspace_id = ? AND (e.xid, e.id) > (?::xid8, ?)
			  AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY e.xid, e.id LIMIT ?`,
			[]any{batchID, workspaceID, strconv.FormatUint(after.XID, 10), after.ID, limit}
	}
	return `SELECT '0', e.id, COALESCE(e.item_id, 0), e.status,
		COALESCE((SELECT MAX(im.id) FROM images im WHERE im.item_id = e.item_id), 0)
		FROM batch_events e
		WHERE e.batch_id = ? AND e.workspace_id = ? AND e.id > ?
		ORDER BY e.id LIMIT ?`,
		[]any{batchID, workspaceID, after.ID, limit}
}

// eventHeadQuery returns the query of BatchEventHead; it takes the batch id
// and the workspace id.
func (db *DB) eventHeadQuery() string {
	if db.dialect == Postgres {
		return `SELECT COALESCE(MAX(xid)::text, '0'), COALESCE(MAX(id), 0) FROM (
			SELECT xid, id FROM batch_events
			WHERE batch_id = ? AND workspace_id = ? AND xid < pg_snapshot_xmin(pg_current_snapshot())
			ORDER BY xid DESC, id DESC LIMIT 1) AS last`
	}
	return `SELECT '0', COALESCE(MAX(id), 0) FROM batch_events WHERE batch_id = ? AND workspace_id = ?`
}
