package generate

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"bulkgen/internal/blob"
	"bulkgen/internal/catalog"
	"bulkgen/internal/manifest"
	"bulkgen/internal/provider"
	"bulkgen/internal/store"
)

// Defaults of ImageWorker's zero fields.
const (
	// DefaultMaxRateLimitSnoozes bounds how often one job waits out a
	// provider's Retry-After before the item fails: a snooze uses no River
	// attempt, so without a bound a provider that always answers 429 would
	// keep a job alive forever.
	DefaultMaxRateLimitSnoozes = 20
	// DefaultPausedSnooze is how long a job of a paused batch waits before
	// it looks at the batch again.
	DefaultPausedSnooze = 30 * time.Second
)

// Observer receives the provider-side measurements of image jobs; the
// metrics package implements it. Every method must be cheap and safe for
// concurrent use.
type Observer interface {
	// ObserveProvider records the duration of one provider call,
	// successful or not.
	ObserveProvider(provider string, d time.Duration)
	// ImageGenerated counts one image stored.
	ImageGenerated(provider string)
	// ProviderError counts one failed call; class is a provider.Class.
	ProviderError(provider, class string)
}

// ImageWorker is the River worker for ImageArgs: it makes one item's image
// and records it.
//
// River may run a job more than once (its completion is recorded after the
// work, so a crash in between re-delivers it), so every side effect is
// idempotent on the job's identity (item, generation): the blob key is the
// content hash, the image row is unique per (item, generation), the ledger
// charge has an idempotency key derived from the same pair, attempts are
// unique per (item, generation, River attempt), and the batch counters are
// recomputed rather than incremented.
//
// For throughput the batch's row is not written per image: a run changes
// its item under a shared lock on the batch (store.DB.ShareLockBatch), and
// only a run that then finds no pending or running item left recounts the
// batch and gives it its final status (settleIfDone). Recounting per image
// cost O(items) each, and its exclusive lock serialized every worker of a
// batch through each commit (about 20 images/s on PostgreSQL, see
// `bulkgen bench serve`). A file written by a run that died before
// recording it is left to the blob sweeper (package blobgc), which removes
// files no image references once they are older than any job can run.
type ImageWorker struct {
	river.WorkerDefaults[ImageArgs]

	DB        *store.DB
	Blobs     blob.Store
	Generator *Generator
	// Catalog maps an item's model id to the provider's model id; nil
	// means catalog.Default().
	Catalog *catalog.Catalog
	// Logger may be nil (no logs).
	Logger *slog.Logger
	// Observer may be nil.
	Observer Observer
	// JobTimeout bounds one run of an image job; 0 leaves the client's
	// default (queue.Config.JobTimeout).
	JobTimeout time.Duration
	// MaxRateLimitSnoozes: see DefaultMaxRateLimitSnoozes.
	MaxRateLimitSnoozes int
	// PausedSnooze: see DefaultPausedSnooze.
	PausedSnooze time.Duration

	commitOnce sync.Once
	commits    *committer
}

// committer returns the worker's group committer, made on first use so
// that ImageWorker stays a plain struct literal for its callers.
func (w *ImageWorker) committer() *committer {
	w.commitOnce.Do(func() { w.commits = &committer{db: w.DB} })
	return w.commits
}

// Timeout implements river.Worker: image jobs get their own per-kind
// timeout, since models take from milliseconds to minutes.
func (w *ImageWorker) Timeout(*river.Job[ImageArgs]) time.Duration { return w.JobTimeout }

// jobOutput is what an image job keeps in its River metadata (under
// River's "output" key) from one run to the next.
type jobOutput struct {
	// RateLimited counts the snoozes spent waiting out a Retry-After.
	RateLimited int `json:"rate_limited,omitempty"`
}

func readJobOutput(metadata []byte) jobOutput {
	var m struct {
		Output jobOutput `json:"output"`
	}
	if len(metadata) > 0 {
		_ = json.Unmarshal(metadata, &m) // unknown or foreign metadata means a fresh job
	}
	return m.Output
}

// unfinished are the item statuses a worker may move on from.
var unfinished = []store.ItemStatus{store.ItemPending, store.ItemRunning}

// Work implements river.Worker.
func (w *ImageWorker) Work(ctx context.Context, job *river.Job[ImageArgs]) error {
	gen := job.Args.Generation + 1 // ImageArgs counts from 0, the images table from 1
	log := w.logger().With("job_id", job.ID, "item_id", job.Args.ItemID, "attempt", job.Attempt)
	out := readJobOutput(job.Metadata)

	it, started, err := w.start(job, gen)
	if err != nil {
		return err
	}
	if !started {
		return w.notStarted(ctx, log, job)
	}
	log = log.With("batch_id", it.BatchID, "provider", it.Provider)

	var res Output
	gj, err := w.jobFor(it)
	if err == nil {
		t0 := time.Now()
		res, err = w.Generator.Generate(ctx, gj)
		if w.Observer != nil {
			w.Observer.ObserveProvider(it.Provider, time.Since(t0))
		}
	}
	if err != nil {
		return w.fail(ctx, log, job, it, gen, out, err)
	}
	return w.succeed(ctx, log, job, it, gen, res)
}

// start marks the item running and records the attempt (the first item
// to run also starts its batch), in a transaction shared with other jobs
// (committer). It reports false when the item is gone or final or its
// batch paused or canceled.
//
// It takes no batch lock: moving an item to running changes no counter, a
// cancel that got to the item first makes the guarded update a no-op, and
// StartBatch changes only a queued batch, atomically, so it cannot
// overwrite a pause or cancel.
func (w *ImageWorker) start(job *river.Job[ImageArgs], gen int64) (store.Item, bool, error) {
	s := &startRecord{run: store.ItemRun{ID: job.Args.ItemID, Attempt: int64(job.Attempt)}, gen: gen}
	if err := w.committer().do(&record{start: s}); err != nil {
		return store.Item{}, false, err
	}
	return s.item, s.started, nil
}

// notStarted handles a job whose item start found nothing to start: the
// item was deleted or is final, or its batch is paused or canceled.
func (w *ImageWorker) notStarted(ctx context.Context, log *slog.Logger, job *river.Job[ImageArgs]) error {
	it, err := w.DB.GetItemByID(ctx, w.DB.Reader(), job.Args.ItemID)
	if errors.Is(err, store.ErrNotFound) {
		log.InfoContext(ctx, "image job for a deleted item")
		return nil
	}
	if err != nil {
		return err
	}
	if isFinal(it.Status) {
		// An earlier run may have died between recording the item and
		// settling the batch.
		return w.settleIfDone(ctx, it)
	}
	b, err := w.DB.GetBatch(ctx, w.DB.Reader(), it.WorkspaceID, it.BatchID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch b.Status {
	case store.BatchCanceled:
		if err := w.DB.Tx(ctx, func(tx *sql.Tx) error {
			if err := w.DB.ShareLockBatch(ctx, tx, it.BatchID); err != nil {
				return err
			}
			_, err := w.DB.UpdateItemStatus(ctx, tx, it.ID, store.ItemUpdate{Status: store.ItemCanceled, From: unfinished})
			return err
		}); err != nil {
			return err
		}
		return w.settleIfDone(ctx, it)
	case store.BatchPaused:
		// Snoozing (rather than finishing) keeps the job live, so a resume
		// racing with this run cannot leave the item without a job.
		return river.JobSnooze(w.pausedSnooze())
	}
	// The batch was resumed between the start and these reads: run again
	// soon, without using up an attempt.
	return river.JobSnooze(time.Second)
}

// succeed stores the image file and then records the image, the item's
// success, the charge and the attempt in a shared transaction
// (committer). A file whose record never commits (the process died in
// between) is removed later by the blob sweeper (package blobgc).
func (w *ImageWorker) succeed(ctx context.Context, log *slog.Logger, job *river.Job[ImageArgs], it store.Item, gen int64, res Output) error {
	key := blob.KeyFor(res.SHA256, res.Format)
	if key == "" {
		return fmt.Errorf("image of item %d: no blob key for sha256 %q format %q", it.ID, res.SHA256, res.Format)
	}
	if err := w.Blobs.Put(ctx, key, bytes.NewReader(res.Data)); err != nil {
		return fmt.Errorf("store image of item %d: %w", it.ID, err)
	}
	rec := res.Record
	sr := &successRecord{
		item: it,
		run:  store.ItemRun{ID: it.ID, Attempt: int64(job.Attempt)},
		image: store.Image{
			ItemID: it.ID, BatchID: it.BatchID, WorkspaceID: it.WorkspaceID, Generation: gen,
			ParentID: it.ParentImageID, BlobKey: key, SHA256: res.SHA256, Bytes: int64(len(res.Data)),
			Width: int64(rec.Width), Height: int64(rec.Height), Format: res.Format,
			Seed: rec.Seed, HasSeed: it.HasSeed, Provider: rec.Provider, Model: it.Model,
			RequestID: rec.RequestID, Cost: it.CostEstimate, LatencyMS: rec.LatencyMS, IsPreview: rec.Preview,
		},
		attempt: store.Attempt{
			ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: gen, JobAttempt: int64(job.Attempt),
			Status: store.AttemptSucceeded, LatencyMS: rec.LatencyMS, RequestID: rec.RequestID,
			FinishedAt: time.Now(),
		},
	}
	r := &record{success: sr}
	if err := w.committer().do(r); err != nil {
		return err
	}
	final, created := sr.final, sr.created
	if final || !created {
		// Another run recorded this item's image first (or the item was
		// canceled): this run's file is not referenced unless it happens
		// to be byte-identical to the recorded one.
		if derr := w.dropStrayBlob(ctx, key); derr != nil {
			log.WarnContext(ctx, "cannot remove the file of a duplicate run", "blob_key", key, "err", derr)
		}
	} else if w.Observer != nil {
		w.Observer.ImageGenerated(it.Provider)
	}
	if final || !r.batchDone {
		return nil
	}
	return w.settleIfDone(ctx, it)
}

// fail records a failed provider call and decides what River does next:
// wait out a Retry-After (snooze), retry with backoff (return the error),
// or give up (item failed, job cancelled).
func (w *ImageWorker) fail(ctx context.Context, log *slog.Logger, job *river.Job[ImageArgs], it store.Item, gen int64, out jobOutput, cause error) error {
	class := provider.ClassOf(cause)
	if ctx.Err() != nil {
		// Our own deadline or a shutdown interrupted the call: that says
		// nothing about the request, so it is retried.
		class = provider.Retryable
	}
	if w.Observer != nil {
		w.Observer.ProviderError(it.Provider, string(class))
	}
	// The bookkeeping below must happen even when ctx is done.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()

	retryAfter := provider.RetryAfterOf(cause)
	maxSnoozes := w.MaxRateLimitSnoozes
	if maxSnoozes <= 0 {
		maxSnoozes = DefaultMaxRateLimitSnoozes
	}
	attempt := store.Attempt{
		ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: gen, JobAttempt: int64(job.Attempt),
		Status: store.AttemptFailed, ErrorClass: string(class), Error: cause.Error(), FinishedAt: time.Now(),
	}
	var pe *provider.Error
	if errors.As(cause, &pe) {
		attempt.RequestID = pe.RequestID
	}
	retry := func(status store.AttemptStatus) error {
		attempt.Status = status
		return w.DB.Tx(bg, func(tx *sql.Tx) error {
			if _, err := w.DB.UpdateItemStatus(bg, tx, it.ID, store.ItemUpdate{
				Status: store.ItemPending, Error: cause.Error(), ErrorClass: string(class),
				Attempts: int64(job.Attempt), From: []store.ItemStatus{store.ItemRunning},
			}); err != nil {
				return err
			}
			_, err := w.DB.RecordAttempt(bg, tx, attempt)
			return err
		})
	}

	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The process is shutting down (River's StopAndCancel): hand the
		// job back without using up an attempt.
		if err := retry(store.AttemptCanceled); err != nil {
			return err
		}
		log.InfoContext(ctx, "image interrupted by shutdown; handed back to the queue")
		return river.JobSnooze(0)
	case class == provider.Retryable && retryAfter > 0 && out.RateLimited < maxSnoozes:
		out.RateLimited++
		w.recordJobOutput(ctx, out)
		if err := retry(store.AttemptSnoozed); err != nil {
			return err
		}
		log.InfoContext(ctx, "provider asked to wait", "retry_after", retryAfter, "snoozes", out.RateLimited)
		return river.JobSnooze(retryAfter)
	case class == provider.Retryable && retryAfter > 0:
		// The snooze budget is spent: give up below.
	case class == provider.Retryable && job.Attempt < job.MaxAttempts:
		if err := retry(store.AttemptFailed); err != nil {
			return err
		}
		log.InfoContext(ctx, "image attempt failed; will retry", "err", cause, "max_attempts", job.MaxAttempts)
		return fmt.Errorf("item %d: %w", it.ID, cause)
	}

	msg := cause.Error()
	switch {
	case class == provider.Retryable && retryAfter > 0 && out.RateLimited >= maxSnoozes:
		msg = fmt.Sprintf("%s (gave up after waiting out %d rate limits)", msg, out.RateLimited)
	case class == provider.Retryable:
		msg = fmt.Sprintf("%s (gave up after %d attempts)", msg, job.Attempt)
	}
	err := w.DB.Tx(bg, func(tx *sql.Tx) error {
		if err := w.DB.ShareLockBatch(bg, tx, it.BatchID); err != nil {
			return err
		}
		if _, err := w.DB.UpdateItemStatus(bg, tx, it.ID, store.ItemUpdate{
			Status: store.ItemFailed, Error: msg, ErrorClass: string(class),
			Attempts: int64(job.Attempt), From: unfinished,
		}); err != nil {
			return err
		}
		_, err := w.DB.RecordAttempt(bg, tx, attempt)
		return err
	})
	if err != nil {
		return err
	}
	if err := w.settleIfDone(bg, it); err != nil {
		return err
	}
	switch class {
	case provider.Invalid:
		// Our request was wrong: a bug or a gap in validation.
		log.ErrorContext(ctx, "provider refused the request as invalid", "err", cause)
	case provider.Auth:
		w.pauseProvider(ctx, log, job, it.Provider, cause)
	default:
		log.InfoContext(ctx, "image failed", "class", string(class), "err", cause)
	}
	return river.JobCancel(errors.New(msg))
}

// pauseProvider stops the provider's queue after an auth error: every
// other job would fail the same way. Jobs stay queued until an operator
// fixes the key and runs `bulkgen admin resume-provider NAME`.
func (w *ImageWorker) pauseProvider(ctx context.Context, log *slog.Logger, job *river.Job[ImageArgs], name string, cause error) {
	log.ErrorContext(ctx, "provider credentials refused: pausing the provider's queue; fix the key, then run `bulkgen admin resume-provider "+name+"`",
		"queue", job.Queue, "err", cause)
	client, err := river.ClientFromContextSafely[*sql.Tx](ctx)
	if err != nil {
		return // not run by a client (a direct call in a test)
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := client.QueuePause(bg, job.Queue, nil); err != nil {
		log.ErrorContext(ctx, "cannot pause the provider's queue", "queue", job.Queue, "err", err)
	}
}

// settleIfDone settles the batch (settleBatch) when, after this run's
// transaction has committed, none of its items is pending or running. Of
// the last items to finish, the one committed last always sees the others
// committed, so at least one run settles; settling twice is harmless. Most
// runs only read one index entry here.
func (w *ImageWorker) settleIfDone(ctx context.Context, it store.Item) error {
	left, err := w.DB.BatchHasUnfinished(ctx, w.DB.Reader(), it.BatchID)
	if err != nil || left {
		return err
	}
	err = w.DB.Tx(ctx, func(tx *sql.Tx) error {
		if err := w.DB.LockBatch(ctx, tx, it.BatchID); err != nil {
			return err
		}
		return w.settleBatch(ctx, tx, it)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // the batch was deleted meanwhile
	}
	return err
}

// settleBatch recomputes the batch's counters and, once none of its items
// can change any more, gives it its final status. Call it inside a
// transaction that took the batch's lock (store.DB.LockBatch) before: the
// lock waits for every worker that holds ShareLockBatch, and recounts of
// the same batch must not overlap, or one of them misses the other's item.
func (w *ImageWorker) settleBatch(ctx context.Context, tx *sql.Tx, it store.Item) error {
	if err := w.DB.RecountBatch(ctx, tx, it.BatchID); err != nil {
		return err
	}
	b, err := w.DB.GetBatch(ctx, tx, it.WorkspaceID, it.BatchID)
	if err != nil {
		return err
	}
	if b.Status.Final() || b.SucceededCount+b.FailedCount+b.CanceledCount < b.TotalCount {
		return nil
	}
	// The counters say everything is done; the items have the last word
	// (total_count is only as right as whoever last added items).
	p, err := w.DB.GetBatchProgress(ctx, tx, it.BatchID)
	if err != nil {
		return err
	}
	if p.Counts[store.ItemPending]+p.Counts[store.ItemRunning] > 0 {
		return nil
	}
	return w.DB.SetBatchStatus(ctx, tx, b.ID, FinalBatchStatus(p.Counts))
}

// FinalBatchStatus is the status of a batch none of whose items can change
// any more: succeeded when every item succeeded, partial when some did,
// failed when none did and some failed, canceled otherwise.
func FinalBatchStatus(counts map[store.ItemStatus]int64) store.BatchStatus {
	ok, failed, canceled := counts[store.ItemSucceeded], counts[store.ItemFailed], counts[store.ItemCanceled]
	switch {
	case failed == 0 && canceled == 0:
		return store.BatchSucceeded
	case ok > 0:
		return store.BatchPartial
	case failed > 0:
		return store.BatchFailed
	}
	return store.BatchCanceled
}

// jobFor builds the generation request from the item row. An item whose
// model has left the catalogue, or whose options do not decode, fails as
// Invalid: retrying cannot help.
func (w *ImageWorker) jobFor(it store.Item) (Job, error) {
	cat := w.Catalog
	if cat == nil {
		cat = catalog.Default()
	}
	m, err := cat.Lookup(it.Model)
	if m == nil {
		return Job{}, &provider.Error{Class: provider.Invalid, Provider: it.Provider, Message: fmt.Sprintf("model %q: %v", it.Model, err)}
	}
	// A model retired since the batch was planned is still tried: the
	// provider answers for itself.
	var opts map[string]string
	if len(it.Options) > 0 && string(it.Options) != "null" {
		if err := json.Unmarshal(it.Options, &opts); err != nil {
			return Job{}, &provider.Error{Class: provider.Invalid, Provider: it.Provider, Message: fmt.Sprintf("item options: %v", err)}
		}
	}
	var vars map[string]string
	if len(it.Vars) > 0 && string(it.Vars) != "null" {
		_ = json.Unmarshal(it.Vars, &vars) // vars only annotate the record; a bad value loses them
	}
	prov := it.Provider
	if prov == "" {
		prov = m.Provider
	}
	return Job{
		Provider:    prov,
		RemoteModel: m.RemoteID,
		Request: provider.Request{
			Prompt: it.Prompt, NegativePrompt: it.NegativePrompt,
			Width: int(it.Width), Height: int(it.Height), AspectRatio: it.AspectRatio,
			Quality: it.Quality, Style: it.Style, Format: it.Format,
			Seed: it.Seed, HasSeed: it.HasSeed, Count: 1, Options: opts,
		},
		Record: manifest.Record{
			SourceLine: int(it.SourceLine), Index: int(it.Index), ImageFile: it.Name,
			Status: manifest.StatusPending, Prompt: it.Prompt, NegativePrompt: it.NegativePrompt,
			Model: it.Model, Provider: prov, Width: int(it.Width), Height: int(it.Height),
			AspectRatio: it.AspectRatio, Quality: it.Quality, Style: it.Style, Format: it.Format,
			Seed: it.Seed, Cost: it.CostEstimate, Vars: vars,
		},
	}, nil
}

// recordJobOutput sets out as the job's output, which River writes when
// the run ends (also on a snooze or an error). It reports whether the call
// runs inside a River worker.
func (w *ImageWorker) recordJobOutput(ctx context.Context, out jobOutput) bool {
	return river.RecordOutput(ctx, out) == nil
}

// dropStrayBlob deletes the file under key unless an image row uses it.
func (w *ImageWorker) dropStrayBlob(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	stray, err := w.DB.UnreferencedBlobKeys(ctx, w.DB.Reader(), []string{key})
	if err != nil {
		return err
	}
	for _, k := range stray {
		if err := w.Blobs.Delete(ctx, k); err != nil {
			return fmt.Errorf("remove unrecorded image file: %w", err)
		}
	}
	return nil
}

func (w *ImageWorker) pausedSnooze() time.Duration {
	if w.PausedSnooze > 0 {
		return w.PausedSnooze
	}
	return DefaultPausedSnooze
}

func (w *ImageWorker) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

func isFinal(s store.ItemStatus) bool {
	return s == store.ItemSucceeded || s == store.ItemFailed || s == store.ItemCanceled
}

// Interface guard.
var _ river.Worker[ImageArgs] = (*ImageWorker)(nil)
