package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"bulkgen/internal/config"
	"bulkgen/internal/store"
)

const migrateUsage = `Usage: bulkgen migrate [flags]

Applies the database migrations (bulkgen's own, then River's queue tables)
and prints each one it applied. Safe to run while servers are up and from
several machines at once. bulkgen serve and worker migrate on start unless
given --no-migrate.

`

func cmdMigrate(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(config.Migrate, "migrate", migrateUsage, args, getenv, stderr)
	if err != nil || cfg == nil {
		return err
	}
	logger := cfg.Logger(stderr)
	applied := &appliedPrinter{next: logger.Handler(), out: stdout, n: new(int)}
	db, err := store.Open(ctx, cfg.DatabaseDSN(), slog.New(applied))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if *applied.n == 0 {
		fmt.Fprintln(stdout, "database is up to date; nothing applied")
	}
	return nil
}

// appliedPrinter is a slog handler that prints the store's "migration
// applied" records (debug records, so whatever the log level) as plain
// lines on out, counting them, and passes the other records on to next. The
// store's "database migrated" summary is dropped: the lines say it all.
type appliedPrinter struct {
	next slog.Handler
	out  io.Writer
	n    *int // shared with the handlers WithAttrs and WithGroup derive
}

func (h *appliedPrinter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelDebug || h.next.Enabled(ctx, l)
}

func (h *appliedPrinter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "database migrated" {
		return nil
	}
	if r.Message == "migration applied" || r.Message == "river migration applied" {
		var version, name string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "version":
				version = a.Value.String()
			case "name":
				name = a.Value.String()
			}
			return true
		})
		what := "bulkgen"
		if r.Message == "river migration applied" {
			what = "river"
		}
		fmt.Fprintf(h.out, "applied %s migration %s %s\n", what, version, name)
		*h.n++
		return nil
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *appliedPrinter) WithAttrs(as []slog.Attr) slog.Handler {
	return &appliedPrinter{next: h.next.WithAttrs(as), out: h.out, n: h.n}
}

func (h *appliedPrinter) WithGroup(name string) slog.Handler {
	return &appliedPrinter{next: h.next.WithGroup(name), out: h.out, n: h.n}
}
