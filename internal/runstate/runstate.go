// Package runstate keeps the resume state of `bulkgen run` inside the output
// folder: one SQLite file (.bulkgen/state.db) with a row per image request,
// its claimed file name, status and hash. A re-run of the same command finds
// every finished image by its request key and does no work for it; a crash
// loses at most the images in flight, whose rows are still pending.
//
// SQLite keeps memory flat however many rows the batch has: the runner pages
// through rows instead of holding them.
package runstate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Dir is the state folder inside an output folder.
const Dir = ".bulkgen"

// State is an open state database.
type State struct {
	db  *sql.DB
	run int64
	seq int64
}

// Row is one image request in the state.
type Row struct {
	Key    string
	Name   string // relative file name without extension
	Seq    int64
	Status string
	File   string // relative file name with extension, once written
	SHA256 string
	Record []byte // manifest record JSON
}

const schema = `
CREATE TABLE IF NOT EXISTS runs (
	id INTEGER PRIMARY KEY,
	started_at TEXT NOT NULL,
	command TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
	key TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	name_fold TEXT NOT NULL UNIQUE,
	run INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	status TEXT NOT NULL,
	file TEXT NOT NULL DEFAULT '',
	sha256 TEXT NOT NULL DEFAULT '',
	record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_run_seq ON images(run, seq);
`

// Open opens (creating if needed) the state in outDir and starts a new run.
func Open(ctx context.Context, outDir, command string) (*State, error) {
	dir := filepath.Join(outDir, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state folder: %w", err)
	}
	path := filepath.Join(dir, "state.db")
	// One connection: the runner has one writer, and SQLite serialises
	// writers anyway; busy_timeout guards against a second bulkgen on the
	// same folder, which Lock refuses earlier.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if err := checkFormat(ctx, db, outDir); err != nil {
		db.Close()
		return nil, err
	}
	res, err := db.ExecContext(ctx, `INSERT INTO runs (started_at, command) VALUES (datetime('now'), ?)`, command)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("record run: %w", err)
	}
	run, err := res.LastInsertId()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("record run: %w", err)
	}
	return &State{db: db, run: run}, nil
}

// formatVersion is the shape of the records the runner keeps (its
// package's entry type), stored as SQLite's user_version. A state written
// in another shape cannot be resumed: its records would decode wrongly.
const formatVersion = 2

// ErrOldFormat is returned by Open for a state written by an earlier
// version of bulkgen, whose records this one cannot read.
var ErrOldFormat = errors.New("the output folder's resume state was written by an earlier version of bulkgen")

func checkFormat(ctx context.Context, db *sql.DB, outDir string) error {
	var version int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read state format: %w", err)
	}
	if version == formatVersion {
		return nil
	}
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images`).Scan(&rows); err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	if rows > 0 {
		return fmt.Errorf("%w: use another output folder, or remove %s to start over (every image is then made again)",
			ErrOldFormat, filepath.Join(outDir, Dir))
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, formatVersion)); err != nil {
		return fmt.Errorf("write state format: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *State) Close() error { return s.db.Close() }

// Claimer claims rows inside one transaction; planning 100,000 rows in
// batches of transactions is what keeps the state fast.
type Claimer struct {
	s  *State
	tx *sql.Tx
}

// Begin starts a claiming transaction.
func (s *State) Begin(ctx context.Context) (*Claimer, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Claimer{s: s, tx: tx}, nil
}

// Commit commits the claims so far.
func (c *Claimer) Commit() error { return c.tx.Commit() }

// Rollback abandons the transaction.
func (c *Claimer) Rollback() error { return c.tx.Rollback() }

// Claim records the request key for this run and returns the file name the
// image will have. A key seen in an earlier run keeps its name and status
// (that is what makes a re-run do no work). A new key gets name, or the
// first free "name-2", "name-3" … among the names claimed in this run; a
// name held by an image of an earlier run that this run no longer asks for
// is taken over. record is stored for keys seen for the first time.
func (c *Claimer) Claim(ctx context.Context, key, name string, record []byte, candidate func(name string, k int) string) (Row, error) {
	c.s.seq++
	seq := c.s.seq
	var r Row
	err := c.tx.QueryRowContext(ctx, `SELECT name, status, file, sha256, record FROM images WHERE key = ?`, key).
		Scan(&r.Name, &r.Status, &r.File, &r.SHA256, &r.Record)
	switch {
	case err == nil:
		if _, err := c.tx.ExecContext(ctx, `UPDATE images SET run = ?, seq = ? WHERE key = ?`, c.s.run, seq, key); err != nil {
			return Row{}, fmt.Errorf("claim %s: %w", key, err)
		}
		r.Key, r.Seq = key, seq
		return r, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Row{}, fmt.Errorf("look up %s: %w", key, err)
	}
	for k := 1; ; k++ {
		cand := name
		if k > 1 {
			cand = candidate(name, k)
		}
		var ownerRun int64
		var ownerKey string
		err := c.tx.QueryRowContext(ctx, `SELECT key, run FROM images WHERE name_fold = ?`, fold(cand)).Scan(&ownerKey, &ownerRun)
		if err == nil && ownerRun == c.s.run {
			continue // taken in this run
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return Row{}, fmt.Errorf("look up name %s: %w", cand, err)
		}
		if err == nil {
			if _, err := c.tx.ExecContext(ctx, `DELETE FROM images WHERE key = ?`, ownerKey); err != nil {
				return Row{}, fmt.Errorf("take over name %s: %w", cand, err)
			}
		}
		if _, err := c.tx.ExecContext(ctx, `INSERT INTO images (key, name, name_fold, run, seq, status, record) VALUES (?, ?, ?, ?, ?, 'pending', ?)`,
			key, cand, fold(cand), c.s.run, seq, string(record)); err != nil {
			return Row{}, fmt.Errorf("claim name %s: %w", cand, err)
		}
		return Row{Key: key, Name: cand, Seq: seq, Status: "pending", Record: record}, nil
	}
}

func fold(name string) string { return strings.ToLower(name) }

// Page returns up to limit rows of this run with seq > after, in order.
func (s *State) Page(ctx context.Context, after int64, limit int) ([]Row, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, name, seq, status, file, sha256, record FROM images WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?`, s.run, after, limit)
	if err != nil {
		return nil, fmt.Errorf("page state: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Key, &r.Name, &r.Seq, &r.Status, &r.File, &r.SHA256, &r.Record); err != nil {
			return nil, fmt.Errorf("page state: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Outcome is the result of one image, for Finish.
type Outcome struct {
	Key, Status, File, SHA256 string
	Record                    []byte
}

// Finish records outcomes in one transaction: the runner hands over
// whatever finished since its last call, so a fast batch commits in groups.
func (s *State) Finish(ctx context.Context, outs ...Outcome) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record outcomes: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, o := range outs {
		if _, err := tx.ExecContext(ctx, `UPDATE images SET status = ?, file = ?, sha256 = ?, record = ? WHERE key = ?`,
			o.Status, o.File, o.SHA256, string(o.Record), o.Key); err != nil {
			return fmt.Errorf("record %s: %w", o.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record outcomes: %w", err)
	}
	return nil
}
