package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/ledger"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// bundle is a batch service on a fresh database (SQLite, or PostgreSQL
// with BULKGEN_TEST_DATABASE_URL) with an insert-only queue client:
// nothing works the jobs, so the tests see exactly what the service
// wrote. Its catalogue prices the preview engine at 3 credits an image.
type bundle struct {
	db  *store.DB
	svc *batch.Service
	ws  int64
}

func setup(tb testing.TB) *bundle {
	tb.Helper()
	db := storetest.New(tb)
	rc, err := queue.New(tb.Context(), db, queue.Config{InsertOnly: true, TestOnly: true}, nil, nil)
	if err != nil {
		tb.Fatalf("queue: %v", err)
	}
	cat, err := catalog.Load(catalog.DefaultJSON(), strings.NewReader(`{"models":[{"id":"preview","price":{"base":3}}]}`))
	if err != nil {
		tb.Fatalf("catalog: %v", err)
	}
	svc := &batch.Service{DB: db, Queue: rc, Ledger: &ledger.Ledger{DB: db}, Catalog: cat, DefaultModel: "preview",
		Policy: generate.Policy{MaxAttempts: 3}}
	return &bundle{db: db, svc: svc, ws: newWorkspace(tb, db, "owner@example.com")}
}

// newWorkspace makes a user with a limited, empty workspace.
func newWorkspace(tb testing.TB, db *store.DB, email string) int64 {
	tb.Helper()
	ctx := tb.Context()
	u, err := db.CreateUser(ctx, db.Writer(), store.User{Email: email})
	if err != nil {
		tb.Fatal(err)
	}
	ws, err := db.CreateWorkspace(ctx, db.Writer(), store.Workspace{OwnerUserID: u.ID, Name: "ws"})
	if err != nil {
		tb.Fatal(err)
	}
	return ws.ID
}

func (b *bundle) grant(tb testing.TB, n int64) {
	tb.Helper()
	if err := b.svc.Ledger.Grant(tb.Context(), b.db.Writer(), b.ws, n, "", "test"); err != nil {
		tb.Fatal(err)
	}
}

// prompts is an Input of n numbered prompts.
func prompts(n int) batch.Input {
	return batch.InputFunc(func() (batch.RowSource, error) { return &numbered{n: n}, nil })
}

type numbered struct{ n, next int }

func (p *numbered) Next() (input.Row, error) {
	if p.next >= p.n {
		return input.Row{}, io.EOF
	}
	p.next++
	return input.Row{File: "test", Line: p.next, Values: map[string]string{"prompt": fmt.Sprintf("image %d", p.next)}}, nil
}

func (b *bundle) spec() batch.Spec {
	return batch.Spec{WorkspaceID: b.ws, Name: "test", Plan: batch.Config{Defaults: batch.Defaults{Size: "16x16"}}}
}

// account returns the workspace's credits, after checking that they add
// up.
func (b *bundle) account(tb testing.TB) ledger.Account {
	tb.Helper()
	if err := b.svc.Ledger.Verify(tb.Context(), b.db.Reader(), b.ws); err != nil {
		tb.Error(err)
	}
	acc, err := b.svc.Ledger.Account(tb.Context(), b.db.Reader(), b.ws)
	if err != nil {
		tb.Fatal(err)
	}
	return acc
}

// rowCounts counts the rows of the tables a Create writes.
func (b *bundle) rowCounts(tb testing.TB) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, table := range []string{"batches", "items", "river_job", "ledger_entries"} {
		var n int64
		if err := b.db.Reader().QueryRowContext(tb.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func TestCreateReservesAndQueues(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 499, 500, 501, 1234} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.grant(t, 10_000)
			created, err := b.svc.Create(t.Context(), b.spec(), prompts(n))
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			bt := created.Batch
			if bt.TotalCount != int64(n) || bt.CostEstimate != int64(3*n) || bt.Reserved != int64(3*n) || bt.Submitting {
				t.Errorf("batch %+v, want %d images reserving %d credits", bt, n, 3*n)
			}
			st, err := b.svc.Get(t.Context(), b.ws, bt.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != store.BatchQueued || st.Counts[store.ItemPending] != int64(n) || st.Reserved != int64(3*n) {
				t.Errorf("status %s, counts %v, reserved %d", st.Status, st.Counts, st.Reserved)
			}
			if acc := b.account(t); acc.Balance != int64(10_000-3*n) || acc.Reserved != int64(3*n) {
				t.Errorf("balance %d reserved %d, want %d and %d", acc.Balance, acc.Reserved, 10_000-3*n, 3*n)
			}
			// Every item has its own job, on the preview queue, in input
			// order.
			items, err := b.db.ListItems(t.Context(), b.db.Reader(), b.ws, store.ItemFilter{BatchID: bt.ID}, 0, 5000)
			if err != nil {
				t.Fatal(err)
			}
			jobs := map[int64]bool{}
			for i, it := range items {
				if it.JobID == 0 || jobs[it.JobID] {
					t.Fatalf("item %d: job %d (missing or shared)", it.ID, it.JobID)
				}
				jobs[it.JobID] = true
				if it.Prompt != fmt.Sprintf("image %d", i+1) || it.RemoteModel != "preview" {
					t.Errorf("item %d: prompt %q remote model %q", i, it.Prompt, it.RemoteModel)
				}
			}
			if got := b.rowCounts(t); got["items"] != int64(n) || got["river_job"] != int64(n) {
				t.Errorf("rows %v, want %d items and jobs", got, n)
			}
		})
	}
}

func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		grant    int64
		quota    int64
		maxCost  int64
		images   int
		wantCode string
		details  map[string]any
	}{
		{name: "not enough credits", grant: 20, images: 10, wantCode: "insufficient_credits",
			details: map[string]any{"needed": int64(30), "available": int64(20), "shortfall": int64(10)}},
		{name: "over max_cost", grant: 1000, maxCost: 29, images: 10, wantCode: "over_budget",
			details: map[string]any{"estimate": int64(30), "max_cost": int64(29)}},
		{name: "over the monthly quota", grant: 1000, quota: 25, images: 10, wantCode: "insufficient_credits",
			details: map[string]any{"needed": int64(30), "available": int64(25), "quota": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.grant(t, tt.grant)
			if tt.quota > 0 {
				if err := b.db.SetCreditLimits(t.Context(), b.db.Writer(), b.ws, false, tt.quota); err != nil {
					t.Fatal(err)
				}
			}
			before := b.rowCounts(t)
			spec := b.spec()
			spec.MaxCost = tt.maxCost
			_, err := b.svc.Create(t.Context(), spec, prompts(tt.images))
			be, ok := batch.AsError(err)
			if !ok || be.Kind != batch.Payment || be.Code != tt.wantCode {
				t.Fatalf("Create = %v, want a Payment error %s", err, tt.wantCode)
			}
			got := fmt.Sprint(be.Details)
			for k, v := range tt.details {
				if !strings.Contains(got, fmt.Sprintf("%s:%v", k, v)) {
					t.Errorf("details %s lack %s:%v", got, k, v)
				}
			}
			if after := b.rowCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("rows before %v, after %v: a refused batch wrote something", before, after)
			}
			if acc := b.account(t); acc.Balance != tt.grant || acc.Reserved != 0 {
				t.Errorf("balance %d reserved %d, want %d and 0", acc.Balance, acc.Reserved, tt.grant)
			}
		})
	}
}

// TestCreateFreeNeverRefused: the preview engine costs nothing, so an
// empty workspace can always rehearse on it.
func TestCreateFreeNeverRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.svc.Catalog = catalog.Default() // preview at its real price, 0
	created, err := b.svc.Create(t.Context(), b.spec(), prompts(5))
	if err != nil {
		t.Fatalf("Create with no credits on the free engine: %v", err)
	}
	if created.Batch.Reserved != 0 || created.Batch.TotalCount != 5 {
		t.Errorf("batch %+v", created.Batch)
	}
	if acc := b.account(t); acc.Balance != 0 {
		t.Errorf("balance %d, want 0", acc.Balance)
	}
}

// TestCreateDefaultModel: a row without a model runs on the service's
// default (preview when no provider is configured, as in the CLI), and
// without one the row is refused with a message that names no CLI flag.
func TestCreateDefaultModel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.grant(t, 100)
	if _, err := b.svc.Create(t.Context(), b.spec(), prompts(1)); err != nil {
		t.Fatalf("Create with the default model: %v", err)
	}
	b.svc.DefaultModel = ""
	_, err := b.svc.Create(t.Context(), b.spec(), prompts(1))
	be, ok := batch.AsError(err)
	if !ok || be.Code != "no_valid_rows" {
		t.Fatalf("Create without a model = %v, want no_valid_rows", err)
	}
	if msg := fmt.Sprint(be.Details); !strings.Contains(msg, "no model given") || strings.Contains(msg, "--") {
		t.Errorf("problems %s: want a field-neutral message", msg)
	}
}

// TestRepairRemovesAbandonedSubmission: a batch left half written by a
// Create that died is removed, and an active batch whose items lack jobs
// (a crash between chunks of jobs) gets them.
func TestRepair(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.grant(t, 10_000)
	ctx := t.Context()
	created, err := b.svc.Create(ctx, b.spec(), prompts(600))
	if err != nil {
		t.Fatal(err)
	}
	// A crash after the first chunk of jobs: the rest have none.
	if _, err := b.db.Writer().ExecContext(ctx, `DELETE FROM river_job WHERE id IN (SELECT job_id FROM items WHERE id > (SELECT MIN(id) + 99 FROM items))`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Writer().ExecContext(ctx, `UPDATE items SET job_id = NULL WHERE id > (SELECT MIN(id) + 99 FROM items)`); err != nil {
		t.Fatal(err)
	}
	// And a batch whose Create died half way, long ago.
	half, err := b.db.CreateBatch(ctx, b.db.Writer(), store.Batch{WorkspaceID: b.ws, Name: "half", Submitting: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.InsertItems(ctx, b.db.Writer(), []store.Item{{BatchID: half.ID, WorkspaceID: b.ws, Prompt: "x", Name: "x"}}); err != nil {
		t.Fatal(err)
	}
	age := `UPDATE batches SET created_at = ? WHERE id = ?`
	if b.db.Dialect() == store.Postgres {
		age = `UPDATE batches SET created_at = $1 WHERE id = $2`
	}
	if _, err := b.db.Writer().ExecContext(ctx, age, time.Now().Add(-2*batch.AbandonAfter).UTC().Format("2006-01-02 15:04:05.000000"), half.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Repair(ctx); err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if _, err := b.db.GetBatchByID(ctx, b.db.Reader(), half.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("abandoned batch: %v, want it gone", err)
	}
	if got := b.rowCounts(t); got["items"] != 600 || got["river_job"] != 600 {
		t.Errorf("rows after repair %v, want 600 items with 600 jobs", got)
	}
	// Running it again queues nothing more.
	if err := b.svc.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.rowCounts(t); got["river_job"] != 600 {
		t.Errorf("jobs after a second repair: %d, want 600", got["river_job"])
	}
	if st, err := b.svc.Get(ctx, b.ws, created.Batch.ID); err != nil || st.Counts[store.ItemPending] != 600 {
		t.Errorf("batch after repair: %+v, %v", st, err)
	}
}

// TestCancelPauseResume: cancel deletes the pending items' jobs and
// releases their credits; pause deletes the jobs and keeps the credits;
// resume queues each item again, once.
func TestCancelPauseResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.grant(t, 10_000)
	ctx := t.Context()
	created, err := b.svc.Create(ctx, b.spec(), prompts(700))
	if err != nil {
		t.Fatal(err)
	}
	id := created.Batch.ID
	st, err := b.svc.Pause(ctx, b.ws, id)
	if err != nil || st.Status != store.BatchPaused {
		t.Fatalf("Pause = %+v, %v", st, err)
	}
	if got := b.rowCounts(t); got["river_job"] != 0 {
		t.Errorf("%d jobs after pause, want 0", got["river_job"])
	}
	if acc := b.account(t); acc.Reserved != 2100 {
		t.Errorf("reserved %d after pause, want 2100", acc.Reserved)
	}
	for range 2 {
		if _, err := b.svc.Pause(ctx, b.ws, id); err == nil {
			break // the second round: pausing a paused batch
		}
		if st, err = b.svc.Resume(ctx, b.ws, id); err != nil || st.Status != store.BatchQueued {
			t.Fatalf("Resume = %+v, %v", st, err)
		}
		if got := b.rowCounts(t); got["river_job"] != 700 {
			t.Errorf("%d jobs after resume, want 700", got["river_job"])
		}
	}
	st, err = b.svc.Cancel(ctx, b.ws, id)
	if err != nil || st.Status != store.BatchCanceled || st.Counts[store.ItemCanceled] != 700 {
		t.Fatalf("Cancel = %+v, %v", st, err)
	}
	if got := b.rowCounts(t); got["river_job"] != 0 {
		t.Errorf("%d jobs after cancel, want 0", got["river_job"])
	}
	if acc := b.account(t); acc.Balance != 10_000 || acc.Reserved != 0 {
		t.Errorf("balance %d reserved %d after cancel, want 10000 and 0", acc.Balance, acc.Reserved)
	}
	if _, err := b.svc.Cancel(ctx, b.ws, id); !isConflict(err) {
		t.Errorf("second cancel: %v, want a conflict", err)
	}
	// Another workspace sees none of it.
	other := newWorkspace(t, b.db, "other@example.com")
	for name, act := range map[string]func(context.Context, int64, int64) (batch.Status, error){
		"get": b.svc.Get, "cancel": b.svc.Cancel, "pause": b.svc.Pause, "resume": b.svc.Resume, "retry": b.svc.Retry,
	} {
		if _, err := act(ctx, other, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s from another workspace: %v, want not found", name, err)
		}
	}
	if err := b.svc.Delete(ctx, other, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete from another workspace: %v, want not found", err)
	}
}

func isConflict(err error) bool {
	be, ok := batch.AsError(err)
	return ok && be.Kind == batch.Conflict
}

// BenchmarkCreate measures Create of a 5,000-image batch: planning twice,
// items and jobs written in chunks, the reservation.
func BenchmarkCreate(b *testing.B) {
	bd := setup(b)
	bd.grant(b, 1<<40)
	b.ResetTimer()
	for b.Loop() {
		if _, err := bd.svc.Create(b.Context(), bd.spec(), prompts(5000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*5000), "µs/image")
}
