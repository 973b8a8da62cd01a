// Package app assembles bulkgen's server-side process from its
// configuration: the database, the image store, the model catalogue and
// providers, the queue with the image worker, and the HTTP handler. It is
// the wiring that `bulkgen serve`, `bulkgen worker` and the benchmark tool
// (cmd/bulkgen-bench) share, so that a benchmark measures exactly what the
// service runs. It holds no logic of its own beyond choosing defaults.
package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"

	"bulkgen/internal/batch"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/blobgc"
	"bulkgen/internal/catalog"
	"bulkgen/internal/config"
	"bulkgen/internal/generate"
	"bulkgen/internal/ledger"
	"bulkgen/internal/metrics"
	"bulkgen/internal/provider/registry"
	"bulkgen/internal/queue"
	"bulkgen/internal/ratelimit"
	"bulkgen/internal/server"
	"bulkgen/internal/store"
)

// Options are what Open takes besides the configuration.
type Options struct {
	// Getenv reads the process environment (provider keys); nil reads
	// nothing.
	Getenv func(string) string
	// Logger may be nil (no logs).
	Logger *slog.Logger
	// Migrate applies the migrations on open unless the configuration says
	// NoMigrate.
	Migrate bool

	// The fields below tune the queue for benchmarks; zero values keep the
	// service's defaults.

	// Limits replaces the providers' rate budgets.
	Limits map[string]ratelimit.Limits
	// FetchCooldown and FetchPollInterval are passed to queue.Config.
	FetchCooldown, FetchPollInterval time.Duration
}

// App is an opened process: every part, ready to serve and work.
type App struct {
	Config    config.Config
	Logger    *slog.Logger
	DB        *store.DB
	Blobs     *fileblob.Store
	Catalog   *catalog.Catalog
	Registry  *registry.Registry
	Metrics   *metrics.Metrics
	River     *river.Client[*sql.Tx]
	Ledger    *ledger.Ledger
	Batches   *batch.Service
	UploadDir string
}

// Open opens the database (migrating it when asked), the image folder,
// the provider registry and the River client with the image worker
// registered. The client is not started (StartWorkers). Close releases
// what Open opened, also after a failed Open.
func Open(ctx context.Context, cfg config.Config, opt Options) (a *App, err error) {
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	getenv := opt.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	a = &App{Config: cfg, Logger: logger}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.DB, err = store.Open(ctx, cfg.DatabaseDSN(), logger); err != nil {
		return nil, err
	}
	if opt.Migrate && !cfg.NoMigrate {
		if err := a.DB.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	if a.Blobs, err = fileblob.New(cfg.ImageDir()); err != nil {
		return nil, err
	}
	a.UploadDir = filepath.Join(cfg.DataDir, "uploads")
	if err := os.MkdirAll(a.UploadDir, 0o750); err != nil {
		return nil, fmt.Errorf("create upload folder: %w", err)
	}
	if a.Catalog, err = catalog.Open(cfg.Catalog); err != nil {
		return nil, err
	}
	if a.Registry, err = registry.Build(registry.Config{Getenv: getenv, Catalog: a.Catalog, Limits: opt.Limits}); err != nil {
		return nil, err
	}
	a.Metrics = metrics.New()
	a.Ledger = &ledger.Ledger{DB: a.DB}
	policy := generate.DefaultPolicy
	// The batch service queues jobs on the client that the worker it
	// settles through runs on: the client is built after the worker, and
	// handed to the service once it exists.
	a.Batches = &batch.Service{
		DB: a.DB, Ledger: a.Ledger, Catalog: a.Catalog, Available: a.Registry.Available,
		DefaultModel: a.Registry.DefaultModel(), Policy: policy, Logger: logger,
		Limits: batch.Limits{MaxImages: cfg.MaxBatchImages},
	}
	worker := &generate.ImageWorker{
		DB: a.DB, Blobs: a.Blobs, Catalog: a.Catalog, Logger: logger, Observer: a.Metrics,
		Generator:  &generate.Generator{Providers: a.Registry, Limits: a.Registry.Limits()},
		Settler:    a.Batches,
		Policy:     policy,
		JobTimeout: cfg.JobTimeout,
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	a.River, err = queue.New(ctx, a.DB, queue.Config{
		Queues:               ProviderQueues(a.Catalog, cfg.Workers),
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		FetchCooldown:        opt.FetchCooldown,
		FetchPollInterval:    opt.FetchPollInterval,
		MaxAttempts:          policy.MaxAttempts,
		Retry:                policy,
	}, workers, logger)
	if err != nil {
		return nil, err
	}
	a.Batches.Queue = a.River
	return a, nil
}

// Handler returns the HTTP surface of the service.
func (a *App) Handler() *server.Server {
	return server.New(server.Deps{DB: a.DB, Logger: a.Logger, Ext: server.Extra{
		Catalog:        a.Catalog,
		Blobs:          a.Blobs,
		Batches:        a.Batches,
		Ledger:         a.Ledger,
		Available:      a.Registry.Available,
		Metrics:        a.Metrics,
		MaxUploadBytes: a.Config.MaxUploadBytes,
		UploadDir:      a.UploadDir,
		URLKey:         urlKey(a.Config.URLKey),
	}})
}

// StartWorkers finishes what a process that died left half done (see
// batch.Service.Repair) and starts the queue's workers; they run until
// StopWorkers, not until ctx ends.
func (a *App) StartWorkers(ctx context.Context) error {
	if err := a.Batches.Repair(ctx); err != nil {
		return fmt.Errorf("repair batches: %w", err)
	}
	if err := a.River.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	return nil
}

// StopWorkers stops fetching jobs and lets those in flight finish until
// ctx's deadline, then cancels the rest: a cancelled image job hands itself
// back to the queue (generate.ImageWorker), so nothing is lost.
func (a *App) StopWorkers(ctx context.Context) {
	err := a.River.Stop(ctx)
	if err == nil {
		a.Logger.InfoContext(ctx, "workers stopped")
		return
	}
	a.Logger.WarnContext(ctx, "image jobs still running at the shutdown deadline; cancelling them", "err", err)
	hard, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.River.StopAndCancel(hard); err != nil {
		a.Logger.ErrorContext(hard, "workers did not stop", "err", err)
	}
}

// StartBlobSweep starts removing, every cfg.BlobSweepInterval, the image
// files that a process which died between writing and recording them left
// behind (blobgc). The returned function ends the sweep and waits for it,
// so that it never outlives the database and folder it uses.
func (a *App) StartBlobSweep(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		blobgc.Run(ctx, a.Config.BlobSweepInterval, a.DB, a.Blobs, SweepGrace(a.Config), a.Logger)
	}()
	return func() {
		cancel()
		<-done
	}
}

// SweepGrace is how old an unrecorded image file must be before the sweep
// deletes it: older than any image job can be between writing its file and
// committing its row. A job is cancelled at job-timeout (twice that leaves
// room for a slow commit) and presumed dead only at rescue-after.
func SweepGrace(cfg config.Config) time.Duration {
	return max(blobgc.DefaultGrace, 2*cfg.JobTimeout, cfg.RescueAfter)
}

// Close releases the image folder and the database.
func (a *App) Close() {
	if a.Blobs != nil {
		_ = a.Blobs.Close()
	}
	if a.DB != nil {
		_ = a.DB.Close()
	}
}

// defaultProviderWorkers is the concurrency of a provider whose catalogue
// entry sets none (the preview engine, self-hosted servers without a
// limit): the rate budget still applies on top of it.
const defaultProviderWorkers = 8

// WorkerHeadroom is how many image jobs a provider's queue runs beyond
// the provider's concurrency. A job spends a few milliseconds on the
// database before and after its call (more while the database is busy);
// with exactly as many jobs as the provider allows calls, those
// milliseconds left the provider's slots idle. The extra jobs wait for a
// slot in the rate budget, which still bounds the calls in flight.
func WorkerHeadroom(concurrency int) int { return max(2, concurrency/2) }

// ProviderQueues gives every provider of the catalogue its own queue, with
// workers jobs at once (0: the provider's catalogue concurrency plus
// headroom, see WorkerHeadroom).
func ProviderQueues(cat *catalog.Catalog, workers int) map[string]queue.Queue {
	qs := map[string]queue.Queue{}
	for _, p := range cat.Providers() {
		n := workers
		if n == 0 && p.Concurrency > 0 {
			n = p.Concurrency + WorkerHeadroom(p.Concurrency)
		}
		if n <= 0 {
			n = defaultProviderWorkers
		}
		qs[batch.QueueFor(p.Name)] = queue.Queue{MaxWorkers: n}
	}
	if _, ok := qs[batch.QueueFor("preview")]; !ok {
		qs[batch.QueueFor("preview")] = queue.Queue{MaxWorkers: max(workers, defaultProviderWorkers)}
	}
	return qs
}

func urlKey(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
