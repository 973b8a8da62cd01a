// Package storetest gives each test its own migrated database: SQLite in
// t.TempDir() by default, or a fresh PostgreSQL database when
// BULKGEN_TEST_DATABASE_URL names a server, e.g.
//
//	BULKGEN_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go test ./...
//
// On PostgreSQL the URL's database is only used to CREATE and DROP the
// per-test databases; the tests never touch it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"bulkgen/internal/store"
)

// EnvDatabaseURL is the environment variable that switches the tests to
// PostgreSQL.
const EnvDatabaseURL = "BULKGEN_TEST_DATABASE_URL"

// New returns a migrated database for tb alone and closes (and on
// PostgreSQL drops) it when the test ends.
func New(tb testing.TB) *store.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var dsn string
	if admin := os.Getenv(EnvDatabaseURL); admin != "" {
		dsn = createDatabase(tb, ctx, admin)
	} else {
		dsn = copySQLiteTemplate(tb)
	}
	db, err := store.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close test database: %v", err)
		}
	})
	// Already migrated on SQLite; this checks that Migrate sees nothing to
	// do there, and does the work on PostgreSQL.
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("migrate test database: %v", err)
	}
	return db
}

// sqliteTemplate is one migrated SQLite database file per test process.
// Migrating River's tables costs about a second under -race, so each test
// gets a copy of these bytes instead of migrating from scratch.
var sqliteTemplate = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "bulkgen-storetest-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "template.db"), nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = db.Close() }()
	if err := db.Migrate(ctx); err != nil {
		return nil, err
	}
	// VACUUM INTO writes a consistent single-file copy, WAL included.
	snapshot := filepath.Join(dir, "snapshot.db")
	if _, err := db.Writer().ExecContext(ctx, `VACUUM INTO '`+strings.ReplaceAll(snapshot, "'", "''")+`'`); err != nil {
		return nil, err
	}
	return os.ReadFile(snapshot)
})

// copySQLiteTemplate writes a migrated database into tb's temp folder and
// returns its path.
func copySQLiteTemplate(tb testing.TB) string {
	tb.Helper()
	data, err := sqliteTemplate()
	if err != nil {
		tb.Fatalf("build migrated sqlite template: %v", err)
	}
	path := filepath.Join(tb.TempDir(), "bulkgen.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("write test database: %v", err)
	}
	return path
}

// Dialect reports which database New will use, so a test can skip what one
// dialect cannot do.
func Dialect() store.Dialect {
	if os.Getenv(EnvDatabaseURL) != "" {
		return store.Postgres
	}
	return store.SQLite
}

// createDatabase makes a uniquely named database on the server named by
// adminURL, drops it in Cleanup, and returns its URL.
func createDatabase(tb testing.TB, ctx context.Context, adminURL string) string {
	tb.Helper()
	u, err := url.Parse(adminURL)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvDatabaseURL, err)
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	name := "bulkgen_test_" + hex.EncodeToString(suffix[:])

	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		tb.Fatalf("open admin connection: %v", err)
	}
	defer func() { _ = admin.Close() }()
	// The name is generated above from hex digits only, so quoting it is
	// enough; CREATE DATABASE takes no bind parameters.
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := sql.Open("pgx", adminURL)
		if err != nil {
			tb.Errorf("open admin connection: %v", err)
			return
		}
		defer func() { _ = admin.Close() }()
		// FORCE ends connections a test left open (PostgreSQL 13+).
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}
