package queue_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/generate"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// testArgs is a job whose worker fails FailTimes times and snoozes
// SnoozeTimes times before it succeeds.
type testArgs struct {
	// Tag names the job for counting its runs. Not the job id: SQLite
	// hands a rolled back job's id to the next insert.
	Tag         string `json:"tag"`
	FailTimes   int    `json:"fail_times"`
	SnoozeTimes int    `json:"snooze_times"`
}

func (testArgs) Kind() string { return "queue_test" }

// testWorker counts runs per tag and, on success, records a user named
// after the tag through the store, as a real worker records its results on
// the same (on SQLite, single) writer connection River uses.
type testWorker struct {
	river.WorkerDefaults[testArgs]
	db *store.DB

	mu   sync.Mutex
	runs map[string]int
}

func (w *testWorker) Work(ctx context.Context, job *river.Job[testArgs]) error {
	w.mu.Lock()
	w.runs[job.Args.Tag]++
	n := w.runs[job.Args.Tag]
	w.mu.Unlock()
	switch {
	case n <= job.Args.SnoozeTimes:
		return river.JobSnooze(time.Millisecond)
	case n <= job.Args.SnoozeTimes+job.Args.FailTimes:
		return errors.New("planned failure")
	}
	return w.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := w.db.CreateUser(ctx, tx, store.User{Email: "done-" + job.Args.Tag})
		return err
	})
}

func (w *testWorker) runsOf(tag string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[tag]
}

type testBundle struct {
	db     *store.DB
	client *river.Client[*sql.Tx]
	worker *testWorker
	events <-chan *river.Event
	final  map[int64]*rivertype.JobRow // jobs seen finishing, by id
}

// setup starts a client with fast fetching and millisecond retries on a
// fresh database (SQLite, or PostgreSQL with BULKGEN_TEST_DATABASE_URL).
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := storetest.New(t)
	w := &testWorker{db: db, runs: map[string]int{}}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := queue.New(t.Context(), db, queue.Config{
		Queues:            map[string]queue.Queue{"preview": {MaxWorkers: 2}},
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		MaxAttempts:       5,
		Retry:             generate.Policy{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond},
		TestOnly:          true,
	}, workers, nil)
	if err != nil {
		t.Fatalf("queue.New: %v", err)
	}
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	t.Cleanup(cancel)
	if err := client.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &testBundle{db: db, client: client, worker: w, events: events, final: map[int64]*rivertype.JobRow{}}
}

// waitFinal waits for job id to complete or fail for good, and returns it.
func (b *testBundle) waitFinal(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	// A guard against a hang, not a timing assertion.
	deadline := time.After(20 * time.Second)
	for {
		if job, ok := b.final[id]; ok {
			return job
		}
		select {
		case ev := <-b.events:
			if ev.Job.State == rivertype.JobStateCompleted || ev.Job.State == rivertype.JobStateDiscarded {
				b.final[ev.Job.ID] = ev.Job
			}
		case <-deadline:
			t.Fatalf("job %d did not finish", id)
		}
	}
}

// insertWithUser inserts a user row and a job tagged with the user's email
// in one transaction, then commits or rolls back.
func (b *testBundle) insertWithUser(t *testing.T, email string, args testArgs, opts *river.InsertOpts, commit bool) int64 {
	t.Helper()
	args.Tag = email
	ctx := t.Context()
	var id int64
	errRollback := errors.New("roll back")
	err := b.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := b.db.CreateUser(ctx, tx, store.User{Email: email}); err != nil {
			return err
		}
		res, err := b.client.InsertTx(ctx, tx, args, opts)
		if err != nil {
			return err
		}
		id = res.Job.ID
		if !commit {
			return errRollback
		}
		return nil
	})
	if commit && err != nil {
		t.Fatalf("insert: %v", err)
	}
	if !commit && !errors.Is(err, errRollback) {
		t.Fatalf("insert error = %v, want the rollback", err)
	}
	return id
}

func TestCommittedJobRunsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.insertWithUser(t, "a@example.com", testArgs{}, &river.InsertOpts{Queue: "preview"}, true)

	job := b.waitFinal(t, id)
	if job.State != rivertype.JobStateCompleted || job.Attempt != 1 || job.Queue != "preview" {
		t.Errorf("job = state %s attempt %d queue %s; want completed on attempt 1 in preview", job.State, job.Attempt, job.Queue)
	}
	if n := b.worker.runsOf("a@example.com"); n != 1 {
		t.Errorf("worker ran %d times, want 1", n)
	}
	for _, email := range []string{"a@example.com", "done-a@example.com"} {
		if _, err := b.db.GetUserByEmail(ctx, b.db.Reader(), email); err != nil {
			t.Errorf("user inserted with or by the job: %v", err)
		}
	}
}

func TestRolledBackJobNeverRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.insertWithUser(t, "gone@example.com", testArgs{}, nil, false)

	if _, err := b.client.JobGet(ctx, id); !errors.Is(err, river.ErrNotFound) {
		t.Errorf("JobGet(rolled back) error = %v, want river.ErrNotFound", err)
	}
	if _, err := b.db.GetUserByEmail(ctx, b.db.Reader(), "gone@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("user of the rolled back transaction: error = %v, want ErrNotFound", err)
	}
	// A later job runs (the queue works) while the rolled back one never did.
	marker := b.insertWithUser(t, "marker@example.com", testArgs{}, nil, true)
	b.waitFinal(t, marker)
	if n := b.worker.runsOf("gone@example.com"); n != 0 {
		t.Errorf("rolled back job ran %d times, want 0", n)
	}
}

func TestSnoozeUsesNoAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insertWithUser(t, "s@example.com", testArgs{SnoozeTimes: 3}, &river.InsertOpts{MaxAttempts: 1}, true)

	// Three snoozes and one run with MaxAttempts 1: only possible if a
	// snooze does not use the attempt.
	job := b.waitFinal(t, id)
	if job.State != rivertype.JobStateCompleted || job.Attempt != 1 || len(job.Errors) != 0 {
		t.Errorf("job = state %s attempt %d errors %d; want completed on attempt 1 with no errors", job.State, job.Attempt, len(job.Errors))
	}
	if n := b.worker.runsOf("s@example.com"); n != 4 {
		t.Errorf("worker ran %d times, want 4 (3 snoozes + 1)", n)
	}
}

func TestFailedJobIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)

	tests := []struct {
		name         string
		args         testArgs
		opts         *river.InsertOpts
		wantState    rivertype.JobState
		wantAttempts int
	}{
		{"succeeds on the third run", testArgs{FailTimes: 2}, nil, rivertype.JobStateCompleted, 3},
		{"discarded after max attempts", testArgs{FailTimes: 100}, &river.InsertOpts{MaxAttempts: 3}, rivertype.JobStateDiscarded, 3},
		{"client default max attempts", testArgs{FailTimes: 100}, nil, rivertype.JobStateDiscarded, 5},
	}
	// All at once, so their retries overlap.
	ids := make([]int64, len(tests))
	for i, tt := range tests {
		ids[i] = b.insertWithUser(t, tagOf(i), tt.args, tt.opts, true)
	}
	for i, tt := range tests {
		email := tagOf(i)
		job := b.waitFinal(t, ids[i])
		if job.State != tt.wantState || job.Attempt != tt.wantAttempts {
			t.Errorf("%s: state %s attempt %d; want %s after %d", tt.name, job.State, job.Attempt, tt.wantState, tt.wantAttempts)
		}
		if n := b.worker.runsOf(email); n != tt.wantAttempts {
			t.Errorf("%s: worker ran %d times, want %d", tt.name, n, tt.wantAttempts)
		}
		if wantErrs := min(tt.args.FailTimes, tt.wantAttempts); len(job.Errors) != wantErrs {
			t.Errorf("%s: %d errors recorded, want %d", tt.name, len(job.Errors), wantErrs)
		}
	}
}

func tagOf(i int) string { return "r" + string(rune('a'+i)) + "@example.com" }

func TestInsertOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := storetest.New(t)
	client, err := queue.New(ctx, db, queue.Config{InsertOnly: true}, nil, nil)
	if err != nil {
		t.Fatalf("queue.New(InsertOnly): %v", err)
	}
	var id int64
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := client.InsertTx(ctx, tx, testArgs{}, &river.InsertOpts{MaxAttempts: 4})
		if err == nil {
			id = res.Job.ID
		}
		return err
	}); err != nil {
		t.Fatalf("InsertTx: %v", err)
	}
	job, err := client.JobGet(ctx, id)
	if err != nil {
		t.Fatalf("JobGet: %v", err)
	}
	if job.State != rivertype.JobStateAvailable || job.MaxAttempts != 4 {
		t.Errorf("job = state %s max attempts %d; want available with 4", job.State, job.MaxAttempts)
	}
	if err := client.Start(ctx); err == nil {
		_ = client.Stop(ctx)
		t.Errorf("Start on an insert-only client succeeded, want an error")
	}
}
