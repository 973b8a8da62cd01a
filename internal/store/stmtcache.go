package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"

	"modernc.org/sqlite"
)

// stmtCacheSize is how many prepared statements each SQLite connection
// keeps. bulkgen and River together run a few dozen distinct query texts;
// the headroom absorbs texts built at run time without evicting the hot
// ones: IN lists of varying length, and the image workers' multi-row
// writes (groupwrites.go), one text per row count for each of five
// statements, up to the committer's group size. A prepared statement holds
// a few kilobytes.
const stmtCacheSize = 1024

// A statement cache below database/sql, for SQLite.
//
// modernc.org/sqlite prepares every statement anew on every ExecContext and
// QueryContext and finalizes it afterwards: it has no statement cache. In a
// CPU profile of `bulkgen bench serve --scenarios queue --db sqlite`, about
// 37% of the server's CPU went to sqlite3_prepare_v2, i.e. to parsing and
// planning the same few dozen SQL texts over and over. The cache has to sit
// in the driver, below database/sql, because River's riversqlite driver runs
// its queries on the same *sql.DB with plain QueryContext/ExecContext, which
// no cache above database/sql would see.
//
// A cached statement survives schema changes: SQLite statements made with
// sqlite3_prepare_v2 re-prepare themselves when the schema they were planned
// against changes, so migrations need nothing special here.
//
// None of the types here lock: database/sql never uses one driver.Conn from
// two goroutines at once, and it calls the methods of the Rows a connection
// returned under that connection's lock too, so every method of a
// stmtCacheConn and of its cachedRows runs serialized.

// openSQLitePool opens a pool on dsn whose connections cache their prepared
// statements. sqlite.NewConnector, not a constructed sqlite.Driver, so that
// the connections carry whatever is registered on modernc's "sqlite"
// driver, as with sql.Open("sqlite", dsn).
func openSQLitePool(dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(&stmtCacheConnector{inner: c, capacity: stmtCacheSize}), nil
}

// stmtCacheConnector opens connections through inner, modernc.org/sqlite's
// connector, and gives each a statement cache of capacity entries.
type stmtCacheConnector struct {
	inner    driver.Connector
	capacity int
}

// Connect implements driver.Connector.
func (c *stmtCacheConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("sqlite statement cache: connection %T lacks the context methods it forwards", conn)
	}
	return newStmtCacheConn(sc, c.capacity), nil
}

// Driver implements driver.Connector. It is modernc.org/sqlite's registered
// driver, as for sql.Open("sqlite", …).
func (c *stmtCacheConnector) Driver() driver.Driver { return c.inner.Driver() }

// sqliteConn is what the cache needs of a modernc.org/sqlite connection, and
// every optional interface of it that database/sql uses: the wrapper must
// forward each, or database/sql silently falls back to the context-free
// methods (losing BeginTx options, context-ended lock waits, session resets
// and connection validation). modernc's connection does not implement
// driver.NamedValueChecker, so there is nothing to forward for it.
type sqliteConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// sqliteStmt is what the cache needs of a statement modernc prepares.
type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// stmtCacheConn is a SQLite connection with a least-recently-used cache of
// prepared statements keyed by query text.
type stmtCacheConn struct {
	inner    sqliteConn
	capacity int
	entries  map[string]*list.Element // of *cachedStmt
	lru      *list.List               // most recently used at the front

	// prepares counts statements prepared for the cache and live counts
	// those not yet finalized, so that tests can see reuse and cleanup.
	prepares int
	live     int
}

// cachedStmt is one cache entry.
type cachedStmt struct {
	query string
	stmt  sqliteStmt
	// busy is set while Rows of stmt are open: the statement is mid-step
	// and cannot run another query until those Rows reset it.
	busy bool
	// evicted is set when the entry left the cache while busy: its Rows
	// finalize the statement when they close.
	evicted bool
}

func newStmtCacheConn(inner sqliteConn, capacity int) *stmtCacheConn {
	return &stmtCacheConn{
		inner:    inner,
		capacity: max(capacity, 1),
		entries:  make(map[string]*list.Element),
		lru:      list.New(),
	}
}

// ExecContext implements driver.ExecerContext with the cached statement for
// query. modernc resets a prepared statement after each Exec, so it is
// ready for the next call as soon as this returns.
func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if !ok {
		return c.inner.ExecContext(ctx, query, args)
	}
	return e.stmt.ExecContext(ctx, args)
}

// QueryContext implements driver.QueryerContext with the cached statement
// for query. The entry stays busy until the returned Rows close: modernc's
// Rows of a prepared statement reset it on Close instead of finalizing it
// (rows.reuseStmt), so the statement is reusable only from then on.
func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	e, ok, err := c.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if !ok {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := e.stmt.QueryContext(ctx, args)
	if err != nil {
		// modernc has reset the statement already; it stays cached.
		return nil, err
	}
	e.busy = true
	return &cachedRows{Rows: rows, conn: c, entry: e}, nil
}

// acquire returns the idle cached statement for query, preparing and caching
// it if there is none. ok is false when the cached statement is busy with
// open Rows (a nested query of the same text in one transaction, say): the
// caller then runs query on the inner connection, which prepares a one-off
// statement and finalizes it when done (for a query, when its Rows close).
// A failed prepare caches nothing.
func (c *stmtCacheConn) acquire(ctx context.Context, query string) (e *cachedStmt, ok bool, err error) {
	if el, found := c.entries[query]; found {
		cached := el.Value.(*cachedStmt)
		if cached.busy {
			return nil, false, nil
		}
		c.lru.MoveToFront(el)
		return cached, true, nil
	}

	ds, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	s, isSQLite := ds.(sqliteStmt)
	if !isSQLite {
		_ = ds.Close()
		return nil, false, fmt.Errorf("sqlite statement cache: statement %T lacks the context methods it uses", ds)
	}
	c.prepares++
	c.live++
	e = &cachedStmt{query: query, stmt: s}
	c.entries[query] = c.lru.PushFront(e)
	if c.lru.Len() > c.capacity {
		c.evict(c.lru.Back())
	}
	return e, true, nil
}

// evict removes el from the cache and finalizes its statement, or leaves
// that to its Rows if they are still open.
func (c *stmtCacheConn) evict(el *list.Element) {
	e := c.lru.Remove(el).(*cachedStmt)
	delete(c.entries, e.query)
	if e.busy {
		e.evicted = true
		return
	}
	// The error is dropped: sqlite3_finalize frees the statement whatever
	// it returns, and what it reports is the outcome of the statement's
	// last run, which that run's caller has already been given.
	_ = c.finalize(e)
}

func (c *stmtCacheConn) finalize(e *cachedStmt) error {
	c.live--
	return e.stmt.Close()
}

// Close implements driver.Conn: it finalizes every cached statement, then
// closes the connection. database/sql closes a connection only once all its
// Rows are closed, so no entry is busy here.
func (c *stmtCacheConn) Close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if err := c.finalize(el.Value.(*cachedStmt)); err != nil {
			errs = append(errs, err)
		}
	}
	c.entries = make(map[string]*list.Element)
	c.lru.Init()
	if err := c.inner.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite connection: %w", err)
	}
	return nil
}

// The methods below forward to the inner connection unchanged. Statements
// prepared explicitly (sql.DB.Prepare) are not cached: database/sql owns and
// closes them.

// Prepare implements driver.Conn.
func (c *stmtCacheConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

// PrepareContext implements driver.ConnPrepareContext.
func (c *stmtCacheConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}

// Begin implements driver.Conn; database/sql calls BeginTx instead.
func (c *stmtCacheConn) Begin() (driver.Tx, error) {
	return c.inner.Begin()
}

// BeginTx implements driver.ConnBeginTx. modernc issues BEGIN IMMEDIATE
// here when the DSN says _txlock=immediate.
func (c *stmtCacheConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

// Ping implements driver.Pinger.
func (c *stmtCacheConn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

// ResetSession implements driver.SessionResetter.
func (c *stmtCacheConn) ResetSession(ctx context.Context) error { return c.inner.ResetSession(ctx) }

// IsValid implements driver.Validator.
func (c *stmtCacheConn) IsValid() bool { return c.inner.IsValid() }

// Unwrap returns the modernc.org/sqlite connection, which its helpers that
// take a *sql.Conn (sqlite.Limit) look for behind wrappers.
func (c *stmtCacheConn) Unwrap() driver.Conn { return c.inner }

// cachedRows are the Rows of a cached statement. Closing them makes the
// statement available again, or finalizes it if it was evicted meanwhile.
type cachedRows struct {
	driver.Rows
	conn  *stmtCacheConn
	entry *cachedStmt
}

// Close implements driver.Rows. modernc's Close resets the statement rather
// than finalizing it.
func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.entry.busy = false
	if r.entry.evicted {
		_ = r.conn.finalize(r.entry) // see evict for why the error is dropped
	}
	return err
}

// The column-type methods forward the optional interfaces modernc's Rows
// implement, which embedding driver.Rows would hide from sql.Rows.ColumnTypes.
// Each falls back to what database/sql assumes when a driver lacks one.
// modernc's Rows do not implement driver.RowsNextResultSet, so neither do
// these.

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (r *cachedRows) ColumnTypeDatabaseTypeName(index int) string {
	if p, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return p.ColumnTypeDatabaseTypeName(index)
	}
	return ""
}

// ColumnTypeLength implements driver.RowsColumnTypeLength.
func (r *cachedRows) ColumnTypeLength(index int) (int64, bool) {
	if p, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return p.ColumnTypeLength(index)
	}
	return 0, false
}

// ColumnTypeNullable implements driver.RowsColumnTypeNullable.
func (r *cachedRows) ColumnTypeNullable(index int) (nullable, ok bool) {
	if p, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return p.ColumnTypeNullable(index)
	}
	return false, false
}

// ColumnTypePrecisionScale implements driver.RowsColumnTypePrecisionScale.
func (r *cachedRows) ColumnTypePrecisionScale(index int) (precision, scale int64, ok bool) {
	if p, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return p.ColumnTypePrecisionScale(index)
	}
	return 0, 0, false
}

// ColumnTypeScanType implements driver.RowsColumnTypeScanType.
func (r *cachedRows) ColumnTypeScanType(index int) reflect.Type {
	if p, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return p.ColumnTypeScanType(index)
	}
	return reflect.TypeFor[any]()
}

// Interface guards.
var (
	_ driver.Connector                  = (*stmtCacheConnector)(nil)
	_ sqliteConn                        = (*stmtCacheConn)(nil)
	_ interface{ Unwrap() driver.Conn } = (*stmtCacheConn)(nil)

	_ driver.Rows                           = (*cachedRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*cachedRows)(nil)
	_ driver.RowsColumnTypeLength           = (*cachedRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*cachedRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*cachedRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*cachedRows)(nil)
)
