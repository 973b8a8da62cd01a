package server

import (
	"context"
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/store"
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
	MaxCost       int64         `json:"max_cost"`
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

// batchSpec is a batch to create, from JSON or from an upload.
type batchSpec struct {
	Name          string
	ProjectID     int64
	SourceFile    string
	Template      string
	NameTemplate  string
	Defaults      batchDefaults
	Combinatorial bool
	MaxImages     int
	MaxCost       int64
	DryRun        bool
}

// toSpec is the service's form of spec for the caller of r.
func (spec batchSpec) toSpec(r *http.Request) batch.Spec {
	id := caller(r)
	d := spec.Defaults
	defaults := batch.Defaults{Model: d.Model, Size: d.Size, AspectRatio: d.AspectRatio, Quality: d.Quality,
		Format: d.Format, Style: d.Style, NegativePrompt: d.NegativePrompt, N: d.N, Options: maps.Clone(d.Options)}
	if d.Seed != nil {
		defaults.Seed, defaults.HasSeed = *d.Seed, true
	}
	return batch.Spec{
		WorkspaceID: id.WorkspaceID, UserID: id.UserID, ProjectID: spec.ProjectID, Name: spec.Name,
		SourceFile: spec.SourceFile, MaxCost: spec.MaxCost, DryRun: spec.DryRun,
		Plan: batch.Config{Template: spec.Template, NameTemplate: spec.NameTemplate, Defaults: defaults,
			Combinatorial: spec.Combinatorial, MaxPerRow: spec.MaxImages},
	}
}

// handleBatchCreate handles POST /api/v1/batches: a batch from a JSON body
// (prompts, rows or TXT text) or, with Content-Type multipart/form-data,
// from an uploaded CSV, TXT or JSONL file (see upload.go). Rows that cannot
// produce images are skipped and listed in "problems"; a batch with no
// valid image at all is a 422, one the workspace cannot pay for a 402.
// With dry_run the plan is returned (200) and nothing is stored.
func (s *Server) handleBatchCreate(w http.ResponseWriter, r *http.Request) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		return s.handleBatchUpload(w, r)
	}
	var req batchRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	in, err := requestInput(req)
	if err != nil {
		return err
	}
	return s.createBatch(w, r, batchSpec{
		Name: req.Name, ProjectID: req.ProjectID, SourceFile: "request", Template: req.Template,
		NameTemplate: req.NameTemplate, Defaults: req.Defaults, Combinatorial: req.Combinatorial,
		MaxImages: req.MaxImages, MaxCost: req.MaxCost, DryRun: req.DryRun,
	}, in)
}

// createBatch asks the batch service to plan spec over in and answers the
// plan (dry run) or the created batch with the rows it skipped.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, spec batchSpec, in batch.Input) error {
	svc, err := s.batches()
	if err != nil {
		return err
	}
	created, err := svc.Create(r.Context(), spec.toSpec(r), in)
	if err != nil {
		return err
	}
	if spec.DryRun {
		writeJSON(w, http.StatusOK, dryRunJSON(created.Plan))
		return nil
	}
	st, err := svc.Get(r.Context(), created.Batch.WorkspaceID, created.Batch.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/batches/"+itoa(created.Batch.ID))
	writeJSON(w, http.StatusCreated, createdBatchJSON{batchJSON: s.batchJSON(st),
		Problems: nonNil(created.Plan.Problems), ProblemCount: created.Plan.ProblemCount})
	return nil
}

// batches is the batch service, or a 503 when the server has none.
func (s *Server) batches() (*batch.Service, error) {
	if s.ext.Batches == nil {
		return nil, Errorf(http.StatusServiceUnavailable, "unavailable", "this server cannot run batches")
	}
	return s.ext.Batches, nil
}

// createdBatchJSON is the answer to a batch creation: the batch and the
// rows that were skipped.
type createdBatchJSON struct {
	batchJSON
	Problems     []batch.Problem `json:"problems"`
	ProblemCount int             `json:"problem_count"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
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
	DryRun        bool                       `json:"dry_run"`
	Rows          int                        `json:"rows"`
	InvalidRows   int                        `json:"invalid_rows"`
	Images        int                        `json:"images"`
	EstimatedCost int64                      `json:"estimated_cost"`
	PerModel      map[string]batch.ModelPlan `json:"per_model"`
	FirstItems    []plannedItemJSON          `json:"first_items"`
	Problems      []batch.Problem            `json:"problems"`
	ProblemCount  int                        `json:"problem_count"`
}

func dryRunJSON(st batch.Summary) dryRunPlanJSON {
	out := dryRunPlanJSON{
		DryRun: true, Rows: st.Rows, InvalidRows: st.InvalidRows, Images: st.Images, EstimatedCost: st.Cost,
		PerModel: st.PerModel, FirstItems: []plannedItemJSON{}, Problems: nonNil(st.Problems), ProblemCount: st.ProblemCount,
	}
	if out.PerModel == nil {
		out.PerModel = map[string]batch.ModelPlan{}
	}
	for _, it := range st.First {
		out.FirstItems = append(out.FirstItems, plannedItemJSON{
			Line: it.SourceLine, Index: it.Index, Name: it.Name + generate.Extension(it.Format), Prompt: it.Prompt,
			NegativePrompt: it.NegativePrompt, Model: it.Model, Provider: it.Provider, Width: it.Width,
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
	// CostReserved is the part of the estimate still held: the credits of
	// the images not made yet.
	CostReserved int64 `json:"cost_reserved"`
	// ETASeconds is the time left at the rate so far; null until the
	// first image is done and once the batch is final.
	ETASeconds *int64     `json:"eta_seconds"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// batchJSON renders a batch with its counts.
func (s *Server) batchJSON(st batch.Status) batchJSON {
	b := st.Batch
	counts := make(map[string]int64, len(st.Counts))
	for k, v := range st.Counts {
		counts[string(k)] = v
	}
	defaults := b.Defaults
	if len(defaults) == 0 {
		defaults = json.RawMessage(`{}`)
	}
	out := batchJSON{
		ID: b.ID, ProjectID: optID(b.ProjectID), Name: b.Name, Status: string(b.Status), SourceFile: b.SourceFile,
		Template: b.Template, NameTemplate: b.NamingTemplate, Defaults: defaults, Total: b.TotalCount, Counts: counts,
		CostEstimate: b.CostEstimate, CostSpent: b.CostSpent, CostReserved: b.Reserved, CreatedAt: b.CreatedAt,
		StartedAt: optTime(b.StartedAt), FinishedAt: optTime(b.FinishedAt),
	}
	if eta := st.ETA(s.now()); eta != nil {
		secs := int64(*eta / time.Second)
		out.ETASeconds = &secs
	}
	return out
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
	f, err := batchFilter(r)
	if err != nil {
		return err
	}
	svc, err := s.batches()
	if err != nil {
		return err
	}
	bs, err := svc.List(r.Context(), caller(r).WorkspaceID, f, after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, bs, limit, s.batchJSON, func(st batch.Status) int64 { return st.ID })
	return nil
}

// batchFilter reads the batch list's query parameters.
func batchFilter(r *http.Request) (store.BatchFilter, error) {
	q := r.URL.Query()
	var f store.BatchFilter
	var err error
	if v := q.Get("project_id"); v != "" {
		f.ProjectID, err = strconv.ParseInt(v, 10, 64)
		if err != nil || f.ProjectID <= 0 {
			return f, Errorf(http.StatusBadRequest, "invalid_parameter", "project_id must be a project id")
		}
	}
	if v := q.Get("status"); v != "" {
		if !slices.Contains(batchStatuses, store.BatchStatus(v)) {
			return f, Errorf(http.StatusBadRequest, "invalid_parameter", "status must be one of %s", joinStatuses(batchStatuses))
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
				return f, Errorf(http.StatusBadRequest, "invalid_parameter", "%s must be an RFC 3339 time such as 2025-01-31T12:00:00Z", p.name)
			}
			*p.dst = t
		}
	}
	return f, nil
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
	return s.batchAction(w, r, (*batch.Service).Get)
}

// batchAction runs act (a batch service action) on the caller's batch
// {id} and answers the batch as it is afterwards.
func (s *Server) batchAction(w http.ResponseWriter, r *http.Request, act func(*batch.Service, context.Context, int64, int64) (batch.Status, error)) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	svc, err := s.batches()
	if err != nil {
		return err
	}
	st, err := act(svc, r.Context(), caller(r).WorkspaceID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.batchJSON(st))
	return nil
}

// handleBatchCancel handles POST /api/v1/batches/{id}/cancel: every pending
// item is canceled and its queued job deleted; running items finish. A
// final batch is a 409.
func (s *Server) handleBatchCancel(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, (*batch.Service).Cancel)
}

// handleBatchPause handles POST /api/v1/batches/{id}/pause: the queued
// jobs of the pending items are deleted (the items stay pending) and the
// batch is paused; running items finish. Only a queued or running batch
// can pause.
func (s *Server) handleBatchPause(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, (*batch.Service).Pause)
}

// handleBatchResume handles POST /api/v1/batches/{id}/resume: every
// pending item without a job is queued again. Only a paused batch can
// resume.
func (s *Server) handleBatchResume(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, (*batch.Service).Resume)
}

// handleBatchRetry handles POST /api/v1/batches/{id}/retry: the failed
// items go back to pending with new jobs (in a paused batch they wait for
// resume), their cost reserved again. A batch without failed items is a
// 409, one the workspace cannot pay for again a 402.
func (s *Server) handleBatchRetry(w http.ResponseWriter, r *http.Request) error {
	return s.batchAction(w, r, (*batch.Service).Retry)
}

// handleBatchDelete handles DELETE /api/v1/batches/{id}: the batch, its
// items and images go, its queued jobs are deleted and what it held is
// released; image files no other image uses are removed by the blob
// sweeper. 204 when done.
func (s *Server) handleBatchDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	svc, err := s.batches()
	if err != nil {
		return err
	}
	if err := svc.Delete(r.Context(), caller(r).WorkspaceID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// requestInput is the input of a JSON batch request: exactly one of its
// prompts, rows or TXT text.
func requestInput(req batchRequest) (batch.Input, error) {
	sources := 0
	for _, given := range []bool{req.Prompts != nil, req.Rows != nil, req.Text != nil} {
		if given {
			sources++
		}
	}
	if sources != 1 {
		return nil, Errorf(http.StatusBadRequest, "invalid_request", "give exactly one of prompts, rows or text (or upload a file as multipart/form-data)")
	}
	return batch.InputFunc(func() (batch.RowSource, error) {
		switch {
		case req.Prompts != nil:
			return &promptRows{prompts: req.Prompts}, nil
		case req.Rows != nil:
			return &jsonRows{rows: req.Rows}, nil
		default:
			return openInput("request.txt", strings.NewReader(*req.Text), input.Options{Format: input.FormatTXT})
		}
	}), nil
}
