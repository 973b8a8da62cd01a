package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/app"
	"bulkgen/internal/batch"
	"bulkgen/internal/batchcheck"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/blobgc"
	"bulkgen/internal/config"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
)

const adminUsage = `Usage: bulkgen admin COMMAND [flags]

Commands:
  create-token --name NAME [--email EMAIL]   make an API token for an admin's workspace;
                                             prints the token alone on stdout:
                                             TOKEN=$(bulkgen admin create-token --name ci)
  create-admin --email EMAIL                 create an admin user with a personal workspace
                                             (or make an existing user an admin)
  resume-provider NAME                       resume a provider's queue, paused after its key
                                             was refused (fix the key first)
  credits show|grant|set [flags]             a workspace's credits: show them, grant some
                                             (--amount N), or set --unlimited and
                                             --monthly-quota (1 credit = $0.001); prints them
                                             as JSON with the ledger's check
  sweep-files [--older-than DURATION]        remove image files that no image references
                                             (left by a job killed between writing its file
                                             and recording it), and temporary files of
                                             interrupted writes, last written longer ago than
                                             DURATION (default 1h; serve and worker do this
                                             every --blob-sweep-interval); prints what it did
                                             as JSON

EMAIL defaults to BULKGEN_ADMIN_EMAIL or admin@localhost, the admin created on first start.
Every command also takes these settings:

`

func cmdAdmin(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, adminUsage)
		config.PrintOptions(stderr, config.Admin)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("admin "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := config.Bind(fs, config.Admin)
	fs.Usage = func() {
		fmt.Fprint(stderr, adminUsage)
		config.PrintOptions(stderr, config.Admin)
	}
	var name, email string
	var olderThan time.Duration
	cr := creditsFlags{quota: -1}
	switch sub {
	case "credits":
		fs.StringVar(&cr.email, "email", adminEmail(getenv), "the user whose personal workspace it is")
		fs.Int64Var(&cr.amount, "amount", 0, "credits to grant")
		fs.StringVar(&cr.note, "note", "", "why, kept with the grant")
		fs.StringVar(&cr.unlimited, "unlimited", "", "true: never refused for want of credits; false: limited to the balance")
		fs.Int64Var(&cr.quota, "monthly-quota", -1, "credits the workspace may commit each month (0: no quota)")
	case "create-token":
		fs.StringVar(&name, "name", "", "a name for the token, such as the script or machine using it")
		fs.StringVar(&email, "email", adminEmail(getenv), "the admin whose workspace the token acts in")
	case "create-admin":
		fs.StringVar(&email, "email", "", "the admin's email address")
	case "sweep-files":
		fs.DurationVar(&olderThan, "older-than", blobgc.DefaultGrace,
			"only files last written longer ago than this; must exceed the longest image job, or a job's file may go before it is recorded")
	case "resume-provider", "check-batch":
	default:
		fmt.Fprintf(stderr, "bulkgen admin: unknown command %q\n\n", sub)
		fs.Usage()
		return errUsage
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	cfg, err := cf.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// Everything but the result goes to stderr, so stdout can be captured,
	// and only warnings and errors unless debug logs are asked for: a
	// command prints its result, not the database's (an admin command on an
	// empty database migrates it without a word).
	quiet := cfg
	if quiet.LogLevel == "info" {
		quiet.LogLevel = "warn"
	}
	logger := quiet.Logger(stderr)
	db, err := store.Open(ctx, cfg.DatabaseDSN(), logger)
	if err != nil {
		return err
	}
	defer db.Close()
	// Idempotent, and lets admin commands run before the first serve.
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	switch sub {
	case "create-token":
		if strings.TrimSpace(name) == "" || len(pos) > 0 {
			fmt.Fprintln(stderr, "usage: bulkgen admin create-token --name NAME [--email EMAIL]")
			return errUsage
		}
		return adminCreateToken(ctx, db, email, name, stdout, stderr)
	case "create-admin":
		if !strings.Contains(email, "@") || len(pos) > 0 {
			fmt.Fprintln(stderr, "usage: bulkgen admin create-admin --email EMAIL")
			return errUsage
		}
		u, ws, err := app.EnsureAdmin(ctx, db, email)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "admin %s (user %d) with workspace %q (id %d); make a token with: bulkgen admin create-token --name NAME --email %s\n",
			u.Email, u.ID, ws.Name, ws.ID, u.Email)
		return nil
	case "credits":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, creditsUsage)
			return errUsage
		}
		return adminCredits(ctx, db, pos[0], cr, stdout, stderr)
	case "resume-provider":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, "usage: bulkgen admin resume-provider NAME")
			return errUsage
		}
		return adminResumeProvider(ctx, db, pos[0], stderr)
	case "sweep-files":
		if len(pos) > 0 || olderThan <= 0 {
			fmt.Fprintln(stderr, "usage: bulkgen admin sweep-files [--older-than DURATION], DURATION above 0")
			return errUsage
		}
		return adminSweepFiles(ctx, db, cfg, olderThan, logger, stdout)
	default: // check-batch
		id, err := strconv.ParseInt(strings.Join(pos, ""), 10, 64)
		if len(pos) != 1 || err != nil {
			fmt.Fprintln(stderr, "usage: bulkgen admin check-batch ID")
			return errUsage
		}
		return adminCheckBatch(ctx, db, cfg, getenv, id, stdout)
	}
}

func adminSweepFiles(ctx context.Context, db *store.DB, cfg config.Config, olderThan time.Duration, logger *slog.Logger, stdout io.Writer) error {
	blobs, err := fileblob.New(cfg.ImageDir())
	if err != nil {
		return err
	}
	defer blobs.Close()
	res, err := blobgc.Sweep(ctx, db, blobs, olderThan, logger)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"scanned": res.Scanned, "older": res.Old, "removed": res.Removed, "removed_bytes": res.Bytes, "failed": res.Failed,
		"temporary_files_removed": res.Temps,
	})
}

func adminCreateToken(ctx context.Context, db *store.DB, email, name string, stdout, stderr io.Writer) error {
	u, err := db.GetUserByEmail(ctx, db.Reader(), email)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %s: start bulkgen serve once, or run bulkgen admin create-admin --email %s", email, email)
	}
	if err != nil {
		return err
	}
	if u.Role != store.RoleAdmin {
		return fmt.Errorf("%s is not an admin", email)
	}
	wss, err := db.ListWorkspacesByOwner(ctx, db.Reader(), u.ID)
	if err != nil {
		return err
	}
	if len(wss) == 0 {
		return fmt.Errorf("%s has no workspace; run bulkgen admin create-admin --email %s", email, email)
	}
	plain, err := app.CreateToken(ctx, db, u, wss[0], name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "created API token %q for %s (workspace %q); it is shown once:\n", name, u.Email, wss[0].Name)
	fmt.Fprintln(stdout, plain)
	return nil
}

// adminResumeProvider resumes the provider's River queue, which the image
// worker paused after an auth error. Running servers notice within a few
// seconds.
func adminResumeProvider(ctx context.Context, db *store.DB, name string, stderr io.Writer) error {
	client, err := queue.New(ctx, db, queue.Config{InsertOnly: true}, nil, nil)
	if err != nil {
		return err
	}
	q := batch.QueueFor(name)
	if err := client.QueueResume(ctx, q, nil); err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("no queue %s: provider %q has not run any job yet", q, name)
		}
		return fmt.Errorf("resume %s: %w", q, err)
	}
	fmt.Fprintf(stderr, "resumed provider %s (queue %s); its waiting images start within seconds\n", name, q)
	return nil
}

// adminCheckBatch implements the hidden `admin check-batch ID` used by
// scripts/crash-test.sh: it prints the batchcheck report as JSON and fails
// when the report lists a problem.
func adminCheckBatch(ctx context.Context, db *store.DB, cfg config.Config, getenv env, id int64, stdout io.Writer) error {
	_, ws, err := findBatch(ctx, db, adminEmail(getenv), id)
	if err != nil {
		return err
	}
	blobs, err := fileblob.New(cfg.ImageDir())
	if err != nil {
		return err
	}
	defer blobs.Close()
	r, err := batchcheck.Check(ctx, db, blobs, ws, id, batchcheck.Options{})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		return exitCode(1)
	}
	return nil
}

// findBatch finds batch id in the admin's workspaces.
func findBatch(ctx context.Context, db *store.DB, email string, id int64) (store.Batch, int64, error) {
	u, err := db.GetUserByEmail(ctx, db.Reader(), email)
	if err != nil {
		return store.Batch{}, 0, fmt.Errorf("admin %s: %w", email, err)
	}
	wss, err := db.ListWorkspacesByOwner(ctx, db.Reader(), u.ID)
	if err != nil {
		return store.Batch{}, 0, err
	}
	for _, ws := range wss {
		b, err := db.GetBatch(ctx, db.Reader(), ws.ID, id)
		if err == nil {
			return b, ws.ID, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Batch{}, 0, err
		}
	}
	return store.Batch{}, 0, fmt.Errorf("batch %d: not in a workspace of %s", id, email)
}
