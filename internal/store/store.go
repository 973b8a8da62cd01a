// Package store holds all of bulkgen's SQL: opening SQLite or PostgreSQL,
// the dialect quirks, transactions, embedded migrations, and the row types
// with their queries (one file per table group).
//
// Every query method takes a Querier as its second argument so that it runs
// either directly on a pool (DB.Reader or DB.Writer) or inside a caller's
// transaction (DB.Tx). Methods that find nothing return an error wrapping
// ErrNotFound, never a nil row with a nil error.
//
// On SQLite the writer pool has exactly one connection, shared with River.
// Never call a method with DB.Writer() while holding a transaction from
// DB.Tx on the same goroutine: the second call would wait for the only
// connection forever. Pass the *sql.Tx instead.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	// The drivers register themselves as "pgx" and "sqlite".
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// ErrNotFound is returned (wrapped) when a row does not exist or is not
// visible to the caller's workspace.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned (wrapped) when a write breaks a uniqueness rule,
// for example a second user with the same email, or an idempotency key
// reused with different contents.
var ErrConflict = errors.New("store: conflict")

// Dialect names the SQL database behind a DB.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Querier runs SQL. *sql.DB, *sql.Tx and *sql.Conn satisfy it, so every
// query method works on a pool or inside a caller's transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Interface guards.
var (
	_ Querier = (*sql.DB)(nil)
	_ Querier = (*sql.Tx)(nil)
	_ Querier = (*sql.Conn)(nil)
)

// DB is an open bulkgen database: a writer pool, a reader pool (the same
// pool on PostgreSQL) and the dialect that tells the queries apart.
type DB struct {
	dialect Dialect
	writer  *sql.DB
	reader  *sql.DB
	logger  *slog.Logger

	// now is the clock for created_at and friends; tests may replace it.
	now func() time.Time
}

// busyTimeoutMS is how long an SQLite connection waits for a lock held by
// another process (for example `bulkgen migrate` next to `serve`).
const busyTimeoutMS = 10000

// Open connects to the database named by dsn:
//
//   - "postgres://…" or "postgresql://…": PostgreSQL through pgx's
//     database/sql adapter;
//   - "sqlite:///abs/path.db", "sqlite://rel/path.db" or a plain file path:
//     SQLite through modernc.org/sqlite. The parent folder is created.
//
// Open pings the database but does not migrate it; call Migrate.
// A nil logger discards logs.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dsn == "" {
		return nil, errors.New("open database: empty dsn")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(ctx, dsn, logger)
	}
	path := dsn
	if rest, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		path = strings.TrimPrefix(rest, "//")
	}
	return openSQLite(ctx, path, logger)
}

// pgMaxIdleConns is how many idle PostgreSQL connections the pool keeps:
// enough for the workers of a busy server plus River's own.
const pgMaxIdleConns = 64

func openPostgres(ctx context.Context, dsn string, logger *slog.Logger) (*DB, error) {
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// database/sql keeps only 2 idle connections by default: with dozens
	// of image workers every transaction beyond those opened a new
	// PostgreSQL connection (a new server process) and closed it again,
	// which cost more than the work itself. The number of open connections
	// stays unbounded, as before; idle ones are closed after a minute.
	pool.SetMaxIdleConns(pgMaxIdleConns)
	pool.SetConnMaxIdleTime(time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		_ = pool.Close()
		return nil, fmt.Errorf("ping postgres: %w", err)
	}
	return &DB{dialect: Postgres, writer: pool, reader: pool, logger: logger, now: time.Now}, nil
}

// sqliteDSN builds the modernc.org/sqlite DSN for path. busy_timeout comes
// first so that the other pragmas wait for a lock instead of failing;
// _txlock=immediate takes the write lock at BEGIN, because a deferred
// transaction that reads then writes fails with SQLITE_BUSY_SNAPSHOT in WAL
// mode.
func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

func openSQLite(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	// The path must name a file: an in-memory database or a "file:" URI
	// would give the writer and the reader pools different databases or
	// different options.
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite: %q is not a plain file path", path)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
	}

	// River's SQLite driver and SQLite itself want one writer: a second
	// writing connection only ever waits or fails with SQLITE_BUSY.
	writer, err := openSQLitePool(sqliteDSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// Ping the writer first so that journal_mode=WAL is in place before any
	// reader connects.
	if err := writer.PingContext(ctx); err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("ping sqlite writer: %w", err)
	}

	reader, err := openSQLitePool(sqliteDSN(path, true))
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open sqlite reader: %w", err)
	}
	n := max(4, runtime.NumCPU())
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	if err := reader.PingContext(ctx); err != nil {
		_ = reader.Close()
		_ = writer.Close()
		return nil, fmt.Errorf("ping sqlite reader: %w", err)
	}
	return &DB{dialect: SQLite, writer: writer, reader: reader, logger: logger, now: time.Now}, nil
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Writer returns the pool for writes. On SQLite it holds a single
// connection, which River shares; on PostgreSQL it is the only pool.
func (db *DB) Writer() *sql.DB { return db.writer }

// Reader returns the pool for reads that need no transaction. On SQLite it
// is a separate read-only pool that sees committed data; on PostgreSQL it is
// the same pool as Writer.
func (db *DB) Reader() *sql.DB { return db.reader }

// Tx runs fn in a transaction on the writer pool. It commits when fn returns
// nil and rolls back when fn returns an error or panics. On SQLite the
// transaction takes the write lock at BEGIN.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	if db.reader != db.writer {
		errs = append(errs, db.reader.Close())
	}
	errs = append(errs, db.writer.Close())
	return errors.Join(errs...)
}

// timestamp returns the current time at the precision both databases keep.
func (db *DB) timestamp() time.Time {
	return db.now().UTC().Truncate(time.Microsecond)
}
