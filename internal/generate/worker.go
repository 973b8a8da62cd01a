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
	"bulkgen/internal/ledger"
	"bulkgen/internal/provider"
	"bulkgen/internal/store"
)

// DefaultPausedSnooze is how long a job of a paused batch waits before it
// looks at the batch again (ImageWorker.PausedSnooze).
const DefaultPausedSnooze = 30 * time.Second

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

// Settler gives a batch whose items are all final its final status and
// hands back what is left of its reservation (batch.Service implements
// it). The worker calls it after the transaction that finished the last
// items has committed; calling it for a batch that is not done, or twice,
// does nothing.
type Settler interface {
	Settle(ctx context.Context, batchID int64) error
}

// ImageWorker is the River worker for ImageArgs: it makes one item's image
// and records it.
//
// River may run a job more than once (its completion is recorded after the
// work, so a crash in between re-delivers it), so every side effect is
// idempotent on the job's identity (item, generation): the blob key is the
// content hash, the image row is unique per (item, generation), the ledger
// charge has an idempotency key derived from the same pair, a failure's
// release one derived from the job, attempts are unique per (item,
// generation, River attempt), and the batch's counters change only in the
// transaction whose guarded update moved the item.
//
// The records of many jobs are written in shared transactions (committer):
// an item starting, an image succeeding. A file written by a run that died
// before recording it is left to the blob sweeper (package blobgc), which
// removes files no image references once they are older than any job can
// run; nothing else deletes image files, so a file that a run is writing
// can never be removed under it by another (a batch's delete, a duplicate
// run).
type ImageWorker struct {
	river.WorkerDefaults[ImageArgs]

	DB        *store.DB
	Blobs     blob.Store
	Generator *Generator
	Settler   Settler
	// Catalog finds the provider's model id of items planned before items
	// kept it; nil means catalog.Default().
	Catalog *catalog.Catalog
	// Policy is the retry policy; its MaxThrottled bounds the Retry-After
	// waits of one job (River applies MaxAttempts and the backoff).
	Policy Policy
	// Logger may be nil (no logs).
	Logger *slog.Logger
	// Observer may be nil.
	Observer Observer
	// JobTimeout bounds one run of an image job; 0 leaves the client's
	// default (queue.Config.JobTimeout).
	JobTimeout time.Duration
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

	it, started, err := w.start(job, gen)
	if err != nil {
		return err
	}
	if !started {
		return w.notStarted(ctx, log, job)
	}
	log = log.With("batch_id", it.BatchID, "provider", it.Provider)

	var out Output
	req, err := w.requestOf(it)
	if err == nil {
		t0 := time.Now()
		out, err = w.Generator.Generate(ctx, req)
		if w.Observer != nil {
			w.Observer.ObserveProvider(it.Provider, time.Since(t0))
		}
	}
	if err != nil {
		return w.fail(ctx, log, job, it, gen, err)
	}
	return w.succeed(ctx, log, job, it, gen, out)
}

// start marks the item running and records the attempt (the first item
// to run also starts its batch), in a transaction shared with other jobs
// (committer). It reports false when the item is gone or final or its
// batch paused or canceled.
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
		return w.settle(ctx, it.BatchID)
	}
	b, err := w.DB.GetBatchByID(ctx, w.DB.Reader(), it.BatchID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch b.Status {
	case store.BatchCanceled:
		// The cancel found this item running (its job had started), and
		// it went back to pending (an interrupted run) before this one.
		if err := w.finish(ctx, it, job.ID, store.ItemUpdate{Status: store.ItemCanceled, From: unfinished},
			store.BatchDelta{Canceled: 1}, nil); err != nil {
			return err
		}
		return w.settle(ctx, it.BatchID)
	case store.BatchPaused:
		// Snoozing (rather than finishing) keeps the job live, so a resume
		// racing with this run cannot leave the item without a job.
		return river.JobSnooze(w.pausedSnooze())
	}
	// The batch was resumed between the start and these reads: run again
	// soon, without using up an attempt.
	return river.JobSnooze(time.Second)
}

// finish moves item it to a final status as u says, in a transaction of
// its own that holds the batch's lock: when the move happens, the batch's
// counters take delta and the item's reservation is released; attempt,
// when set, is recorded either way. It reports through its error only.
func (w *ImageWorker) finish(ctx context.Context, it store.Item, jobID int64, u store.ItemUpdate, delta store.BatchDelta, attempt *store.Attempt) error {
	return w.DB.Tx(ctx, func(tx *sql.Tx) error {
		if err := w.DB.LockBatch(ctx, tx, it.BatchID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil // the batch was deleted meanwhile
			}
			return err
		}
		moved, err := w.DB.UpdateItemStatus(ctx, tx, it.ID, u)
		if err != nil {
			return err
		}
		if moved {
			delta.BatchID = it.BatchID
			delta.Reserved -= it.CostEstimate
			if err := w.DB.AddBatchCounts(ctx, tx, delta); err != nil {
				return err
			}
			l := ledger.Ledger{DB: w.DB}
			if err := l.Release(ctx, tx, it.WorkspaceID, it.BatchID, it.ID, it.CostEstimate, ledger.ReleaseKey(jobID),
				fmt.Sprintf("item %d %s", it.ID, u.Status)); err != nil {
				return err
			}
		}
		if attempt != nil {
			if _, err := w.DB.RecordAttempt(ctx, tx, *attempt); err != nil {
				return err
			}
		}
		return nil
	})
}

// succeed stores the image file and then records the image, the item's
// success, the charge and the attempt in a shared transaction
// (committer). A file whose record never commits (the process died in
// between, or another run recorded the item first) is removed later by the
// blob sweeper (package blobgc).
func (w *ImageWorker) succeed(ctx context.Context, log *slog.Logger, job *river.Job[ImageArgs], it store.Item, gen int64, out Output) error {
	key := blob.KeyFor(out.SHA256, out.Format)
	if key == "" {
		return fmt.Errorf("image of item %d: no blob key for sha256 %q format %q", it.ID, out.SHA256, out.Format)
	}
	if err := w.Blobs.Put(ctx, key, bytes.NewReader(out.Data)); err != nil {
		return fmt.Errorf("store image of item %d: %w", it.ID, err)
	}
	latency := out.Latency.Milliseconds()
	sr := &successRecord{
		item: it,
		run:  store.ItemRun{ID: it.ID, Attempt: int64(job.Attempt)},
		image: store.Image{
			ItemID: it.ID, BatchID: it.BatchID, WorkspaceID: it.WorkspaceID, Generation: gen,
			ParentID: it.ParentImageID, BlobKey: key, SHA256: out.SHA256, Bytes: int64(len(out.Data)),
			Width: int64(out.Width), Height: int64(out.Height), Format: out.Format,
			Seed: out.Seed, HasSeed: it.HasSeed, Provider: it.Provider, Model: it.Model,
			RequestID: out.RequestID, Cost: it.CostEstimate, LatencyMS: latency, IsPreview: out.Preview,
		},
		attempt: store.Attempt{
			ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: gen, JobAttempt: int64(job.Attempt),
			Status: store.AttemptSucceeded, LatencyMS: latency, RequestID: out.RequestID,
			FinishedAt: time.Now(),
		},
	}
	r := &record{success: sr}
	if err := w.committer().do(r); err != nil {
		return err
	}
	if sr.final {
		log.InfoContext(ctx, "image made for an item finished meanwhile; its file is left to the sweeper", "blob_key", key)
		return nil
	}
	if w.Observer != nil {
		w.Observer.ImageGenerated(it.Provider)
	}
	if !r.batchDone {
		return nil
	}
	return w.settle(ctx, it.BatchID)
}

// fail records a failed provider call and decides what River does next:
// hand the job back (a shutdown), wait out a Retry-After (snooze), retry
// with backoff (return the error), or give up (item failed and its
// reservation released, job cancelled).
func (w *ImageWorker) fail(ctx context.Context, log *slog.Logger, job *river.Job[ImageArgs], it store.Item, gen int64, cause error) error {
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
	attempt := store.Attempt{
		ItemID: it.ID, WorkspaceID: it.WorkspaceID, Generation: gen, JobAttempt: int64(job.Attempt),
		Status: store.AttemptFailed, ErrorClass: string(class), Error: cause.Error(), FinishedAt: time.Now(),
	}
	var pe *provider.Error
	if errors.As(cause, &pe) {
		attempt.RequestID = pe.RequestID
	}
	out := readJobOutput(job.Metadata)
	retryAfter := provider.RetryAfterOf(cause)
	switch w.verdict(ctx, job, class, retryAfter, out) {
	case handBack:
		if err := w.backToPending(bg, it, job, class, cause, attempt, store.AttemptCanceled); err != nil {
			return err
		}
		log.InfoContext(ctx, "image interrupted by shutdown; handed back to the queue")
		return river.JobSnooze(0)
	case waitOut:
		out.RateLimited++
		_ = river.RecordOutput(ctx, out) // written when the run ends; outside River (a test) there is none
		if err := w.backToPending(bg, it, job, class, cause, attempt, store.AttemptSnoozed); err != nil {
			return err
		}
		log.InfoContext(ctx, "provider asked to wait", "retry_after", retryAfter, "snoozes", out.RateLimited)
		return river.JobSnooze(retryAfter)
	case retryLater:
		if err := w.backToPending(bg, it, job, class, cause, attempt, store.AttemptFailed); err != nil {
			return err
		}
		log.InfoContext(ctx, "image attempt failed; will retry", "err", cause, "max_attempts", job.MaxAttempts)
		return fmt.Errorf("item %d: %w", it.ID, cause)
	}
	return w.giveUp(ctx, bg, log, job, it, class, cause, attempt, out.RateLimited, retryAfter > 0)
}

// verdict is what becomes of a failed run.
type verdict int

const (
	handBack   verdict = iota // the process stops: the job goes back, no attempt used
	waitOut                   // the provider asked to wait: snooze, no attempt used
	retryLater                // a retryable error: River retries with backoff
	giveUpNow                 // not retryable, or out of attempts or waits
)

// verdict decides, after a run failed with class, what River does next.
func (w *ImageWorker) verdict(ctx context.Context, job *river.Job[ImageArgs], class provider.Class, retryAfter time.Duration, out jobOutput) verdict {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The process is shutting down (River's StopAndCancel).
		return handBack
	case class != provider.Retryable:
		return giveUpNow
	case retryAfter > 0 && out.RateLimited < w.Policy.Normalized().MaxThrottled:
		return waitOut
	case retryAfter == 0 && job.Attempt < job.MaxAttempts:
		return retryLater
	}
	return giveUpNow
}

// backToPending records a failed attempt of a run that will be tried
// again, and moves the item back to pending with the error.
func (w *ImageWorker) backToPending(ctx context.Context, it store.Item, job *river.Job[ImageArgs], class provider.Class,
	cause error, attempt store.Attempt, status store.AttemptStatus) error {
	attempt.Status = status
	return w.DB.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := w.DB.UpdateItemStatus(ctx, tx, it.ID, store.ItemUpdate{
			Status: store.ItemPending, Error: cause.Error(), ErrorClass: string(class),
			Attempts: int64(job.Attempt), From: []store.ItemStatus{store.ItemRunning},
		}); err != nil {
			return err
		}
		_, err := w.DB.RecordAttempt(ctx, tx, attempt)
		return err
	})
}

// giveUp fails the item for good: its failure, attempt, counters and the
// release of its reservation in one transaction, then the batch's settle.
func (w *ImageWorker) giveUp(ctx, bg context.Context, log *slog.Logger, job *river.Job[ImageArgs], it store.Item,
	class provider.Class, cause error, attempt store.Attempt, waited int, throttled bool) error {
	msg := cause.Error()
	switch {
	case class == provider.Retryable && throttled:
		msg = fmt.Sprintf("%s (gave up after waiting out %d rate limits)", msg, waited)
	case class == provider.Retryable:
		msg = fmt.Sprintf("%s (gave up after %d attempts)", msg, job.Attempt)
	}
	if err := w.finish(bg, it, job.ID, store.ItemUpdate{
		Status: store.ItemFailed, Error: msg, ErrorClass: string(class), Attempts: int64(job.Attempt), From: unfinished,
	}, store.BatchDelta{Failed: 1}, &attempt); err != nil {
		return err
	}
	if err := w.settle(bg, it.BatchID); err != nil {
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

// settle hands a batch that may be done to the Settler.
func (w *ImageWorker) settle(ctx context.Context, batchID int64) error {
	if w.Settler == nil {
		return nil
	}
	return w.Settler.Settle(ctx, batchID)
}

// requestOf is the request an item row stores. An item whose options do
// not decode, or whose model has left the catalogue before items kept
// the provider's model id, fails as Invalid: retrying cannot help.
func (w *ImageWorker) requestOf(it store.Item) (Request, error) {
	req, err := RequestOf(it)
	if err != nil {
		return Request{}, &provider.Error{Class: provider.Invalid, Provider: it.Provider, Message: err.Error()}
	}
	if req.RemoteModel == "" {
		cat := w.Catalog
		if cat == nil {
			cat = catalog.Default()
		}
		m, err := cat.Lookup(it.Model)
		if m == nil {
			return Request{}, &provider.Error{Class: provider.Invalid, Provider: it.Provider, Message: fmt.Sprintf("model %q: %v", it.Model, err)}
		}
		req.RemoteModel = m.RemoteID
	}
	return req, nil
}

// RequestOf is the request an item row stores (the server's worker, and
// regeneration, read it back). It fails only when the row's options do
// not decode; its variables only annotate the image, so bad ones are
// dropped.
func RequestOf(it store.Item) (Request, error) {
	var opts map[string]string
	if len(it.Options) > 0 && string(it.Options) != "null" {
		if err := json.Unmarshal(it.Options, &opts); err != nil {
			return Request{}, fmt.Errorf("item %d options: %w", it.ID, err)
		}
	}
	var vars map[string]string
	if len(it.Vars) > 0 && string(it.Vars) != "null" {
		_ = json.Unmarshal(it.Vars, &vars)
	}
	return Request{
		SourceLine: int(it.SourceLine), Index: int(it.Index),
		Model: it.Model, Provider: it.Provider, RemoteModel: it.RemoteModel,
		Prompt: it.Prompt, NegativePrompt: it.NegativePrompt,
		Width: int(it.Width), Height: int(it.Height), AspectRatio: it.AspectRatio,
		Quality: it.Quality, Style: it.Style, Format: it.Format, Seed: it.Seed,
		Options: opts, Vars: vars, Name: it.Name, Price: it.CostEstimate,
	}, nil
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
