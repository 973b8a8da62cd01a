package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/app"
	"bulkgen/internal/batch"
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
	switch sub {
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

// batchReport is what `bulkgen admin check-batch` prints: enough to prove a
// batch ran every image exactly once. Problems lists every inconsistency;
// the command fails when it is not empty.
type batchReport struct {
	BatchID        int64            `json:"batch_id"`
	Status         string           `json:"status"`
	Total          int64            `json:"total"`
	ItemsByStatus  map[string]int64 `json:"items_by_status"`
	Images         int              `json:"images"`
	ImagesPerItem  map[string]int   `json:"images_per_item"` // "0", "1", "2+" → items
	DistinctSHA256 int              `json:"distinct_sha256"`
	Attempts       map[string]int   `json:"attempts_by_status"`
	ItemsRetried   int              `json:"items_retried"` // items that needed more than one attempt
	Charges        int              `json:"charges"`
	Files          int              `json:"files"`        // objects in the image folder
	OrphanFiles    int              `json:"orphan_files"` // objects no image row uses
	TempFiles      int              `json:"temp_files"`   // partial writes left by a killed process
	LiveJobs       int              `json:"live_jobs"`
	Problems       []string         `json:"problems"`
}

// adminCheckBatch implements the hidden `admin check-batch ID` used by
// scripts/crash-test.sh.
func adminCheckBatch(ctx context.Context, db *store.DB, cfg config.Config, getenv env, id int64, stdout io.Writer) error {
	b, ws, err := findBatch(ctx, db, adminEmail(getenv), id)
	if err != nil {
		return err
	}
	r := batchReport{BatchID: id, Status: string(b.Status), Total: b.TotalCount, ItemsByStatus: map[string]int64{},
		ImagesPerItem: map[string]int{}, Attempts: map[string]int{}, Problems: []string{}}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	q := db.Reader()

	items, err := pages(func(after int64) ([]store.Item, error) {
		return db.ListItems(ctx, q, ws, store.ItemFilter{BatchID: id}, after, 1000)
	}, func(it store.Item) int64 { return it.ID })
	if err != nil {
		return err
	}
	images, err := pages(func(after int64) ([]store.Image, error) {
		return db.ListImages(ctx, q, ws, store.ImageFilter{}, after, 1000)
	}, func(im store.Image) int64 { return im.ID })
	if err != nil {
		return err
	}
	perItem := map[int64][]store.Image{}
	referenced := map[string]bool{}
	shas := map[string]int{}
	for _, im := range images {
		referenced[im.BlobKey] = true
		if im.BatchID != id {
			continue
		}
		r.Images++
		perItem[im.ItemID] = append(perItem[im.ItemID], im)
		shas[im.SHA256]++
	}
	r.DistinctSHA256 = len(shas)
	for sha, n := range shas {
		if n > 1 {
			problem("%d images share the content %s", n, sha)
		}
	}
	charges := map[int64]int{}
	var afterEntry int64
	for {
		es, err := db.ListLedgerEntries(ctx, q, ws, afterEntry, 1000)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Kind == store.EntryCharge && e.BatchID == id {
				charges[e.ItemID]++
				r.Charges++
			}
		}
		if len(es) < 1000 {
			break
		}
		afterEntry = es[len(es)-1].ID
	}

	for _, it := range items {
		r.ItemsByStatus[string(it.Status)]++
		ims := perItem[it.ID]
		switch len(ims) {
		case 0:
			r.ImagesPerItem["0"]++
		case 1:
			r.ImagesPerItem["1"]++
		default:
			r.ImagesPerItem["2+"]++
		}
		gens := map[int64]bool{}
		for _, im := range ims {
			if gens[im.Generation] {
				problem("item %d has two images of generation %d", it.ID, im.Generation)
			}
			gens[im.Generation] = true
		}
		wantImages := 0
		if it.Status == store.ItemSucceeded {
			wantImages = 1
		}
		if len(ims) != wantImages {
			problem("item %d is %s with %d images", it.ID, it.Status, len(ims))
		}
		if charges[it.ID] != wantImages {
			problem("item %d is %s with %d charges", it.ID, it.Status, charges[it.ID])
		}
		as, err := db.ListAttempts(ctx, q, ws, it.ID, 0, 1000)
		if err != nil {
			return err
		}
		succeeded := 0
		for _, a := range as {
			r.Attempts[string(a.Status)]++
			if a.Status == store.AttemptSucceeded {
				succeeded++
			}
			if a.Status == store.AttemptRunning && isFinalItem(it.Status) {
				problem("item %d is %s but its attempt %d is still recorded as running", it.ID, it.Status, a.JobAttempt)
			}
		}
		if len(as) > 1 {
			r.ItemsRetried++
		}
		if it.Status == store.ItemSucceeded && (succeeded != 1 || it.Attempts < 1) {
			problem("item %d succeeded with %d succeeded attempts (attempts %d)", it.ID, succeeded, it.Attempts)
		}
	}
	if int64(len(items)) != b.TotalCount {
		problem("batch counts %d items, %d exist", b.TotalCount, len(items))
	}
	for st, got := range map[store.ItemStatus]int64{store.ItemSucceeded: b.SucceededCount, store.ItemFailed: b.FailedCount, store.ItemCanceled: b.CanceledCount} {
		if r.ItemsByStatus[string(st)] != got {
			problem("batch counts %d %s items, %d are", got, st, r.ItemsByStatus[string(st)])
		}
	}
	if !b.Status.Final() {
		problem("batch is %s, not final", b.Status)
	}
	// River records a job's end just after its work returns, so the last
	// jobs of a batch that just finished may look live for a moment.
	for wait := 0; ; wait++ {
		live, err := db.BatchJobIDs(ctx, q, id, nil, store.LiveJobStates)
		if err != nil {
			return err
		}
		r.LiveJobs = len(live)
		if !b.Status.Final() || r.LiveJobs == 0 || wait == liveJobWaits {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b.Status.Final() && r.LiveJobs > 0 {
		problem("%d jobs still live 10s after the batch finished", r.LiveJobs)
	}

	// Every object in the image folder must be an image row's file: a
	// second file for one item would be a duplicate.
	root := cfg.ImageDir()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			r.TempFiles++
			return nil
		}
		r.Files++
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if !referenced[filepath.ToSlash(rel)] {
			r.OrphanFiles++
			problem("file %s belongs to no image", filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan image folder: %w", err)
	}
	blobs, err := fileblob.New(root)
	if err != nil {
		return err
	}
	defer blobs.Close()
	for key := range referenced {
		obj, err := blobs.Open(ctx, key)
		if err != nil {
			problem("image file %s: %v", key, err)
			continue
		}
		_ = obj.Close()
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

// liveJobWaits × 100 ms is how long check-batch waits for River to record
// the end of a finished batch's jobs.
const liveJobWaits = 100

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

// pages reads every row of a cursor-paginated list.
func pages[T any](list func(after int64) ([]T, error), id func(T) int64) ([]T, error) {
	var out []T
	var after int64
	for {
		page, err := list(after)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out, nil
		}
		after = id(page[len(page)-1])
	}
}

func isFinalItem(s store.ItemStatus) bool {
	return s == store.ItemSucceeded || s == store.ItemFailed || s == store.ItemCanceled
}
