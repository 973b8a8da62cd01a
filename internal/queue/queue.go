// Package queue builds the River client that runs bulkgen's durable jobs:
// the driver for the database's dialect, one queue per provider with its own
// concurrency, and defaults chosen for image jobs (attempts, timeout, stuck
// job rescue, a capped backoff, fast fetching).
//
// Job kinds and their workers live with the features that own them
// (generate, mail, privacy, export); the caller registers them on a
// *river.Workers and passes it to New.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"bulkgen/internal/store"
)

// Default values for the zero fields of Config.
const (
	// DefaultQueueMaxWorkers is the concurrency of River's "default" queue
	// (mail, exports, purges) when Config.Queues does not set it.
	DefaultQueueMaxWorkers = 4

	// DefaultFetchCooldown and DefaultFetchPollInterval replace River's
	// 100 ms and 1 s: with few workers River's throughput is about workers
	// per cooldown, and on SQLite (and database/sql on PostgreSQL) there is
	// no LISTEN/NOTIFY, so the poll interval is also the pick-up latency.
	DefaultFetchCooldown     = 20 * time.Millisecond
	DefaultFetchPollInterval = 200 * time.Millisecond

	// DefaultJobTimeout bounds one run of a job whose worker sets no
	// Timeout; River's default is 1 minute, too short for some models.
	DefaultJobTimeout = 3 * time.Minute

	// DefaultRescueStuckJobsAfter replaces River's 1 hour: a job whose node
	// died is retried after minutes, not an hour.
	DefaultRescueStuckJobsAfter = 5 * time.Minute
)

// Config configures New. Zero fields take the Default values above.
type Config struct {
	// Queues maps a queue name (one per provider, e.g. "openai") to its
	// settings. River's "default" queue is added when missing.
	Queues map[string]Queue

	// FetchCooldown is the least time between two fetches of a queue.
	FetchCooldown time.Duration

	// FetchPollInterval is the longest time between two fetches of a
	// queue; must not be below FetchCooldown.
	FetchPollInterval time.Duration

	// JobTimeout is the default per-run timeout; a worker's Timeout
	// method overrides it for its kind.
	JobTimeout time.Duration

	// RescueStuckJobsAfter is how long a job may stay running before
	// River assumes its node died and retries it. Must exceed JobTimeout.
	RescueStuckJobsAfter time.Duration

	// MaxAttempts is the number of runs before a job is discarded, and
	// Retry the backoff between failed attempts. Both are required unless
	// InsertOnly: River's own defaults (25 attempts, attempt^4 backoff,
	// about 20 days in all) are wrong for image jobs, whose policy is
	// generate.Policy. (The batch service also sets each image job's
	// MaxAttempts when it inserts it, so an insert-only client needs
	// neither.)
	MaxAttempts int
	Retry       river.ClientRetryPolicy

	// InsertOnly builds a client that inserts jobs but never works them,
	// for API-only nodes. Start must not be called on it.
	InsertOnly bool

	// TestOnly turns off River's start-up jitter so tests start fast.
	TestOnly bool
}

// Queue configures one queue.
type Queue struct {
	// MaxWorkers is how many of the queue's jobs run at once in this
	// process; it must be at least 1.
	MaxWorkers int
}

// New builds a River client on db: River's SQLite driver on the single
// writer connection for SQLite, its database/sql driver over pgx for
// PostgreSQL. Both give a *river.Client[*sql.Tx], so jobs are inserted with
// InsertTx / InsertManyTx in the same *sql.Tx as the rows they belong to.
//
// workers may be nil only when cfg.InsertOnly is set. The client is not
// started; the caller calls Start and, at shutdown, Stop before closing db.
// River's tables must exist (store.DB.Migrate).
func New(ctx context.Context, db *store.DB, cfg Config, workers *river.Workers, logger *slog.Logger) (*river.Client[*sql.Tx], error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := db.Writer().PingContext(ctx); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}

	var driver riverdriver.Driver[*sql.Tx]
	switch db.Dialect() {
	case store.SQLite:
		// River's SQLite driver needs a single connection, which the
		// store's writer pool is.
		driver = riversqlite.New(db.Writer())
	case store.Postgres:
		driver = riverdatabasesql.New(db.Writer())
	default:
		return nil, fmt.Errorf("queue: unsupported dialect %q", db.Dialect())
	}

	rc, err := riverConfig(cfg, workers, logger)
	if err != nil {
		return nil, err
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("queue: new river client: %w", err)
	}
	return client, nil
}

// riverConfig turns cfg into River's Config, applying the defaults.
func riverConfig(cfg Config, workers *river.Workers, logger *slog.Logger) (*river.Config, error) {
	withDefault := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	rc := &river.Config{
		FetchCooldown:        withDefault(cfg.FetchCooldown, DefaultFetchCooldown),
		FetchPollInterval:    withDefault(cfg.FetchPollInterval, DefaultFetchPollInterval),
		JobTimeout:           withDefault(cfg.JobTimeout, DefaultJobTimeout),
		RescueStuckJobsAfter: withDefault(cfg.RescueStuckJobsAfter, DefaultRescueStuckJobsAfter),
		MaxAttempts:          cfg.MaxAttempts,
		RetryPolicy:          cfg.Retry,
		Logger:               logger,
		TestOnly:             cfg.TestOnly,
		Workers:              workers,
	}
	if rc.FetchPollInterval < rc.FetchCooldown {
		return nil, fmt.Errorf("queue: FetchPollInterval %s is below FetchCooldown %s", rc.FetchPollInterval, rc.FetchCooldown)
	}
	if rc.JobTimeout > 0 && rc.RescueStuckJobsAfter <= rc.JobTimeout {
		return nil, fmt.Errorf("queue: RescueStuckJobsAfter %s must exceed JobTimeout %s", rc.RescueStuckJobsAfter, rc.JobTimeout)
	}
	if cfg.InsertOnly {
		// No Queues: River then inserts but never fetches.
		return rc, nil
	}
	if cfg.MaxAttempts < 1 || cfg.Retry == nil {
		return nil, errors.New("queue: MaxAttempts and Retry are required for a client that works jobs")
	}
	if workers == nil {
		return nil, errors.New("queue: workers are required unless InsertOnly is set")
	}
	queues := maps.Clone(cfg.Queues)
	if queues == nil {
		queues = map[string]Queue{}
	}
	if _, ok := queues[river.QueueDefault]; !ok {
		queues[river.QueueDefault] = Queue{MaxWorkers: DefaultQueueMaxWorkers}
	}
	rc.Queues = make(map[string]river.QueueConfig, len(queues))
	for name, q := range queues {
		if q.MaxWorkers < 1 {
			return nil, fmt.Errorf("queue: queue %q: MaxWorkers %d, want at least 1", name, q.MaxWorkers)
		}
		rc.Queues[name] = river.QueueConfig{MaxWorkers: q.MaxWorkers}
	}
	return rc, nil
}
