package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite"
)

// cacheBundle is a fresh database file and a single-connection pool on it
// whose statement cache holds capacity entries.
type cacheBundle struct {
	path string
	db   *sql.DB
}

func setupCache(t *testing.T, capacity int) *cacheBundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.db")
	db := openCachedPool(t, sqliteDSN(path, false), capacity)
	db.SetMaxOpenConns(1)
	mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`)
	for i := 1; i <= 3; i++ {
		mustExec(t, db, `INSERT INTO t (id, v) VALUES (?, ?)`, i, fmt.Sprint("v", i))
	}
	return &cacheBundle{path: path, db: db}
}

func openCachedPool(tb testing.TB, dsn string, capacity int) *sql.DB {
	tb.Helper()
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		tb.Fatalf("NewConnector: %v", err)
	}
	db := sql.OpenDB(&stmtCacheConnector{inner: c, capacity: capacity})
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

func mustExec(tb testing.TB, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, query string, args ...any) {
	tb.Helper()
	if _, err := q.ExecContext(context.Background(), query, args...); err != nil {
		tb.Fatalf("exec %q: %v", query, err)
	}
}

// checkPrepared checks that the connection prepared want statements since
// it had prepared before, and holds every statement not yet finalized.
func (b *cacheBundle) checkPrepared(t *testing.T, before, want int) {
	t.Helper()
	after, live, cached := b.stats(t)
	if got := after - before; got != want {
		t.Errorf("prepared %d statements, want %d", got, want)
	}
	if live != cached {
		t.Errorf("%d statements live, %d cached; want equal", live, cached)
	}
}

// stats reports the cache of the pool's only connection: how many
// statements it has prepared, how many of those are not finalized, and
// how many it holds.
func (b *cacheBundle) stats(t *testing.T) (prepares, live, cached int) {
	t.Helper()
	conn, err := b.db.Conn(t.Context())
	if err != nil {
		t.Fatalf("Conn: %v", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stmtCacheConn)
		if !ok {
			return fmt.Errorf("driver connection is %T, want *stmtCacheConn", dc)
		}
		prepares, live, cached = c.prepares, c.live, c.lru.Len()
		return nil
	})
	if err != nil {
		t.Fatalf("Raw: %v", err)
	}
	return prepares, live, cached
}

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// values returns the single column of every row of query.
func values(tb testing.TB, q querier, query string, args ...any) []string {
	tb.Helper()
	got, err := queryValues(q, query, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func queryValues(q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(context.Background(), query, args...)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("scan %q: %w", query, err)
		}
		got = append(got, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rows of %q: %w", query, err)
	}
	return got, rows.Close()
}

func TestStmtCacheReusesStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		run          func(t *testing.T, db *sql.DB)
		wantPrepares int
	}{
		{"exec of one text", func(t *testing.T, db *sql.DB) {
			for i := range 5 {
				mustExec(t, db, `UPDATE t SET v = ? WHERE id = 1`, fmt.Sprint("x", i))
			}
			if got := values(t, db, `SELECT v FROM t WHERE id = 1`); !reflect.DeepEqual(got, []string{"x4"}) {
				t.Errorf("v = %q, want [x4]", got)
			}
		}, 2},
		{"query of one text with varying args", func(t *testing.T, db *sql.DB) {
			for id := 1; id <= 3; id++ {
				want := []string{fmt.Sprint("v", id)}
				if got := values(t, db, `SELECT v FROM t WHERE id = ?`, id); !reflect.DeepEqual(got, want) {
					t.Errorf("id %d: got %q, want %q", id, got, want)
				}
			}
		}, 1},
		{"query with no rows, then with rows", func(t *testing.T, db *sql.DB) {
			if got := values(t, db, `SELECT v FROM t WHERE id > ? ORDER BY id`, 99); len(got) != 0 {
				t.Errorf("id > 99: got %q, want none", got)
			}
			if got := values(t, db, `SELECT v FROM t WHERE id > ? ORDER BY id`, 1); !reflect.DeepEqual(got, []string{"v2", "v3"}) {
				t.Errorf("id > 1: got %q, want [v2 v3]", got)
			}
		}, 1},
		{"rows closed before the end", func(t *testing.T, db *sql.DB) {
			for range 3 {
				rows, err := db.QueryContext(t.Context(), `SELECT v FROM t ORDER BY id`)
				if err != nil {
					t.Fatal(err)
				}
				if !rows.Next() {
					t.Fatalf("no first row: %v", rows.Err())
				}
				if err := rows.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			if got := values(t, db, `SELECT v FROM t ORDER BY id`); !reflect.DeepEqual(got, []string{"v1", "v2", "v3"}) {
				t.Errorf("got %q, want all three", got)
			}
		}, 1},
		{"query row", func(t *testing.T, db *sql.DB) {
			for range 3 {
				var n int
				if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
					t.Fatalf("count = %d, %v; want 3", n, err)
				}
			}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCache(t, stmtCacheSize)
			before, _, _ := b.stats(t)
			tt.run(t, b.db)
			b.checkPrepared(t, before, tt.wantPrepares)
		})
	}
}

func TestStmtCacheNestedQueryOfSameText(t *testing.T) {
	t.Parallel()
	b := setupCache(t, stmtCacheSize)
	ctx := t.Context()
	const q = `SELECT v FROM t WHERE id >= ? ORDER BY id`
	before, _, _ := b.stats(t)

	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	var gotOuter []string
	var gotInner [][]string
	for id := 1; outer.Next(); id++ {
		var v string
		if err := outer.Scan(&v); err != nil {
			t.Fatal(err)
		}
		gotOuter = append(gotOuter, v)
		// The same text while the outer rows are open: the cached
		// statement is busy, so this one runs on a one-off statement.
		gotInner = append(gotInner, values(t, tx, q, id))
		// Exec of the same text runs to completion on a one-off too.
		mustExec(t, tx, q, id)
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"v1", "v2", "v3"}; !reflect.DeepEqual(gotOuter, want) {
		t.Errorf("outer rows = %q, want %q", gotOuter, want)
	}
	if want := [][]string{{"v1", "v2", "v3"}, {"v2", "v3"}, {"v3"}}; !reflect.DeepEqual(gotInner, want) {
		t.Errorf("inner rows = %q, want %q", gotInner, want)
	}
	// Once the outer rows are closed the cached statement is free again.
	if got := values(t, tx, q, 3); !reflect.DeepEqual(got, []string{"v3"}) {
		t.Errorf("after close: got %q, want [v3]", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	after, live, cached := b.stats(t)
	if got := after - before; got != 1 {
		t.Errorf("cached %d statements for one text, want 1", got)
	}
	if live != cached {
		t.Errorf("%d statements live, %d cached: a one-off statement leaked", live, cached)
	}
}

func TestStmtCacheEviction(t *testing.T) {
	t.Parallel()
	// Each step runs "SELECT ?+<n>" and checks the sum; the cache holds 2.
	tests := []struct {
		name         string
		seq          []int
		wantPrepares int
	}{
		{"within capacity", []int{1, 2, 1, 2, 1}, 2},
		{"least recently used goes first", []int{1, 2, 1, 3, 1, 2}, 4},
		{"cycle larger than capacity", []int{1, 2, 3, 1, 2, 3}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCache(t, 2)
			before, _, _ := b.stats(t)
			for i, n := range tt.seq {
				var got int
				if err := b.db.QueryRowContext(t.Context(), fmt.Sprintf("SELECT ? + %d", n), i).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != i+n {
					t.Errorf("step %d: SELECT %d + %d = %d", i, i, n, got)
				}
			}
			after, live, cached := b.stats(t)
			if got := after - before; got != tt.wantPrepares {
				t.Errorf("prepared %d statements, want %d", got, tt.wantPrepares)
			}
			if cached != 2 || live != 2 {
				t.Errorf("%d cached, %d live; want 2 and 2", cached, live)
			}
		})
	}

	t.Run("busy statement outlives its eviction", func(t *testing.T) {
		t.Parallel()
		b := setupCache(t, 1)
		ctx := t.Context()
		tx, err := b.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, `SELECT v FROM t ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
			// Two other texts push the open query's statement out.
			values(t, tx, `SELECT 'a'`)
			values(t, tx, `SELECT 'b'`)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if want := []string{"v1", "v2", "v3"}; !reflect.DeepEqual(got, want) {
			t.Errorf("rows = %q, want %q", got, want)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, live, cached := b.stats(t); live != 1 || cached != 1 {
			t.Errorf("%d live, %d cached; want 1 and 1: the evicted statement was not finalized", live, cached)
		}
	})
}

func TestStmtCacheErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// bad fails; good runs the same statement text, or the one that
		// failed to prepare, once more and must succeed.
		bad, good    func(ctx context.Context, db *sql.DB) error
		wantPrepares int
	}{
		{
			name: "syntax error",
			bad: func(ctx context.Context, db *sql.DB) error {
				_, err := db.ExecContext(ctx, `SELEC 1`)
				return err
			},
			good: func(ctx context.Context, db *sql.DB) error {
				_, err := db.ExecContext(ctx, `SELECT 1`)
				return err
			},
			wantPrepares: 1,
		},
		{
			name: "unknown table in a query",
			bad: func(ctx context.Context, db *sql.DB) error {
				return db.QueryRowContext(ctx, `SELECT v FROM nope`).Scan(new(string))
			},
			good: func(ctx context.Context, db *sql.DB) error {
				return db.QueryRowContext(ctx, `SELECT v FROM t WHERE id = 1`).Scan(new(string))
			},
			wantPrepares: 1,
		},
		{
			name: "constraint violation on a cached statement",
			bad: func(ctx context.Context, db *sql.DB) error {
				_, err := db.ExecContext(ctx, `INSERT INTO t (id, v) VALUES (?, ?)`, 1, "dup")
				return err
			},
			good: func(ctx context.Context, db *sql.DB) error {
				_, err := db.ExecContext(ctx, `INSERT INTO t (id, v) VALUES (?, ?)`, 9, "new")
				return err
			},
			wantPrepares: 0, // setupCache cached the INSERT already
		},
		{
			name: "runtime error in a cached query",
			bad: func(ctx context.Context, db *sql.DB) error {
				return db.QueryRowContext(ctx, `SELECT abs(?)`, int64(math.MinInt64)).Scan(new(int64))
			},
			good: func(ctx context.Context, db *sql.DB) error {
				var n int64
				if err := db.QueryRowContext(ctx, `SELECT abs(?)`, -5).Scan(&n); err != nil {
					return err
				}
				if n != 5 {
					return fmt.Errorf("abs(-5) = %d", n)
				}
				return nil
			},
			wantPrepares: 1,
		},
		{
			name: "canceled context before prepare",
			bad: func(ctx context.Context, db *sql.DB) error {
				conn, err := db.Conn(ctx)
				if err != nil {
					return fmt.Errorf("conn: %w (not the error under test)", err)
				}
				defer conn.Close()
				canceled, cancel := context.WithCancel(ctx)
				cancel()
				_, err = conn.ExecContext(canceled, `SELECT 2`)
				return err
			},
			good: func(ctx context.Context, db *sql.DB) error {
				_, err := db.ExecContext(ctx, `SELECT 2`)
				return err
			},
			wantPrepares: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCache(t, stmtCacheSize)
			ctx := t.Context()
			before, _, _ := b.stats(t)
			for i := range 2 { // the second failure proves the first cached nothing broken
				if err := tt.bad(ctx, b.db); err == nil {
					t.Fatalf("bad call %d succeeded, want an error", i)
				}
			}
			if err := tt.good(ctx, b.db); err != nil {
				t.Fatalf("good call after the failures: %v", err)
			}
			b.checkPrepared(t, before, tt.wantPrepares)
		})
	}
}

func TestStmtCacheSurvivesSchemaChange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// alterer returns the pool that runs the ALTER TABLE.
		alterer func(t *testing.T, b *cacheBundle) *sql.DB
	}{
		{"same connection", func(t *testing.T, b *cacheBundle) *sql.DB { return b.db }},
		{"another connection", func(t *testing.T, b *cacheBundle) *sql.DB {
			return openCachedPool(t, sqliteDSN(b.path, false), stmtCacheSize)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCache(t, stmtCacheSize)
			ctx := t.Context()
			const q = `SELECT * FROM t WHERE id = 1`
			read := func() []string {
				rows, err := b.db.QueryContext(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				cols, err := rows.Columns()
				if err != nil {
					t.Fatal(err)
				}
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if !rows.Next() {
					t.Fatalf("no row: %v", rows.Err())
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				got := make([]string, len(vals))
				for i, v := range vals {
					got[i] = fmt.Sprintf("%s=%v", cols[i], v)
				}
				return got
			}
			if got, want := read(), []string{"id=1", "v=v1"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("before: %q, want %q", got, want)
			}
			mustExec(t, tt.alterer(t, b), `ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 7`)
			before, _, _ := b.stats(t)
			if got, want := read(), []string{"id=1", "v=v1", "w=7"}; !reflect.DeepEqual(got, want) {
				t.Errorf("after ALTER TABLE: %q, want %q", got, want)
			}
			if after, _, _ := b.stats(t); after != before {
				t.Errorf("the SELECT was prepared again (%d prepares, want %d): the test does not exercise the cached statement", after, before)
			}
		})
	}
}

func TestStmtCacheTransactions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		finish func(*sql.Tx) error
		want   []string
	}{
		{"commit", (*sql.Tx).Commit, []string{"v1", "changed"}},
		{"rollback", (*sql.Tx).Rollback, []string{"v1", "v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCache(t, stmtCacheSize)
			ctx := t.Context()
			const update = `UPDATE t SET v = ? WHERE id = ?`
			mustExec(t, b.db, update, "v2", 2) // cache the statement outside the transaction
			tx, err := b.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, tx, update, "changed", 2)
			if err := tt.finish(tx); err != nil {
				t.Fatal(err)
			}
			if got := values(t, b.db, `SELECT v FROM t WHERE id <= 2 ORDER BY id`); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStmtCacheKeepsTxLock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		readOnly bool
		// wantWait: a second BEGIN waits for the first transaction, as
		// BEGIN IMMEDIATE does; a deferred BEGIN takes no lock.
		wantWait bool
	}{
		{"writer dsn begins immediate", false, true},
		{"reader dsn begins deferred", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "lock.db")
			db := openCachedPool(t, sqliteDSN(path, tt.readOnly), stmtCacheSize)
			ctx := t.Context()
			if err := db.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			first, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Rollback()

			waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			second, err := db.BeginTx(waitCtx, nil) // a second connection of the pool
			if gotWait := err != nil; gotWait != tt.wantWait {
				t.Fatalf("second BEGIN: err = %v, want waiting %v", err, tt.wantWait)
			}
			if err == nil {
				_ = second.Rollback()
			} else if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("second BEGIN: err = %v, want the context's deadline", err)
			}
			if err := first.Rollback(); err != nil {
				t.Fatal(err)
			}
			third, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatalf("BEGIN after the first ended: %v", err)
			}
			_ = third.Rollback()
		})
	}
}

func TestStmtCacheColumnTypes(t *testing.T) {
	t.Parallel()
	b := setupCache(t, stmtCacheSize)
	ctx := t.Context()
	mustExec(t, b.db, `CREATE TABLE typed (i INTEGER, s VARCHAR(10), f REAL, bl BLOB, d DATETIME, n TEXT)`)
	mustExec(t, b.db, `INSERT INTO typed VALUES (1, 'x', 1.5, x'00', '2026-01-02 03:04:05', NULL)`)
	const q = `SELECT i, s, f, bl, d, n FROM typed`

	// Plain modernc.org/sqlite is the reference.
	plain, err := sql.Open("sqlite", sqliteDSN(b.path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	columnTypes := func(db *sql.DB) []string {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if !rows.Next() { // modernc reports scan types from the current row
			t.Fatalf("no row: %v", rows.Err())
		}
		cts, err := rows.ColumnTypes()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ct := range cts {
			length, hasLength := ct.Length()
			nullable, hasNullable := ct.Nullable()
			prec, scale, hasPS := ct.DecimalSize()
			got = append(got, fmt.Sprintf("%s %s %v len=%d,%v null=%v,%v dec=%d,%d,%v",
				ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), length, hasLength, nullable, hasNullable, prec, scale, hasPS))
		}
		return got
	}
	want := columnTypes(plain)
	for i := range 2 { // the first run prepares, the second reuses
		if got := columnTypes(b.db); !reflect.DeepEqual(got, want) {
			t.Errorf("run %d: column types\n got %q\nwant %q", i, got, want)
		}
	}
	if got := want[0]; got != "i INTEGER int64 len=0,false null=true,true dec=0,0,false" {
		t.Errorf("reference column type of i = %q: the comparison is not testing modernc's column types", got)
	}
}

func TestStmtCacheCloseFinalizesEverything(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "close.db")
	connector, err := sqlite.NewConnector(sqliteDSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	dc, err := (&stmtCacheConnector{inner: connector, capacity: 2}).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := dc.(*stmtCacheConn)
	for _, q := range []string{`CREATE TABLE t (id INTEGER)`, `INSERT INTO t VALUES (1)`, `INSERT INTO t VALUES (2)`} {
		if _, err := c.ExecContext(ctx, q, nil); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows, err := c.QueryContext(ctx, `SELECT id FROM t`, nil)
	if err != nil {
		t.Fatal(err)
	}
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		t.Fatal(err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if c.prepares != 4 || c.live != 2 {
		t.Fatalf("before Close: %d prepared, %d live; want 4 and 2", c.prepares, c.live)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c.live != 0 || c.lru.Len() != 0 || len(c.entries) != 0 {
		t.Errorf("after Close: %d live, %d in list, %d in map; want none", c.live, c.lru.Len(), len(c.entries))
	}
	if c.IsValid() {
		t.Errorf("IsValid() after Close = true, want the inner connection closed")
	}
}

// TestStmtCacheConcurrentPool runs nested queries of one text from many
// goroutines over a multi-connection pool, for the race detector.
func TestStmtCacheConcurrentPool(t *testing.T) {
	t.Parallel()
	b := setupCache(t, 4)
	reader := openCachedPool(t, sqliteDSN(b.path, true), 4)
	reader.SetMaxOpenConns(3)
	ctx := t.Context()
	// nested reads every id >= 1 and, for each, the ids >= it with the same
	// text while the outer rows are open; it returns the inner counts.
	nested := func() ([]int, error) {
		tx, err := reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		const q = `SELECT id FROM t WHERE id >= ? ORDER BY id`
		rows, err := tx.QueryContext(ctx, q, 1)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var counts []int
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			inner, err := queryValues(tx, q, id)
			if err != nil {
				return nil, err
			}
			counts = append(counts, len(inner))
		}
		return counts, rows.Err()
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				counts, err := nested()
				if err != nil {
					t.Errorf("goroutine %d, step %d: %v", g, i, err)
					return
				}
				if want := []int{3, 2, 1}; !reflect.DeepEqual(counts, want) {
					t.Errorf("goroutine %d, step %d: inner counts %v, want %v", g, i, counts, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
