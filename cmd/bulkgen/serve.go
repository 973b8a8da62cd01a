package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"bulkgen/internal/auth"
	"bulkgen/internal/batch"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/blobgc"
	"bulkgen/internal/catalog"
	"bulkgen/internal/config"
	"bulkgen/internal/generate"
	"bulkgen/internal/metrics"
	"bulkgen/internal/provider/registry"
	"bulkgen/internal/queue"
	"bulkgen/internal/server"
	"bulkgen/internal/store"
)

const serveUsage = `Usage: bulkgen serve [flags]

Runs the web service: the REST API (/api/v1), the OpenAI-compatible endpoint
(/v1/images/generations), health (/healthz, /readyz), metrics (/metrics) and the
image workers, on SQLite in the data folder unless --db names PostgreSQL.

On first start with an empty database it creates an admin user and prints an
API token for it once on stdout (its email: BULKGEN_ADMIN_EMAIL, default
admin@localhost). More tokens: bulkgen admin create-token --name NAME.
Providers are enabled by their keys in the environment (see bulkgen models).

Settings come from flags, then BULKGEN_* variables, then the --config file,
then the defaults shown:

`

func cmdServe(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(config.Serve, "serve", serveUsage, args, getenv, stderr)
	if err != nil || cfg == nil {
		return err
	}
	logger := cfg.Logger(stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := openApp(ctx, *cfg, getenv, logger, true)
	if err != nil {
		return err
	}
	defer a.close()
	if err := bootstrapAdmin(ctx, a.db, getenv, stdout, stderr); err != nil {
		return err
	}

	srv := server.New(server.Deps{DB: a.db, Logger: logger, Ext: server.Extra{
		Catalog:        a.cat,
		Blobs:          a.blobs,
		Submitter:      a.submitter,
		River:          a.river,
		Available:      a.reg.Available,
		Metrics:        a.metrics,
		MaxUploadBytes: cfg.MaxUploadBytes,
		UploadDir:      a.uploadDir,
		URLKey:         urlKey(cfg.URLKey),
	}})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests outlive the signal context, so that a shutdown lets
		// them finish rather than cancelling them at once.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := a.river.Start(context.WithoutCancel(ctx)); err != nil {
		_ = ln.Close()
		return fmt.Errorf("start workers: %w", err)
	}
	stopSweep := a.startBlobSweep(ctx, *cfg, logger)
	defer stopSweep()
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	// Scripts and tests read the bound address from this line (with
	// --addr 127.0.0.1:0 the port is chosen by the system).
	fmt.Fprintf(stderr, "bulkgen: listening on http://%s\n", ln.Addr())
	logger.InfoContext(ctx, "serving", "addr", ln.Addr().String(), "config", *cfg, "version", version())

	var runErr error
	select {
	case <-ctx.Done():
		logger.InfoContext(ctx, "shutting down", "timeout", cfg.ShutdownTimeout)
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	stop() // a second signal now kills the process the default way
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.WarnContext(shutdownCtx, "http requests still running at the deadline", "err", err)
		_ = httpSrv.Close()
	}
	stopWorkers(shutdownCtx, a.river, logger)
	return runErr
}

// loadConfig parses a command's flags and builds its Config. It returns a
// nil Config (and nil error) when help was asked for.
func loadConfig(cmd config.Command, name, usage string, args []string, getenv env, stderr io.Writer) (*config.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := config.Bind(fs, cmd)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		config.PrintOptions(stderr, cmd)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bulkgen %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, errUsage
	}
	cfg, err := f.Load(getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return &cfg, nil
}

// app is what serve and worker share: the database, the image store, the
// providers and the queue client with the image worker registered.
type app struct {
	db        *store.DB
	blobs     *fileblob.Store
	cat       *catalog.Catalog
	reg       *registry.Registry
	metrics   *metrics.Metrics
	river     *river.Client[*sql.Tx]
	submitter *batch.Submitter
	uploadDir string
}

// openApp opens the database (migrating it unless cfg.NoMigrate), the
// image folder, the provider registry and the River client.
func openApp(ctx context.Context, cfg config.Config, getenv env, logger *slog.Logger, migrate bool) (a *app, err error) {
	a = &app{}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if a.db, err = store.Open(ctx, cfg.DatabaseDSN(), logger); err != nil {
		return nil, err
	}
	if migrate && !cfg.NoMigrate {
		if err := a.db.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	if a.blobs, err = fileblob.New(cfg.ImageDir()); err != nil {
		return nil, err
	}
	a.uploadDir = filepath.Join(cfg.DataDir, "uploads")
	if err := os.MkdirAll(a.uploadDir, 0o750); err != nil {
		return nil, fmt.Errorf("create upload folder: %w", err)
	}
	if a.cat, err = loadCatalog(cfg.Catalog); err != nil {
		return nil, err
	}
	if a.reg, err = registry.Build(registry.Config{Getenv: getenv, Catalog: a.cat}); err != nil {
		return nil, err
	}
	a.metrics = metrics.New()
	worker := &generate.ImageWorker{
		DB: a.db, Blobs: a.blobs, Catalog: a.cat, Logger: logger, Observer: a.metrics,
		Generator:  &generate.Generator{Providers: a.reg, Limits: a.reg.Limits()},
		JobTimeout: cfg.JobTimeout,
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	a.river, err = queue.New(ctx, a.db, queue.Config{
		Queues:               providerQueues(a.cat, cfg.Workers),
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
	}, workers, logger)
	if err != nil {
		return nil, err
	}
	a.submitter = &batch.Submitter{DB: a.db, River: a.river}
	return a, nil
}

// startBlobSweep starts removing, every cfg.BlobSweepInterval, the image
// files that a process which died between writing and recording them left
// behind (blobgc). The returned function ends the sweep and waits for it,
// so that it never outlives the database and folder it uses.
func (a *app) startBlobSweep(ctx context.Context, cfg config.Config, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		blobgc.Run(ctx, cfg.BlobSweepInterval, a.db, a.blobs, sweepGrace(cfg), logger)
	}()
	return func() {
		cancel()
		<-done
	}
}

// sweepGrace is how old an unrecorded image file must be before the sweep
// deletes it: older than any image job can be between writing its file and
// committing its row. A job is cancelled at job-timeout (twice that leaves
// room for a slow commit) and presumed dead only at rescue-after.
func sweepGrace(cfg config.Config) time.Duration {
	return max(blobgc.DefaultGrace, 2*cfg.JobTimeout, cfg.RescueAfter)
}

func (a *app) close() {
	if a.blobs != nil {
		_ = a.blobs.Close()
	}
	if a.db != nil {
		_ = a.db.Close()
	}
}

// defaultProviderWorkers is the concurrency of a provider whose catalogue
// entry sets none (the preview engine, self-hosted servers without a
// limit): the rate budget still applies on top of it.
const defaultProviderWorkers = 8

// workerHeadroom is how many image jobs a provider's queue runs beyond
// the provider's concurrency. A job spends a few milliseconds on the
// database before and after its call (more while the database is busy);
// with exactly as many jobs as the provider allows calls, those
// milliseconds left the provider's slots idle, about 5% of them at 200 ms
// calls (`bulkgen bench serve`). The extra jobs wait for a slot in the rate
// budget, which still bounds the calls in flight.
func workerHeadroom(concurrency int) int { return max(2, concurrency/2) }

// providerQueues gives every provider of the catalogue its own queue, with
// workers jobs at once (0: the provider's catalogue concurrency plus
// headroom, see workerHeadroom).
func providerQueues(cat *catalog.Catalog, workers int) map[string]queue.Queue {
	qs := map[string]queue.Queue{}
	for _, p := range cat.Providers() {
		n := workers
		if n == 0 && p.Concurrency > 0 {
			n = p.Concurrency + workerHeadroom(p.Concurrency)
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

// stopWorkers stops fetching jobs and lets those in flight finish until
// ctx's deadline, then cancels the rest: a cancelled image job hands itself
// back to the queue (generate.ImageWorker), so nothing is lost.
func stopWorkers(ctx context.Context, client *river.Client[*sql.Tx], logger *slog.Logger) {
	err := client.Stop(ctx)
	if err == nil {
		logger.InfoContext(ctx, "workers stopped")
		return
	}
	logger.WarnContext(ctx, "image jobs still running at the shutdown deadline; cancelling them", "err", err)
	hard, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.StopAndCancel(hard); err != nil {
		logger.ErrorContext(hard, "workers did not stop", "err", err)
	}
}

func urlKey(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// defaultAdminEmail is the first admin's address unless BULKGEN_ADMIN_EMAIL
// names another.
const defaultAdminEmail = "admin@localhost"

func adminEmail(getenv env) string {
	if e := getenv("BULKGEN_ADMIN_EMAIL"); e != "" {
		return e
	}
	return defaultAdminEmail
}

// bootstrapAdmin creates the first admin, its workspace and an API token
// when the database has no user yet, and prints the token once on stdout.
func bootstrapAdmin(ctx context.Context, db *store.DB, getenv env, stdout, stderr io.Writer) error {
	n, err := db.CountUsers(ctx, db.Reader())
	if err != nil || n > 0 {
		return err
	}
	email := adminEmail(getenv)
	u, ws, err := ensureAdmin(ctx, db, email)
	if errors.Is(err, store.ErrConflict) {
		return nil // another process started at the same moment and made it
	}
	if err != nil {
		return err
	}
	plain, err := createToken(ctx, db, u, ws, "first start")
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bulkgen: first start: created the admin user %s (workspace %q).\n", u.Email, ws.Name)
	fmt.Fprintf(stderr, "bulkgen: its API token is printed below, ONCE; store it now. More tokens: bulkgen admin create-token --name NAME\n")
	fmt.Fprintf(stdout, "admin API token: %s\n", plain)
	return nil
}

// ensureAdmin returns the admin user with email and its personal
// workspace, creating either when missing and promoting an existing user.
func ensureAdmin(ctx context.Context, db *store.DB, email string) (store.User, store.Workspace, error) {
	var u store.User
	var ws store.Workspace
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = db.GetUserByEmail(ctx, tx, email)
		switch {
		case errors.Is(err, store.ErrNotFound):
			u, err = db.CreateUser(ctx, tx, store.User{Email: email, Name: "Administrator", Role: store.RoleAdmin})
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case u.Role != store.RoleAdmin:
			if err := db.SetUserRole(ctx, tx, u.ID, store.RoleAdmin); err != nil {
				return err
			}
			u.Role = store.RoleAdmin
		}
		wss, err := db.ListWorkspacesByOwner(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		if len(wss) > 0 {
			ws = wss[0]
			return nil
		}
		ws, err = db.CreateWorkspace(ctx, tx, store.Workspace{OwnerUserID: u.ID, Name: "Personal"})
		return err
	})
	return u, ws, err
}

// createToken stores a new API token for u in ws and returns its
// plaintext, which exists nowhere else.
func createToken(ctx context.Context, db *store.DB, u store.User, ws store.Workspace, name string) (string, error) {
	plain, hash, display := auth.NewToken()
	if _, err := db.CreateAPIToken(ctx, db.Writer(), store.APIToken{
		UserID: u.ID, WorkspaceID: ws.ID, Name: name, TokenHash: hash, Prefix: display,
	}); err != nil {
		return "", err
	}
	return plain, nil
}
