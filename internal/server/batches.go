package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/expand"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/store"
)

// Limits of batch creation.
const (
	// defaultMaxBatchImages is Extra.MaxBatchImages's default.
	defaultMaxBatchImages = 100_000
	// maxProblems is how many problems a response lists; problem_count
	// says how many there were in all.
	maxProblems = 100
	// dryRunShow is how many planned items a dry run shows.
	dryRunShow = 10
	// jobChunk is how many jobs one InsertManyTx writes.
	jobChunk = 500
)

// batchRequest is the JSON body of POST /api/v1/batches. Exactly one of
// Prompts, Rows and Text gives the input.
type batchRequest struct {
	Name      string   `json:"name"`
	ProjectID int64    `json:"project_id"`
	Prompts   []string `json:"prompts"`
	// Rows are objects with the fields of CSV columns: prompt, model, size,
	// …, opt.<name>, and template variables under any other name.
	Rows []map[string]json.RawMessage `json:"rows"`
	// Text is the content of a TXT input file.
	Text          *string       `json:"text"`
	Template      string        `json:"template"`
	NameTemplate  string        `json:"name_template"`
	Defaults      batchDefaults `json:"defaults"`
	Combinatorial bool          `json:"combinatorial"`
	MaxImages     int           `json:"max_images"`
	DryRun        bool          `json:"dry_run"`
}

// batchDefaults are the batch-wide values a row falls back on.
type batchDefaults struct {
	Model          string            `json:"model,omitempty"`
	Size           string            `json:"size,omitempty"`
	AspectRatio    string            `json:"aspect_ratio,omitempty"`
	Quality        string            `json:"quality,omitempty"`
	Format         string            `json:"format,omitempty"`
	Style          string            `json:"style,omitempty"`
	NegativePrompt string            `json:"negative_prompt,omitempty"`
	N              int               `json:"n,omitempty"`
	Seed           *int64            `json:"seed,omitempty"`
	Options        map[string]string `json:"options,omitempty"`
}

// batchSpec is a batch to plan, from JSON or from an upload.
type batchSpec struct {
	Name          string
	ProjectID     int64
	SourceFile    string
	Template      string
	NameTemplate  string
	Defaults      batchDefaults
	Combinatorial bool
	MaxImages     int
	DryRun        bool
}

// problemJSON is one invalid row of a batch.
type problemJSON struct {
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// planStats sums up a plan.
type planStats struct {
	Rows         int
	InvalidRows  int
	Images       int
	Cost         int64
	PerModel     map[string]*modelPlan
	First        []batch.Item
	Problems     []problemJSON
	ProblemCount int
}

type modelPlan struct {
	Images int   `json:"images"`
	Cost   int64 `json:"cost"`
}

func (st *planStats) problem(p problemJSON) {
	st.ProblemCount++
	if len(st.Problems) < maxProblems {
		st.Problems = append(st.Problems, p)
	}
}

// handleBatchCreate handles POST /api/v1/batches: a batch from a JSON body
// (prompts, rows or TXT text) or, with Content-Type multipart/form-data,
// from an uploaded CSV, TXT or JSONL file (see upload.go). Rows that cannot
// produce images are skipped and listed in "problems"; a batch with no
// valid image at all is a 422. With dry_run the plan is returned (200) and
// nothing is stored.
func (s *Server) handleBatchCreate(w http.ResponseWriter, r *http.Request) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		return s.handleBatchUpload(w, r)
	}
	var req batchRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	spec := batchSpec{
		Name: req.Name, ProjectID: req.ProjectID, SourceFile: "request", Template: req.Template,
		NameTemplate: req.NameTemplate, Defaults: req.Defaults, Combinatorial: req.Combinatorial,
		MaxImages: req.MaxImages, DryRun: req.DryRun,
	}
	sources := 0
	for _, given := range []bool{req.Prompts != nil, req.Rows != nil, req.Text != nil} {
		if given {
			sources++
		}
	}
	if sources != 1 {
		return Errorf(http.StatusBadRequest, "invalid_request", "give exactly one of prompts, rows or text (or upload a file as multipart/form-data)")
	}
	open := func() (rowSource, error) {
		switch {
		case req.Prompts != nil:
			return &promptRows{prompts: req.Prompts}, nil
		case req.Rows != nil:
			return &jsonRows{rows: req.Rows}, nil
		default:
			return openInput("request.txt", strings.NewReader(*req.Text), input.Options{Format: input.FormatTXT})
		}
	}
	return s.createBatch(w, r, spec, open)
}

// createBatch plans spec over the rows open returns and either answers
// the plan (dry run) or submits the batch with its items and jobs.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, spec batchSpec, open func() (rowSource, error)) error {
	ctx := r.Context()
	id := caller(r)
	planner, err := s.planner(spec)
	if err != nil {
		return err
	}
	if spec.ProjectID < 0 {
		return Errorf(http.StatusBadRequest, "invalid_field", "project_id must be a project id")
	}
	if spec.ProjectID != 0 {
		if _, err := s.db.GetProject(ctx, s.db.Reader(), id.WorkspaceID, spec.ProjectID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such project",
					Details: map[string]string{"field": "project_id"}}
			}
			return err
		}
	}
	src, err := open()
	if err != nil {
		return err
	}
	if in, ok := src.(*input.Reader); ok && spec.Template == "" && !in.HasPrompt() {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_input",
			Message: fmt.Sprintf("the file has no prompt column (columns: %s); give a template to build prompts from its columns",
				strings.Join(in.Header(), ", "))}
	}

	if spec.DryRun {
		st, err := s.plan(ctx, planner, src, func(batch.Item) error { return nil })
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, dryRunJSON(st))
		return nil
	}

	defaults, err := json.Marshal(spec.Defaults)
	if err != nil {
		return err
	}
	sub := s.submitter()
	if sub == nil {
		return Errorf(http.StatusServiceUnavailable, "unavailable", "this server cannot queue jobs")
	}
	var st planStats
	b, err := sub.Submit(ctx, store.Batch{
		WorkspaceID: id.WorkspaceID, ProjectID: spec.ProjectID, UserID: id.UserID, Name: spec.Name,
		SourceFile: spec.SourceFile, Template: spec.Template, Defaults: defaults, NamingTemplate: spec.NameTemplate,
	}, func(yield func(batch.Item) error) error {
		st, err = s.plan(ctx, planner, src, yield)
		if err != nil {
			return err
		}
		if st.Images == 0 {
			return &Error{Status: http.StatusUnprocessableEntity, Code: "no_valid_rows",
				Message: "no row of the input can produce an image; see details for each problem",
				Details: map[string]any{"problems": st.Problems, "problem_count": st.ProblemCount}}
		}
		return nil
	})
	if err != nil {
		return err
	}
	out, err := s.batchJSON(ctx, s.db.Writer(), b)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/batches/"+itoa(b.ID))
	writeJSON(w, http.StatusCreated, createdBatchJSON{batchJSON: out, Problems: nonNil(st.Problems), ProblemCount: st.ProblemCount})
	return nil
}

// createdBatchJSON is the answer to a batch creation: the batch and the
// rows that were skipped.
type createdBatchJSON struct {
	batchJSON
	Problems     []problemJSON `json:"problems"`
	ProblemCount int           `json:"problem_count"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// planner builds the batch.Planner of spec, refusing bad templates and
// defaults with a 422 that names the field.
func (s *Server) planner(spec batchSpec) (*batch.Planner, error) {
	bad := func(field, format string, args ...any) error {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Message: field + ": " + fmt.Sprintf(format, args...),
			Details: map[string]string{"field": field}}
	}
	limit := s.maxBatchImages()
	if spec.MaxImages < 0 || spec.MaxImages > limit {
		return nil, bad("max_images", "must be between 1 and %d (0 means the default)", limit)
	}
	d := spec.Defaults
	if d.N < 0 || d.N > limit {
		return nil, bad("defaults.n", "must be between 1 and %d (0 means 1)", limit)
	}
	defaults := batch.Defaults{
		Model: strings.TrimSpace(d.Model), Size: strings.TrimSpace(d.Size), AspectRatio: strings.TrimSpace(d.AspectRatio),
		Quality: strings.TrimSpace(d.Quality), Format: strings.ToLower(strings.TrimSpace(d.Format)),
		Style: strings.TrimSpace(d.Style), NegativePrompt: d.NegativePrompt, N: d.N,
	}
	if d.Seed != nil {
		if *d.Seed < 0 || *d.Seed > batch.MaxSeed {
			return nil, bad("defaults.seed", "must be between 0 and %d", batch.MaxSeed)
		}
		defaults.Seed, defaults.HasSeed = *d.Seed, true
	}
	if len(d.Options) > 0 {
		defaults.Options = maps.Clone(d.Options)
	}
	cat := s.catalog()
	p := &batch.Planner{
		Catalog:   cat,
		Expander:  &expand.Expander{Combinatorial: spec.Combinatorial, MaxImages: spec.MaxImages, Wildcards: s.ext.Wildcards},
		Defaults:  defaults,
		Now:       s.now(),
		Available: s.ext.Available,
	}
	if spec.Template != "" {
		t, err := expand.Parse(spec.Template)
		if err != nil {
			return nil, bad("template", "%v", err)
		}
		p.Template = t
	}
	if spec.NameTemplate != "" {
		nt, err := expand.ParseName(spec.NameTemplate)
		if err != nil {
			return nil, bad("name_template", "%v", err)
		}
		p.Name = nt
	}
	return p, nil
}

func (s *Server) catalog() *catalog.Catalog {
	if s.ext.Catalog != nil {
		return s.ext.Catalog
	}
	return catalog.Default()
}

func (s *Server) maxBatchImages() int {
	if s.ext.MaxBatchImages > 0 {
		return s.ext.MaxBatchImages
	}
	return defaultMaxBatchImages
}

func (s *Server) submitter() *batch.Submitter { return s.ext.Submitter }

// river is the queue client that inserts and cancels jobs.
func (s *Server) river() *river.Client[*sql.Tx] {
	if s.ext.River != nil {
		return s.ext.River
	}
	if s.ext.Submitter != nil {
		return s.ext.Submitter.River
	}
	return nil
}

// plan runs every row of src through planner, calling yield for each item,
// and sums up what it saw. A batch over the image cap stops with a 422.
func (s *Server) plan(ctx context.Context, planner *batch.Planner, src rowSource, yield func(batch.Item) error) (planStats, error) {
	st := planStats{PerModel: map[string]*modelPlan{}}
	limit := s.maxBatchImages()
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		row, err := src.Next()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		var re *input.RowError
		if errors.As(err, &re) {
			st.Rows++
			st.InvalidRows++
			st.problem(problemJSON{Line: re.Line, Column: re.Column, Message: re.Msg})
			continue
		}
		if err != nil {
			// The parser cannot go on (a runaway quoted field, a read
			// error): the input as a whole is unusable.
			return st, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_input", Message: err.Error()}
		}
		st.Rows++
		var yerr error
		problems := planner.Plan(row, func(it batch.Item) bool {
			if st.Images >= limit {
				yerr = &Error{Status: http.StatusUnprocessableEntity, Code: "batch_too_large",
					Message: fmt.Sprintf("the batch would have more than %d images; split the input", limit)}
				return false
			}
			st.Images++
			st.Cost += it.Price
			mp := st.PerModel[it.Model.ID]
			if mp == nil {
				mp = &modelPlan{}
				st.PerModel[it.Model.ID] = mp
			}
			mp.Images++
			mp.Cost += it.Price
			if len(st.First) < dryRunShow {
				st.First = append(st.First, it)
			}
			yerr = yield(it)
			return yerr == nil
		})
		if yerr != nil {
			return st, yerr
		}
		if len(problems) > 0 {
			st.InvalidRows++
			for _, p := range problems {
				st.problem(problemJSON{Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Msg})
			}
		}
	}
}

// plannedItemJSON is a planned image in a dry run.
type plannedItemJSON struct {
	Line           int      `json:"line"`
	Index          int      `json:"index"`
	Name           string   `json:"name"`
	Prompt         string   `json:"prompt"`
	NegativePrompt string   `json:"negative_prompt,omitempty"`
	Model          string   `json:"model"`
	Provider       string   `json:"provider"`
	Width          int      `json:"width"`
	Height         int      `json:"height"`
	AspectRatio    string   `json:"aspect_ratio,omitempty"`
	Quality        string   `json:"quality,omitempty"`
	Style          string   `json:"style,omitempty"`
	Format         string   `json:"format"`
	Seed           int64    `json:"seed"`
	Price          int64    `json:"price"`
	Warnings       []string `json:"warnings,omitempty"`
}

// dryRunPlanJSON is the answer to a dry run.
type dryRunPlanJSON struct {
	DryRun        bool                  `json:"dry_run"`
	Rows          int                   `json:"rows"`
	InvalidRows   int                   `json:"invalid_rows"`
	Images        int                   `json:"images"`
	EstimatedCost int64                 `json:"estimated_cost"`
	PerModel      map[string]*modelPlan `json:"per_model"`
	FirstItems    []plannedItemJSON     `json:"first_items"`
	Problems      []problemJSON         `json:"problems"`
	ProblemCount  int                   `json:"problem_count"`
}

func dryRunJSON(st planStats) dryRunPlanJSON {
	out := dryRunPlanJSON{
		DryRun: true, Rows: st.Rows, InvalidRows: st.InvalidRows, Images: st.Images, EstimatedCost: st.Cost,
		PerModel: st.PerModel, FirstItems: []plannedItemJSON{}, Problems: nonNil(st.Problems), ProblemCount: st.ProblemCount,
	}
	for _, it := range st.First {
		out.FirstItems = append(out.FirstItems, plannedItemJSON{
			Line: it.SourceLine, Index: it.Index, Name: it.Name + generate.Extension(it.Format), Prompt: it.Prompt,
			NegativePrompt: it.NegativePrompt, Model: it.Model.ID, Provider: it.Model.Provider, Width: it.Width,
			Height: it.Height, AspectRatio: it.AspectRatio, Quality: it.Quality, Style: it.Style, Format: it.Format,
			Seed: it.Seed, Price: it.Price, Warnings: it.Warnings,
		})
	}
	return out
}

// batchJSON is a batch as the API shows it, with live counts.
type batchJSON struct {
	ID           int64            `json:"id"`
	ProjectID    *int64           `json:"project_id"`
	Name         string           `json:"name"`
	Status       string           `json:"status"`
	SourceFile   string           `json:"source_file"`
	Template     string           `json:"template"`
	NameTemplate string           `json:"name_template"`
	Defaults     json.RawMessage  `json:"defaults"`
	Total        int64            `json:"total"`
	Counts       map[string]int64 `json:"counts"`
	CostEstimate int64            `json:"cost_estimate"`
	CostSpent    int64            `json:"cost_spent"`
	// ETASeconds is the time left at the rate so far; null until the
	// first image is done and once the batch is final.
	ETASeconds *int64     `json:"eta_seconds"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// batchJSON reads b's live counts and renders it.
func (s *Server) batchJSON(ctx context.Context, q store.Querier, b store.Batch) (batchJSON, error) {
	prog, err := s.db.GetBatchProgress(ctx, q, b.ID)
	if err != nil {
		return batchJSON{}, err
	}
	counts := map[string]int64{}
	var total int64
	for _, st := range []store.ItemStatus{store.ItemPending, store.ItemRunning, store.ItemSucceeded, store.ItemFailed, store.ItemCanceled} {
		counts[string(st)] = prog.Counts[st]
		total += prog.Counts[st]
	}
	defaults := b.Defaults
	if len(defaults) == 0 {
		defaults = json.RawMessage(`{}`)
	}
	out := batchJSON{
		ID: b.ID, ProjectID: optID(b.ProjectID), Name: b.Name, Status: string(b.Status), SourceFile: b.SourceFile,
		Template: b.Template, NameTemplate: b.NamingTemplate, Defaults: defaults, Total: total, Counts: counts,
		CostEstimate: b.CostEstimate, CostSpent: prog.CostSpent, CreatedAt: b.CreatedAt,
		StartedAt: optTime(b.StartedAt), FinishedAt: optTime(b.FinishedAt),
	}
	out.ETASeconds = eta(b, prog, s.now())
	return out, nil
}

// eta estimates the seconds left from the rate of finished images since
// the batch started.
func eta(b store.Batch, p store.BatchProgress, now time.Time) *int64 {
	if b.Status.Final() || b.Status == store.BatchPaused || b.StartedAt.IsZero() {
		return nil
	}
	done := p.Counts[store.ItemSucceeded] + p.Counts[store.ItemFailed]
	left := p.Counts[store.ItemPending] + p.Counts[store.ItemRunning]
	elapsed := now.Sub(b.StartedAt)
	if done == 0 || elapsed <= 0 {
		return nil
	}
	secs := int64((time.Duration(left) * elapsed / time.Duration(done)).Round(time.Second) / time.Second)
	return &secs
}

func optID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// pageJSON is a page of a list: {"data": […], "next_cursor": "…"|null}.
type pageJSON[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// writePage answers a page of rows read with limit+1 so that the extra row,
// when there is one, proves a next page exists. The cursor is the id of
// the last row shown.
func writePage[R, T any](w http.ResponseWriter, rows []R, limit int, render func(R) T, id func(R) int64) {
	out := pageJSON[T]{Data: make([]T, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		c := itoa(id(rows[len(rows)-1]))
		out.NextCursor = &c
	}
	for _, r := range rows {
		out.Data = append(out.Data, render(r))
	}
	writeJSON(w, http.StatusOK, out)
}

// batchStatuses are the accepted values of ?status= on the batch list.
var batchStatuses = []store.BatchStatus{store.BatchQueued, store.BatchRunning, store.BatchPaused,
	store.BatchSucceeded, store.BatchFailed, store.BatchCanceled, store.BatchPartial}

// handleBatchList handles GET /api/v1/batches?project_id=&status=
// &created_after=&created_before=&after=&limit=: the workspace's batches,
// newest first.
func (s *Server) handleBatchList(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var f store.BatchFilter
	if v := q.Get("project_id"); v != "" {
		f.ProjectID, err = strconv.ParseInt(v, 10, 64)
		if err != nil || f.ProjectID <= 0 {
			return Errorf(http.StatusBadRequest, "invalid_parameter", "project_id must be a project id")
		}
	}
	if v := q.Get("status"); v != "" {
		if !slices.Contains(batchStatuses, store.BatchStatus(v)) {
			return Errorf(http.StatusBadRequest, "invalid_parameter", "status must be one of %s", joinStatuses(batchStatuses))
		}
		f.Status = store.BatchStatus(v)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"created_after", &f.CreatedAfter}, {"created_before", &f.CreatedBefore}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return Errorf(http.StatusBadRequest, "invalid_parameter", "%s must be an RFC 3339 time such as 2025-01-31T12:00:00Z", p.name)
			}
			*p.dst = t
		}
	}
	ctx := r.Context()
	bs, err := s.db.ListBatches(ctx, s.db.Reader(), caller(r).WorkspaceID, f, after, limit+1)
	if err != nil {
		return err
	}
	rendered := make(map[int64]batchJSON, len(bs))
	for _, b := range bs[:min(len(bs), limit)] {
		j, err := s.batchJSON(ctx, s.db.Reader(), b)
		if err != nil {
			return err
		}
		rendered[b.ID] = j
	}
	writePage(w, bs, limit, func(b store.Batch) batchJSON { return rendered[b.ID] }, func(b store.Batch) int64 { return b.ID })
	return nil
}

func joinStatuses[S ~string](ss []S) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// handleBatchGet handles GET /api/v1/batches/{id}: status, counts by item
// state, cost so far and ETA.
func (s *Server) handleBatchGet(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	b, err := s.db.GetBatch(r.Context(), s.db.Reader(), caller(r).WorkspaceID, id)
	if err != nil {
		return err
	}
	out, err := s.batchJSON(r.Context(), s.db.Reader(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// errBatchState is the 409 of an action the batch's status does not allow.
func errBatchState(b store.Batch, action string) error {
	return &Error{Status: http.StatusConflict, Code: "invalid_state",
		Message: fmt.Sprintf("cannot %s a batch that is %s", action, b.Status), Details: map[string]string{"status": string(b.Status)}}
}

// batchAction runs fn on the caller's batch {id} in one transaction and
// answers the batch as it is afterwards.
func (s *Server) batchAction(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context, tx *sql.Tx, b store.Batch) error) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	ws := caller(r).WorkspaceID
	var out batchJSON
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		b, err := s.db.GetBatch(ctx, tx, ws, id)
		if err != nil {
			return err
		}
		if err := fn(ctx, tx, b); err != nil {
			return err
		}
		if err := s.db.RecountBatch(ctx, tx, id); err != nil {
			return err
		}
		if b, err = s.db.GetBatch(ctx, tx, ws, id); err != nil {
			return err
		}
		out, err = s.batchJSON(ctx, tx, b)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleBatchCancel handles POST /api/v1/batches/{id}/cancel: every pending
// item is canceled and its queued job cancelled with it; running items
// finish. A final batch is a 409.
func (s *Server) handleBatchCancel(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, func(ctx context.Context, tx *sql.Tx, b store.Batch) error {
		if b.Status.Final() {
			return errBatchState(b, "cancel")
		}
		if err := s.cancelJobs(ctx, tx, b.ID, []store.ItemStatus{store.ItemPending}, store.WaitingJobStates); err != nil {
			return err
		}
		if _, err := s.db.MoveBatchItems(ctx, tx, b.ID, store.ItemPending, store.ItemCanceled); err != nil {
			return err
		}
		return s.db.SetBatchStatus(ctx, tx, b.ID, store.BatchCanceled)
	})
}

// handleBatchPause handles POST /api/v1/batches/{id}/pause: the queued
// jobs of the pending items are cancelled (the items stay pending) and the
// batch is paused; running items finish. Only a queued or running batch
// can pause.
func (s *Server) handleBatchPause(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, func(ctx context.Context, tx *sql.Tx, b store.Batch) error {
		if b.Status != store.BatchQueued && b.Status != store.BatchRunning {
			return errBatchState(b, "pause")
		}
		if err := s.cancelJobs(ctx, tx, b.ID, []store.ItemStatus{store.ItemPending}, store.WaitingJobStates); err != nil {
			return err
		}
		return s.db.SetBatchStatus(ctx, tx, b.ID, store.BatchPaused)
	})
}

// handleBatchResume handles POST /api/v1/batches/{id}/resume: every
// pending item without a live job is queued again. Only a paused batch can
// resume.
func (s *Server) handleBatchResume(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, func(ctx context.Context, tx *sql.Tx, b store.Batch) error {
		if b.Status != store.BatchPaused {
			return errBatchState(b, "resume")
		}
		items, err := s.db.PendingItemsWithoutJob(ctx, tx, b.ID)
		if err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, items); err != nil {
			return err
		}
		return s.reopen(ctx, tx, b)
	})
}

// handleBatchRetry handles POST /api/v1/batches/{id}/retry: the failed
// items go back to pending with new jobs (in a paused batch they wait for
// resume). A batch without failed items is a 409.
func (s *Server) handleBatchRetry(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, func(ctx context.Context, tx *sql.Tx, b store.Batch) error {
		items, err := s.db.MoveBatchItems(ctx, tx, b.ID, store.ItemFailed, store.ItemPending)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return &Error{Status: http.StatusConflict, Code: "nothing_to_retry", Message: "the batch has no failed items"}
		}
		if b.Status == store.BatchPaused {
			return nil
		}
		if err := s.enqueue(ctx, tx, items); err != nil {
			return err
		}
		return s.reopen(ctx, tx, b)
	})
}

// reopen sets the status of a batch that has work again (resumed, retried,
// regenerated): running when it has started before, queued otherwise, or
// its final status when nothing is left to do after all.
func (s *Server) reopen(ctx context.Context, tx *sql.Tx, b store.Batch) error {
	prog, err := s.db.GetBatchProgress(ctx, tx, b.ID)
	if err != nil {
		return err
	}
	status := store.BatchQueued
	switch {
	case prog.Counts[store.ItemPending]+prog.Counts[store.ItemRunning] == 0:
		status = finalStatus(prog)
	case !b.StartedAt.IsZero():
		status = store.BatchRunning
	}
	return s.db.SetBatchStatus(ctx, tx, b.ID, status)
}

// finalStatus is the status of a batch with nothing left to run.
func finalStatus(p store.BatchProgress) store.BatchStatus {
	ok, failed, canceled := p.Counts[store.ItemSucceeded], p.Counts[store.ItemFailed], p.Counts[store.ItemCanceled]
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

// handleBatchDelete handles DELETE /api/v1/batches/{id}: the batch, its
// items and images go, its jobs are cancelled, and the image files that no
// other image uses are deleted. 204 when done.
func (s *Server) handleBatchDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var keys []string
	err = s.db.Tx(r.Context(), func(tx *sql.Tx) error {
		keys, err = s.deleteBatchTx(r.Context(), tx, caller(r).WorkspaceID, id)
		return err
	})
	if err != nil {
		return err
	}
	s.deleteBlobs(r.Context(), keys)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteBatchTx deletes a batch inside tx and returns the blob keys its
// images used, for deleteBlobs once tx has committed.
func (s *Server) deleteBatchTx(ctx context.Context, tx *sql.Tx, ws, id int64) ([]string, error) {
	if _, err := s.db.GetBatch(ctx, tx, ws, id); err != nil {
		return nil, err
	}
	keys, err := s.db.BatchBlobKeys(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if err := s.cancelJobs(ctx, tx, id, nil, store.LiveJobStates); err != nil {
		return nil, err
	}
	if err := s.db.DeleteBatch(ctx, tx, ws, id); err != nil {
		return nil, err
	}
	return keys, nil
}

// cancelJobs cancels, inside tx, the image jobs in one of states whose
// items are in the batch with one of itemStatuses (any when empty).
func (s *Server) cancelJobs(ctx context.Context, tx *sql.Tx, batchID int64, itemStatuses []store.ItemStatus, states []store.JobState) error {
	ids, err := s.db.BatchJobIDs(ctx, tx, batchID, itemStatuses, states)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	rc := s.river()
	if rc == nil {
		return errors.New("cancel jobs: no queue client configured")
	}
	for _, id := range ids {
		if _, err := rc.JobCancelTx(ctx, tx, id); err != nil && !errors.Is(err, rivertype.ErrNotFound) {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
	}
	return nil
}

// enqueue inserts, inside tx, one image job per item on its provider's
// queue.
func (s *Server) enqueue(ctx context.Context, tx *sql.Tx, items []store.QueuedItem) error {
	if len(items) == 0 {
		return nil
	}
	rc := s.river()
	if rc == nil {
		return errors.New("enqueue: no queue client configured")
	}
	maxAttempts := 0
	if s.ext.Submitter != nil {
		maxAttempts = s.ext.Submitter.MaxAttempts
	}
	for start := 0; start < len(items); start += jobChunk {
		chunk := items[start:min(start+jobChunk, len(items))]
		params := make([]river.InsertManyParams, len(chunk))
		for i, it := range chunk {
			params[i] = river.InsertManyParams{Args: generate.ImageArgs{ItemID: it.ID},
				InsertOpts: &river.InsertOpts{Queue: batch.QueueFor(it.Provider), MaxAttempts: maxAttempts}}
		}
		if _, err := rc.InsertManyTx(ctx, tx, params); err != nil {
			return fmt.Errorf("enqueue image jobs: %w", err)
		}
	}
	return nil
}
