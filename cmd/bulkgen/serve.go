package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"bulkgen/internal/app"
	"bulkgen/internal/config"
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

	a, err := app.Open(ctx, *cfg, app.Options{Getenv: getenv, Logger: logger, Migrate: true})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := app.BootstrapAdmin(ctx, a.DB, adminEmail(getenv), stdout, stderr); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests outlive the signal context, so that a shutdown lets
		// them finish rather than cancelling them at once.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := a.StartWorkers(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	stopSweep := a.StartBlobSweep(ctx)
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
	a.StopWorkers(shutdownCtx)
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

// adminEmail is the first admin's address: BULKGEN_ADMIN_EMAIL or
// app.DefaultAdminEmail.
func adminEmail(getenv env) string {
	if e := getenv("BULKGEN_ADMIN_EMAIL"); e != "" {
		return e
	}
	return app.DefaultAdminEmail
}
