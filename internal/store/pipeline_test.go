package store_test

import (
	"errors"
	"testing"

	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// pipeTable makes a scratch table for the pipeline tests and returns a
// function that counts its rows outside any transaction.
func pipeTable(t *testing.T, db *store.DB) func() int64 {
	t.Helper()
	if _, err := db.Writer().ExecContext(t.Context(), `CREATE TABLE pipe_t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return func() int64 {
		t.Helper()
		var n int64
		if err := db.Reader().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pipe_t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

func scanCount(n *int64) func(store.Rows) error {
	return func(r store.Rows) error {
		if !r.Next() {
			return errors.New("no row")
		}
		return r.Scan(n)
	}
}

// TestPipelineRounds: a statement sees the statements queued before it, in
// its round and earlier ones; readers run in queue order when their round
// is sent; the commit makes it all visible.
func TestPipelineRounds(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	count := pipeTable(t, db)
	var inRound1, inRound2 int64
	var order []string
	err := db.Pipelined(t.Context(), func(p *store.Pipeline) error {
		p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?), (?, ?)`, []any{1, "a", 2, "b"}, nil)
		p.Queue(`SELECT COUNT(*) FROM pipe_t`, nil, func(r store.Rows) error {
			order = append(order, "count")
			return scanCount(&inRound1)(r)
		})
		p.Queue(`SELECT v FROM pipe_t ORDER BY id`, nil, func(r store.Rows) error {
			for r.Next() {
				var v string
				if err := r.Scan(&v); err != nil {
					return err
				}
				order = append(order, v)
			}
			return nil
		})
		if err := p.Flush(); err != nil {
			return err
		}
		if inRound1 != 2 || len(order) != 3 || order[0] != "count" || order[1] != "a" || order[2] != "b" {
			t.Errorf("after round 1: count %d, readers ran %v; want 2 and [count a b]", inRound1, order)
		}
		p.Queue(`UPDATE pipe_t SET v = ? WHERE id = ?`, []any{"c", 2}, nil)
		p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{3, "d"}, nil)
		p.Queue(`SELECT COUNT(*) FROM pipe_t WHERE v IN (?, ?)`, []any{"c", "d"}, scanCount(&inRound2))
		return nil
	})
	if err != nil {
		t.Fatalf("Pipelined: %v", err)
	}
	if inRound2 != 2 {
		t.Errorf("round 2 counted %d changed rows, want 2", inRound2)
	}
	if n := count(); n != 3 {
		t.Errorf("%d rows after the commit, want 3", n)
	}
}

// TestPipelineRollback: however a pipelined transaction fails — a
// statement in its first or a later round, a reader, or the function
// after a round was sent — nothing of it stays, the error is returned, and
// the connection goes back to the pool usable (not inside the failed
// transaction).
func TestPipelineRollback(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name string
		fn   func(p *store.Pipeline) error
		want error // nil: any error
	}{
		{"bad statement in the first round", func(p *store.Pipeline) error {
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{10, "x"}, nil)
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{1, "dup"}, nil)
			return nil
		}, nil},
		{"bad statement in a later round", func(p *store.Pipeline) error {
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{10, "x"}, nil)
			if err := p.Flush(); err != nil {
				return err
			}
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{11, nil}, nil) // v is NOT NULL
			return nil
		}, nil},
		{"reader fails", func(p *store.Pipeline) error {
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{10, "x"}, nil)
			p.Queue(`SELECT id FROM pipe_t`, nil, func(store.Rows) error { return boom })
			return nil
		}, boom},
		{"function fails after a round", func(p *store.Pipeline) error {
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{10, "x"}, nil)
			if err := p.Flush(); err != nil {
				return err
			}
			return boom
		}, boom},
		{"function fails before any round", func(p *store.Pipeline) error {
			p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{10, "x"}, nil)
			return boom
		}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.New(t)
			count := pipeTable(t, db)
			ctx := t.Context()
			if _, err := db.Writer().ExecContext(ctx, `INSERT INTO pipe_t (id, v) VALUES (1, 'one')`); err != nil {
				t.Fatal(err)
			}
			err := db.Pipelined(ctx, tt.fn)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Pipelined = %v, want %v", err, tt.want)
			}
			if n := count(); n != 1 {
				t.Errorf("%d rows after the failed transaction, want the 1 from before", n)
			}
			// The pool still works, for pipelines and plain statements.
			if err := db.Pipelined(ctx, func(p *store.Pipeline) error {
				p.Queue(`INSERT INTO pipe_t (id, v) VALUES (?, ?)`, []any{20, "after"}, nil)
				return nil
			}); err != nil {
				t.Fatalf("Pipelined after the failure: %v", err)
			}
			if _, err := db.Writer().ExecContext(ctx, `INSERT INTO pipe_t (id, v) VALUES (21, 'plain')`); err != nil {
				t.Fatalf("plain insert after the failure: %v", err)
			}
			if n := count(); n != 3 {
				t.Errorf("%d rows, want 3", n)
			}
		})
	}
}
