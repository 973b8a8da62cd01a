// Package batch owns the life of a batch: planning input rows into image
// requests (parse → expand → validate → estimate), and the Service that
// creates, cancels, pauses, resumes, retries, regenerates, reviews, settles
// and deletes batches. Every surface goes through it — the REST handlers,
// the OpenAI-compatible endpoint, the web pages, the admin commands and the
// image worker's settling — so a batch behaves the same whichever way it
// was touched. Handlers decode, call one Service method and render; none
// of them runs SQL or touches the queue.
//
// The CLI (`bulkgen run`) has no database: it shares the planner (Planner,
// PlanRows) and the generator, not the Service.
package batch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"bulkgen/internal/catalog"
	"bulkgen/internal/expand"
	"bulkgen/internal/generate"
	"bulkgen/internal/ledger"
	"bulkgen/internal/store"
)

// Service runs batches on the database and the queue. Build it with its
// exported fields set; the zero values of the optional ones are documented.
type Service struct {
	DB     *store.DB
	Queue  *river.Client[*sql.Tx]
	Ledger *ledger.Ledger
	// Catalog checks and prices rows; nil means catalog.Default().
	Catalog *catalog.Catalog
	// Available says whether a provider is configured here; nil accepts
	// every provider.
	Available func(provider string) error
	// DefaultModel is the model of rows that name none when the request
	// gives no default either: "preview" when no provider is configured,
	// as in the CLI (registry.DefaultModel).
	DefaultModel string
	// Wildcards resolves __name__ in templates; nil refuses them.
	Wildcards *expand.Wildcards
	// Policy is the image jobs' retry policy (their MaxAttempts).
	Policy generate.Policy
	// Limits bounds what a batch may ask for.
	Limits Limits
	// Wake, when set, is called after a transaction that queued image jobs
	// has committed, with their queues, so that idle workers start at once.
	Wake func(queues []string)
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Limits bounds batches. Zero fields take the Default values.
type Limits struct {
	// MaxImages caps the images of one batch.
	MaxImages int
	// MaxRegenerate caps the images one regeneration request names.
	MaxRegenerate int
}

// Defaults of Limits.
const (
	DefaultMaxImages     = 100_000
	DefaultMaxRegenerate = 100
)

func (l Limits) maxImages() int {
	if l.MaxImages > 0 {
		return l.MaxImages
	}
	return DefaultMaxImages
}

func (l Limits) maxRegenerate() int {
	if l.MaxRegenerate > 0 {
		return l.MaxRegenerate
	}
	return DefaultMaxRegenerate
}

// submitChunk is how many items (and jobs) one transaction of a large
// submission writes. Between chunks other requests get the database (on
// SQLite, its one writer), so a 100,000-image upload does not hold
// everyone else's work for seconds.
const submitChunk = 500

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// QueueFor is the River queue of a provider: one queue per provider gives
// each its own concurrency.
func QueueFor(provider string) string { return "provider_" + provider }

// Spec is a batch to create: who asks, what it is called, and how to plan
// its rows.
type Spec struct {
	WorkspaceID int64
	UserID      int64
	ProjectID   int64
	Name        string
	SourceFile  string
	// Plan holds the planner's settings (template, names, defaults,
	// combinatorial, max per row); the service fills in the catalogue,
	// wildcards, availability, clock and batch cap.
	Plan Config
	// MaxCost refuses the batch (402 over_budget) when its estimate is
	// above it; 0 means no cap.
	MaxCost int64
	// DryRun plans and answers the plan; nothing is written.
	DryRun bool
}

// Input is a batch's rows: Open returns a fresh RowSource each call,
// since Create reads the input twice (once to check and price it, once to
// write it), so that nothing is written for a batch that is refused.
type Input interface {
	Open() (RowSource, error)
}

// InputFunc adapts a function to Input.
type InputFunc func() (RowSource, error)

// Open implements Input.
func (f InputFunc) Open() (RowSource, error) { return f() }

// Created is the outcome of Create: the batch (zero in a dry run) and its
// plan.
type Created struct {
	Batch store.Batch
	Plan  Summary
}

// planConfig completes a spec's planner settings with the service's.
func (s *Service) planConfig(spec Spec) Config {
	c := spec.Plan
	c.Catalog = s.Catalog
	c.Wildcards = s.Wildcards
	c.Available = s.Available
	c.Now = s.now()
	c.DryRun = spec.DryRun
	c.MaxImages = s.Limits.maxImages()
	if c.Defaults.Model == "" {
		c.Defaults.Model = s.DefaultModel
	}
	return c
}

// Create plans spec over in and, unless it is a dry run, writes the batch
// with its items, reserves its estimated cost and queues a job per item.
// Rows that cannot make images are skipped and listed in the plan. It
// refuses, writing nothing: a bad setting or input (Invalid), a batch
// without one valid image (Invalid, no_valid_rows), a project that is not
// the workspace's (NotFound), an estimate over spec.MaxCost (Payment,
// over_budget) or over what the workspace's credits or quota cover
// (Payment, insufficient_credits).
//
// The input is read twice: first to check and price it, then to write it,
// in chunks of submitChunk items per transaction, so that a huge upload
// never holds the database for long. Until the last chunk the batch is
// marked submitting (hidden, nothing runs); the transaction that reserves
// the credits makes it visible, and the jobs follow in chunks. Should the
// process die half way, Repair removes the half-written batch or queues
// the jobs it lacks.
func (s *Service) Create(ctx context.Context, spec Spec, in Input) (Created, error) {
	if err := checkText(spec); err != nil {
		return Created{}, err
	}
	cfg := s.planConfig(spec)
	first, err := NewPlanner(cfg)
	if err != nil {
		return Created{}, err
	}
	if spec.ProjectID < 0 {
		return Created{}, fieldError("project_id", "must be a project id")
	}
	if spec.ProjectID != 0 {
		if _, err := s.DB.GetProject(ctx, s.DB.Reader(), spec.WorkspaceID, spec.ProjectID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return Created{}, &Error{Kind: NotFound, Code: "not_found", Field: "project_id", Message: "no such project",
					Details: map[string]string{"field": "project_id"}}
			}
			return Created{}, err
		}
	}
	if err := planInput(ctx, first, in, func(generate.Request) error { return nil }); err != nil {
		return Created{}, err
	}
	plan := first.Summary()
	if spec.DryRun {
		return Created{Plan: plan}, nil
	}
	if plan.Images == 0 {
		return Created{Plan: plan}, &Error{Kind: Invalid, Code: "no_valid_rows",
			Message: "no row of the input can produce an image; see details for each problem",
			Details: map[string]any{"problems": nonNil(plan.Problems), "problem_count": plan.ProblemCount}}
	}
	if spec.MaxCost > 0 && plan.Cost > spec.MaxCost {
		return Created{Plan: plan}, &Error{Kind: Payment, Code: "over_budget",
			Message: fmt.Sprintf("the batch is estimated at %d credits, more than its cap of %d (max_cost)", plan.Cost, spec.MaxCost),
			Details: map[string]int64{"estimate": plan.Cost, "max_cost": spec.MaxCost}}
	}
	if err := s.Ledger.Check(ctx, s.DB.Reader(), spec.WorkspaceID, plan.Cost); err != nil {
		return Created{Plan: plan}, creditError(err)
	}
	b, err := s.write(ctx, spec, cfg, in, plan)
	if err != nil {
		return Created{Plan: plan}, err
	}
	return Created{Batch: b, Plan: plan}, nil
}

// checkText refuses the spec's text fields that hold a NUL character (see
// errNUL); rows are checked by the planner.
func checkText(spec Spec) error {
	d := spec.Plan.Defaults
	fields := [][2]string{{"name", spec.Name}, {"template", spec.Plan.Template}, {"name_template", spec.Plan.NameTemplate},
		{"defaults.model", d.Model}, {"defaults.size", d.Size}, {"defaults.aspect_ratio", d.AspectRatio},
		{"defaults.quality", d.Quality}, {"defaults.format", d.Format}, {"defaults.style", d.Style},
		{"defaults.negative_prompt", d.NegativePrompt}, {"source_file", spec.SourceFile}}
	for k, v := range d.Options {
		fields = append(fields, [2]string{"defaults.options." + k, k + v})
	}
	for _, f := range fields {
		if strings.IndexByte(f[1], 0) >= 0 {
			return fieldError(f[0], "%s", errNUL)
		}
	}
	return nil
}

// planInput runs p over in's rows.
func planInput(ctx context.Context, p *Planner, in Input, yield func(generate.Request) error) error {
	src, err := in.Open()
	if err != nil {
		return err
	}
	return p.PlanRows(ctx, src, nil, yield)
}

// creditError turns a *ledger.ShortError into the API's 402.
func creditError(err error) error {
	var short *ledger.ShortError
	if !errors.As(err, &short) {
		return err
	}
	return &Error{Kind: Payment, Code: "insufficient_credits", Message: short.Error(),
		Details: map[string]any{"needed": short.Need, "available": short.Have, "shortfall": short.Need - short.Have, "quota": short.Quota}}
}

// write stores the batch planned as plan: the second pass over in.
func (s *Service) write(ctx context.Context, spec Spec, cfg Config, in Input, plan Summary) (store.Batch, error) {
	defaults, err := json.Marshal(defaultsJSON(cfg.Defaults))
	if err != nil {
		return store.Batch{}, err
	}
	second, err := NewPlanner(cfg)
	if err != nil {
		return store.Batch{}, err
	}
	sub := &submission{s: s, ctx: ctx, plan: plan, workspaceID: spec.WorkspaceID, providers: map[string]bool{},
		row: store.Batch{
			WorkspaceID: spec.WorkspaceID, ProjectID: spec.ProjectID, UserID: spec.UserID, Name: spec.Name,
			SourceFile: spec.SourceFile, Template: cfg.Template, Defaults: defaults, NamingTemplate: cfg.NameTemplate,
			Submitting: true,
		}}
	err = planInput(ctx, second, in, sub.add)
	if err == nil && sub.count != plan.Images {
		err = fmt.Errorf("the input changed while it was being read: %d images planned, then %d", plan.Images, sub.count)
	}
	if err == nil {
		err = sub.flush(true)
	}
	if err != nil {
		sub.abandon()
		return store.Batch{}, err
	}
	sub.start()
	return sub.b, nil
}

// submission writes one batch in chunks: Create's second pass.
type submission struct {
	s           *Service
	ctx         context.Context
	plan        Summary
	workspaceID int64
	row         store.Batch // the batch to create, submitting
	b           store.Batch // the batch created, once written
	written     bool
	chunk       []store.Item
	names       expand.Unique
	count       int
	providers   map[string]bool
}

// add takes the next planned request, writing a chunk when it is full
// (the last chunk is flush's, with the reservation).
func (sub *submission) add(req generate.Request) error {
	sub.count++
	sub.providers[req.Provider] = true
	sub.chunk = append(sub.chunk, itemOf(req, sub.workspaceID, sub.names.Claim(req.Name)))
	if len(sub.chunk) < submitChunk || sub.count == sub.plan.Images {
		return nil
	}
	if err := sub.flush(false); err != nil {
		return err
	}
	sub.chunk = sub.chunk[:0]
	return nil
}

// flush writes the chunk in a transaction of its own (the first one
// creating the batch); the final one also reserves the credits and makes
// the batch visible (finishSubmit).
func (sub *submission) flush(final bool) error {
	s, ctx := sub.s, sub.ctx
	return s.DB.Tx(ctx, func(tx *sql.Tx) error {
		if !sub.written {
			var err error
			if sub.b, err = s.DB.CreateBatch(ctx, tx, sub.row); err != nil {
				return err
			}
			sub.written = true
		}
		for i := range sub.chunk {
			sub.chunk[i].BatchID = sub.b.ID
		}
		if err := s.DB.InsertItems(ctx, tx, sub.chunk); err != nil {
			return err
		}
		if !final {
			return nil
		}
		return s.finishSubmit(ctx, tx, sub.b, sub.plan)
	})
}

// abandon removes a batch whose writing failed. It is still submitting
// (nothing of it runs); should even this fail, Repair removes it later.
func (sub *submission) abandon() {
	if !sub.written {
		return
	}
	ctx := context.WithoutCancel(sub.ctx)
	if err := sub.s.DB.Tx(ctx, func(tx *sql.Tx) error { return sub.s.DB.DeleteBatchByID(ctx, tx, sub.b.ID) }); err != nil {
		sub.s.logger().WarnContext(ctx, "cannot remove a batch whose creation failed; it is removed at the next start",
			"batch_id", sub.b.ID, "err", err)
	}
}

// start wakes the workers for the jobs queued with the reservation and
// queues the rest, a chunk at a time.
func (sub *submission) start() {
	s, plan := sub.s, sub.plan
	sub.b.Submitting, sub.b.Status = false, store.BatchQueued
	sub.b.TotalCount, sub.b.CostEstimate, sub.b.Reserved = int64(plan.Images), plan.Cost, plan.Cost
	if s.Wake != nil {
		var queues []string
		for p := range sub.providers {
			queues = append(queues, QueueFor(p))
		}
		s.Wake(queues)
	}
	if plan.Images <= submitChunk {
		return
	}
	if err := s.enqueuePending(sub.ctx, sub.b.ID); err != nil {
		// The batch exists and is paid for: Repair queues what is missing
		// at the next start, so the request reports success.
		s.logger().ErrorContext(sub.ctx, "batch created, but not all its jobs could be queued; they are queued at the next start",
			"batch_id", sub.b.ID, "err", err)
	}
}

// finishSubmit, in the last chunk's transaction, reserves the batch's
// credits, makes it visible and queues the jobs of its first items (in
// input order; enqueuePending queues the others after the commit).
func (s *Service) finishSubmit(ctx context.Context, tx *sql.Tx, b store.Batch, plan Summary) error {
	err := s.Ledger.Reserve(ctx, tx, ledger.Hold{WorkspaceID: b.WorkspaceID, BatchID: b.ID, Amount: plan.Cost,
		Key: fmt.Sprintf("reserve:batch:%d:create", b.ID), Note: fmt.Sprintf("batch %d: %d images", b.ID, plan.Images)})
	if err != nil {
		return creditError(err)
	}
	if err := s.DB.FinishSubmit(ctx, tx, b.ID, int64(plan.Images), plan.Cost, plan.Cost); err != nil {
		return err
	}
	first, err := s.DB.ItemsWithoutJob(ctx, tx, b.ID, 0, submitChunk)
	if err != nil {
		return err
	}
	return s.insertJobs(ctx, tx, first)
}

// itemOf is the item row of a planned request, named name in its batch.
func itemOf(req generate.Request, workspaceID int64, name string) store.Item {
	opts, _ := json.Marshal(req.Options) // a map of strings always encodes
	vars, _ := json.Marshal(req.Vars)
	return store.Item{
		WorkspaceID: workspaceID, SourceLine: int64(req.SourceLine), Index: int64(req.Index),
		Status: store.ItemPending, Prompt: req.Prompt, NegativePrompt: req.NegativePrompt,
		Model: req.Model, Provider: req.Provider, RemoteModel: req.RemoteModel,
		Width: int64(req.Width), Height: int64(req.Height), AspectRatio: req.AspectRatio,
		Quality: req.Quality, Style: req.Style, Format: req.Format, Seed: req.Seed, HasSeed: true,
		Options: opts, Vars: vars, Name: name, CostEstimate: req.Price,
	}
}

// defaultsJSON is how a batch shows its defaults: the fields that are set.
func defaultsJSON(d Defaults) map[string]any {
	out := map[string]any{}
	for k, v := range map[string]string{"model": d.Model, "size": d.Size, "aspect_ratio": d.AspectRatio,
		"quality": d.Quality, "format": d.Format, "style": d.Style, "negative_prompt": d.NegativePrompt} {
		if v != "" {
			out[k] = v
		}
	}
	if d.N > 0 {
		out["n"] = d.N
	}
	if d.HasSeed {
		out["seed"] = d.Seed
	}
	if len(d.Options) > 0 {
		out["options"] = d.Options
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
