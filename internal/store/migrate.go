package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationFS holds the forward-only schema files, one folder per dialect.
// Never edit a file once it has been applied anywhere: add a new one.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrationLockKey is the PostgreSQL advisory lock that serialises
// migrations when several nodes start at once. SQLite needs none: every
// transaction takes the write lock at BEGIN.
const migrationLockKey = 7_406_611_302_417

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string // file name, e.g. "0001_init.sql"
	sql     string
}

// Migrate brings the schema up to date: first bulkgen's own numbered files,
// each applied in its own transaction and recorded in schema_migrations,
// then River's tables through rivermigrate. It is idempotent and safe to run
// from several processes at once.
//
// It logs one info line, "database migrated", when it applied anything, and
// nothing when the schema was up to date: a first start is not buried
// under a line per migration, and every later command starts quietly. Each
// applied migration is a debug record ("migration applied" or "river
// migration applied", with version and name), which `bulkgen migrate`
// prints.
func (db *DB) Migrate(ctx context.Context) error {
	files, err := loadMigrations(db.dialect)
	if err != nil {
		return err
	}
	applied := 0
	for _, m := range files {
		var done bool
		if err := db.Tx(ctx, func(tx *sql.Tx) (err error) {
			done, err = db.applyMigration(ctx, tx, m)
			return err
		}); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
		if done {
			applied++
		}
	}
	river, err := db.migrateRiver(ctx)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	if applied > 0 || river > 0 {
		db.logger.InfoContext(ctx, "database migrated", "bulkgen_migrations", applied, "river_migrations", river,
			"bulkgen_version", files[len(files)-1].version)
	}
	return nil
}

// loadMigrations returns the dialect's files in version order.
func loadMigrations(d Dialect) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: version, name: e.Name(), sql: string(body)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// lockMigrations serialises concurrent migrators until tx ends.
func (db *DB) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLockKey)); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	return nil
}

// applyMigration applies m unless schema_migrations has it, and reports
// whether it did.
func (db *DB) applyMigration(ctx context.Context, tx *sql.Tx, m migration) (bool, error) {
	if err := db.lockMigrations(ctx, tx); err != nil {
		return false, err
	}
	timeType := "TIMESTAMP"
	if db.dialect == Postgres {
		timeType = "TIMESTAMPTZ"
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at `+timeType+` NOT NULL
	)`); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
		return false, fmt.Errorf("check version: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("apply: %w", err)
	}
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, db.timeArg(db.timestamp())); err != nil {
		return false, fmt.Errorf("record: %w", err)
	}
	db.logger.DebugContext(ctx, "migration applied", "version", m.version, "name", m.name)
	return true, nil
}

// migrateRiver applies River's own migrations. On SQLite they run in one
// immediate transaction, which also serialises concurrent migrators. On
// PostgreSQL some of River's versions (adding an enum value, then using it)
// cannot share a transaction, so rivermigrate runs each version in its own,
// while a session-level advisory lock held on a dedicated connection keeps
// other nodes out.
//
// It returns how many of River's versions it applied. rivermigrate's own
// info lines (one per version, and "No migrations to apply" on every run)
// are dropped; its warnings and errors pass.
func (db *DB) migrateRiver(ctx context.Context) (int, error) {
	cfg := &rivermigrate.Config{Logger: slog.New(minLevel{db.logger.Handler(), slog.LevelWarn})}
	var res *rivermigrate.MigrateResult
	switch db.dialect {
	case SQLite:
		m, err := rivermigrate.New(riversqlite.New(db.writer), cfg)
		if err != nil {
			return 0, err
		}
		if err := db.Tx(ctx, func(tx *sql.Tx) error {
			// One transaction with ours, so a failed start leaves neither half
			// applied; River's own migrations for SQLite all batch safely.
			res, err = m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil) //nolint:staticcheck // see above

			return err
		}); err != nil {
			return 0, err
		}
	case Postgres:
		m, err := rivermigrate.New(riverdatabasesql.New(db.writer), cfg)
		if err != nil {
			return 0, err
		}
		conn, err := db.writer.Conn(ctx)
		if err != nil {
			return 0, fmt.Errorf("lock connection: %w", err)
		}
		defer func() { _ = conn.Close() }()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLockKey)); err != nil {
			return 0, fmt.Errorf("lock migrations: %w", err)
		}
		defer func() {
			// A fresh context: the lock must go even when ctx is done.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLockKey))
		}()
		if res, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("unknown dialect %q", db.dialect)
	}
	for _, v := range res.Versions {
		db.logger.DebugContext(ctx, "river migration applied", "version", v.Version, "name", v.Name)
	}
	return len(res.Versions), nil
}

// minLevel passes on the records of next at min or above.
type minLevel struct {
	next slog.Handler
	min  slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.next.Enabled(ctx, l)
}

func (h minLevel) Handle(ctx context.Context, r slog.Record) error { return h.next.Handle(ctx, r) }

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.next.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.next.WithGroup(name), h.min}
}
