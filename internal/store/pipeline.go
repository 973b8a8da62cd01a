package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Rows is what a queued statement's reader gets: the part of a result that
// *sql.Rows and pgx.Rows share.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Pipeline holds one transaction whose statements are queued and sent in
// rounds (DB.Pipelined). On PostgreSQL every statement queued since the
// last Flush travels in one network round trip (a pgx batch in pipeline
// mode); on SQLite, in process and without round trips, each statement
// runs as it is queued.
//
// Why: under load a round trip to PostgreSQL costs far more than the
// statement (the server process and then the waiting goroutine must each
// be scheduled again), and the image workers' shared transaction, which
// runs one at a time and which every image job waits for twice, sent about
// ten of them (BEGIN, a statement per kind of row, COMMIT). Sent in three
// rounds, the server completed about 7% more images per second in
// `bulkgen bench serve` (1,001 against 933 on average, three runs each);
// the group now needs two (generate's committer).
//
// A statement's reader runs when its round is sent, in queue order; the
// first error of a round (a statement's or a reader's) is what Flush
// returns, and it ends the transaction: Pipelined rolls it back.
type Pipeline struct {
	ctx context.Context
	db  *DB

	// SQLite: statements run on tx when queued, and err keeps the first
	// error until the next Flush.
	tx  *sql.Tx
	err error

	// PostgreSQL: the connection and the round being queued.
	conn  *pgx.Conn
	batch *pgx.Batch
	// open is set once BEGIN has been sent: from then on a failure must
	// roll back.
	open bool
	// reads is set when the round being queued has a reader.
	reads bool
}

// Queue adds a statement (with "?" placeholders) to the current round.
// read, when not nil, reads its result rows (what it leaves unread is
// discarded).
func (p *Pipeline) Queue(query string, args []any, read func(Rows) error) {
	if read != nil && p.conn != nil {
		p.reads = true
	}
	p.queue(query, args, read)
}

// Report is Queue for a statement whose rows only report on what it did
// (ids it created, say), for rounds that should carry the COMMIT: on
// PostgreSQL the COMMIT may be sent with it, so an error of report is
// returned but need not undo the transaction.
func (p *Pipeline) Report(query string, args []any, report func(Rows) error) {
	p.queue(query, args, report)
}

func (p *Pipeline) queue(query string, args []any, read func(Rows) error) {
	query = p.db.q(query)
	if p.conn != nil {
		qq := p.batch.Queue(query, args...)
		if read != nil {
			// pgx closes the rows after read and returns their error.
			qq.Query(func(rows pgx.Rows) error { return read(rows) })
		}
		return
	}
	if p.err != nil {
		return
	}
	if read == nil {
		_, p.err = p.tx.ExecContext(p.ctx, query, args...)
		return
	}
	rows, err := p.tx.QueryContext(p.ctx, query, args...)
	if err != nil {
		p.err = err
		return
	}
	err = read(rows)
	for err == nil && rows.Next() {
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rows.Err()
	}
	p.err = err
}

// Flush sends the statements queued since the last Flush and runs their
// readers. On SQLite it returns the first error of the statements queued
// since the last Flush.
func (p *Pipeline) Flush() error {
	if p.conn == nil {
		err := p.err
		p.err = nil
		return err
	}
	if p.batch.Len() == 0 {
		return nil
	}
	b := p.batch
	p.batch, p.reads = &pgx.Batch{}, false
	p.open = true
	return p.conn.SendBatch(p.ctx, b).Close()
}

// Pipelined runs fn in one transaction on a Pipeline, then commits. BEGIN
// is sent with the first round, and COMMIT with the last unless that
// round has a reader (whose error must still be able to roll back), so
// a transaction of three rounds costs three round trips on PostgreSQL.
// When fn, a statement or a reader fails, the transaction is rolled back
// and the error returned.
func (db *DB) Pipelined(ctx context.Context, fn func(p *Pipeline) error) error {
	if db.dialect != Postgres {
		return db.Tx(ctx, func(tx *sql.Tx) error {
			p := &Pipeline{ctx: ctx, db: db, tx: tx}
			if err := fn(p); err != nil {
				return err
			}
			return p.Flush()
		})
	}
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return fmt.Errorf("pipeline: connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("pipeline: unexpected driver connection %T", dc)
		}
		p := &Pipeline{ctx: ctx, db: db, conn: sc.Conn(), batch: &pgx.Batch{}}
		p.batch.Queue("BEGIN")
		err := fn(p)
		if err == nil && p.reads {
			// The server runs a round whole once it is sent: a COMMIT
			// sent with readers would stand even if one of them failed.
			err = p.Flush()
		}
		if err == nil {
			p.batch.Queue("COMMIT")
			if err = p.Flush(); err == nil {
				return nil
			}
		}
		if !p.open {
			return err
		}
		// The transaction is open (or aborted by the failed round): end
		// it. A connection that cannot is dropped, not pooled mid-transaction.
		if _, rerr := p.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			return errors.Join(err, fmt.Errorf("pipeline: rollback: %w", rerr), driver.ErrBadConn)
		}
		return err
	})
}
