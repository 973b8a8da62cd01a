package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"bulkgen/internal/app"
	"bulkgen/internal/config"
)

const workerUsage = `Usage: bulkgen worker [flags]

Runs image workers only (no HTTP), for extra capacity next to bulkgen serve.
It must see the same database (--db postgres://… for workers on other
machines) and the same image folder (--data) as the server.

Settings come from flags, then BULKGEN_* variables, then the --config file,
then the defaults shown:

`

func cmdWorker(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	cfg, err := loadConfig(config.Worker, "worker", workerUsage, args, getenv, stderr)
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
	if err := a.StartWorkers(ctx); err != nil {
		return err
	}
	stopSweep := a.StartBlobSweep(ctx)
	defer stopSweep()
	fmt.Fprintln(stderr, "bulkgen: worker started")
	logger.InfoContext(ctx, "worker started", "config", *cfg, "version", version())
	<-ctx.Done()
	stop()
	logger.InfoContext(context.Background(), "shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	a.StopWorkers(shutdownCtx)
	return nil
}
