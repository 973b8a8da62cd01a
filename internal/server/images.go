package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/expand"
	"bulkgen/internal/input"
	"bulkgen/internal/store"
)

// maxRegenerate bounds the images of one regeneration request.
const maxRegenerate = 100

// imageJSON is an image as the API shows it.
type imageJSON struct {
	ID         int64     `json:"id"`
	ItemID     int64     `json:"item_id"`
	BatchID    int64     `json:"batch_id"`
	ParentID   *int64    `json:"parent_id"`
	Generation int64     `json:"generation"`
	SHA256     string    `json:"sha256"`
	Bytes      int64     `json:"bytes"`
	Width      int64     `json:"width"`
	Height     int64     `json:"height"`
	Format     string    `json:"format"`
	Seed       *int64    `json:"seed"`
	Provider   string    `json:"provider"`
	Model      string    `json:"model"`
	RequestID  string    `json:"request_id"`
	Cost       int64     `json:"cost"`
	LatencyMS  int64     `json:"latency_ms"`
	Review     string    `json:"review"`
	IsPreview  bool      `json:"is_preview"`
	FileURL    string    `json:"file_url"`
	CreatedAt  time.Time `json:"created_at"`
}

func toImageJSON(im store.Image) imageJSON {
	var seed *int64
	if im.HasSeed {
		seed = &im.Seed
	}
	return imageJSON{
		ID: im.ID, ItemID: im.ItemID, BatchID: im.BatchID, ParentID: optID(im.ParentID), Generation: im.Generation,
		SHA256: im.SHA256, Bytes: im.Bytes, Width: im.Width, Height: im.Height, Format: im.Format, Seed: seed,
		Provider: im.Provider, Model: im.Model, RequestID: im.RequestID, Cost: im.Cost, LatencyMS: im.LatencyMS,
		Review: string(im.Review), IsPreview: im.IsPreview, FileURL: "/api/v1/images/" + itoa(im.ID) + "/file",
		CreatedAt: im.CreatedAt,
	}
}

// imageDetailJSON is one image with the request that made it.
type imageDetailJSON struct {
	imageJSON
	Item itemJSON `json:"item"`
}

// reviews are the accepted review values.
var reviews = []store.Review{store.ReviewNone, store.ReviewApproved, store.ReviewRejected}

// handleImageList handles GET /api/v1/images?batch_id=&review=&after=
// &limit=: the workspace's images, oldest first.
func (s *Server) handleImageList(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var f store.ImageFilter
	if v := q.Get("batch_id"); v != "" {
		f.BatchID, err = strconv.ParseInt(v, 10, 64)
		if err != nil || f.BatchID <= 0 {
			return Errorf(http.StatusBadRequest, "invalid_parameter", "batch_id must be a batch id")
		}
	}
	if v := q.Get("review"); v != "" {
		if !slices.Contains(reviews, store.Review(v)) {
			return Errorf(http.StatusBadRequest, "invalid_parameter", "review must be one of %s", joinStatuses(reviews))
		}
		f.Review = store.Review(v)
	}
	ims, err := s.db.ListImages(r.Context(), s.db.Reader(), caller(r).WorkspaceID, f, after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, ims, limit, toImageJSON, func(im store.Image) int64 { return im.ID })
	return nil
}

// handleImageGet handles GET /api/v1/images/{id}: the image's metadata
// and the item (prompt, parameters) that made it.
func (s *Server) handleImageGet(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ws := caller(r).WorkspaceID
	im, err := s.db.GetImage(r.Context(), s.db.Reader(), ws, id)
	if err != nil {
		return err
	}
	it, err := s.db.GetItem(r.Context(), s.db.Reader(), ws, im.ItemID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, imageDetailJSON{imageJSON: toImageJSON(im), Item: toItemJSON(it)})
	return nil
}

// versionJSON is one image of a lineage.
type versionJSON struct {
	imageJSON
	// Relation is "ancestor", "self" or "descendant".
	Relation string `json:"relation"`
}

// handleImageVersions handles GET /api/v1/images/{id}/versions: the
// image's lineage, its ancestors and its descendants (regenerations of
// it, and of those), oldest first.
func (s *Server) handleImageVersions(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	lin, err := s.db.ImageLineage(r.Context(), s.db.Reader(), caller(r).WorkspaceID, id)
	if err != nil {
		return err
	}
	out := make([]versionJSON, len(lin))
	for i, li := range lin {
		out[i] = versionJSON{imageJSON: toImageJSON(li.Image), Relation: li.Relation}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

// reviewRequest is the body of POST /api/v1/images/{id}/review.
type reviewRequest struct {
	Review string `json:"review"`
}

// handleImageReview handles POST /api/v1/images/{id}/review:
// {"review":"approved"|"rejected"|"none"}.
func (s *Server) handleImageReview(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req reviewRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if !slices.Contains(reviews, store.Review(req.Review)) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field",
			Message: "review must be one of " + joinStatuses(reviews), Details: map[string]string{"field": "review"}}
	}
	ws := caller(r).WorkspaceID
	if err := s.db.SetImageReview(r.Context(), s.db.Writer(), ws, id, store.Review(req.Review)); err != nil {
		return err
	}
	im, err := s.db.GetImage(r.Context(), s.db.Writer(), ws, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toImageJSON(im))
	return nil
}

// regenerateOverrides change the request of a regenerated image; a nil
// field keeps the original's value, except Seed: without one, each
// regeneration gets a fresh random seed (the same seed would make the same
// image on a deterministic model).
type regenerateOverrides struct {
	Prompt         *string `json:"prompt"`
	NegativePrompt *string `json:"negative_prompt"`
	Seed           *int64  `json:"seed"`
	Model          *string `json:"model"`
	Size           *string `json:"size"`
	AspectRatio    *string `json:"aspect_ratio"`
	Quality        *string `json:"quality"`
	Style          *string `json:"style"`
	Format         *string `json:"format"`
}

// regenerateOneRequest is the (optional) body of
// POST /api/v1/images/{id}/regenerate.
type regenerateOneRequest struct {
	Overrides regenerateOverrides `json:"overrides"`
}

// regenerateRequest is the body of POST /api/v1/images/regenerate.
type regenerateRequest struct {
	ImageIDs  []int64             `json:"image_ids"`
	Overrides regenerateOverrides `json:"overrides"`
}

// regeneratedJSON is one queued regeneration.
type regeneratedJSON struct {
	ImageID int64    `json:"image_id"`
	Item    itemJSON `json:"item"`
}

// handleImageRegenerate handles POST /api/v1/images/{id}/regenerate with an
// optional {"overrides":{…}}: a new item (and job) in the image's batch
// whose image will have parent_id = {id}. 202 with the new item.
func (s *Server) handleImageRegenerate(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req regenerateOneRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	return s.regenerate(w, r, []int64{id}, req.Overrides)
}

// handleImagesRegenerate handles POST /api/v1/images/regenerate:
// {"image_ids":[…],"overrides":{…}} regenerates a selection in one
// transaction (all or none). 202 with the new items.
func (s *Server) handleImagesRegenerate(w http.ResponseWriter, r *http.Request) error {
	var req regenerateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	ids := slices.Compact(slices.Sorted(slices.Values(req.ImageIDs)))
	if len(ids) == 0 || len(ids) > maxRegenerate {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field",
			Message: fmt.Sprintf("image_ids must list 1 to %d images", maxRegenerate), Details: map[string]string{"field": "image_ids"}}
	}
	return s.regenerate(w, r, ids, req.Overrides)
}

func (s *Server) regenerate(w http.ResponseWriter, r *http.Request, ids []int64, ov regenerateOverrides) error {
	if ov.Seed != nil && (*ov.Seed < 0 || *ov.Seed > batch.MaxSeed) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field",
			Message: fmt.Sprintf("overrides.seed must be between 0 and %d", batch.MaxSeed), Details: map[string]string{"field": "overrides.seed"}}
	}
	ctx := r.Context()
	ws := caller(r).WorkspaceID
	var out []regeneratedJSON
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			it, err := s.regenerateOne(ctx, tx, ws, id, ov)
			if err != nil {
				return err
			}
			out = append(out, regeneratedJSON{ImageID: id, Item: toItemJSON(it)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"data": out})
	return nil
}

// regenerateOne adds to the image's batch an item that remakes the image
// with ov applied, and queues its job unless the batch is paused.
func (s *Server) regenerateOne(ctx context.Context, tx *sql.Tx, ws, imageID int64, ov regenerateOverrides) (store.Item, error) {
	im, err := s.db.GetImage(ctx, tx, ws, imageID)
	if err != nil {
		return store.Item{}, err
	}
	orig, err := s.db.GetItem(ctx, tx, ws, im.ItemID)
	if err != nil {
		return store.Item{}, err
	}
	b, err := s.db.GetBatch(ctx, tx, ws, im.BatchID)
	if err != nil {
		return store.Item{}, err
	}
	row, err := regenerateRow(orig, ov)
	if err != nil {
		return store.Item{}, err
	}
	planner := &batch.Planner{Catalog: s.catalog(), Expander: &expand.Expander{}, Now: s.now(), Available: s.ext.Available}
	var planned []batch.Item
	problems := planner.Plan(row, func(it batch.Item) bool { planned = append(planned, it); return true })
	if len(problems) > 0 || len(planned) != 1 {
		details := make([]problemJSON, len(problems))
		for i, p := range problems {
			details[i] = problemJSON{Field: p.Field, Message: p.Msg}
		}
		return store.Item{}, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_overrides",
			Message: fmt.Sprintf("image %d cannot be regenerated with these overrides", imageID),
			Details: map[string]any{"image_id": imageID, "problems": details}}
	}
	p := planned[0]
	name, err := s.versionName(ctx, tx, b.ID, orig.Name)
	if err != nil {
		return store.Item{}, err
	}
	opts, err := json.Marshal(p.Options)
	if err != nil {
		return store.Item{}, err
	}
	it := store.Item{
		BatchID: b.ID, WorkspaceID: ws, SourceLine: orig.SourceLine, Index: orig.Index, Status: store.ItemPending,
		Prompt: p.Prompt, NegativePrompt: p.NegativePrompt, Model: p.Model.ID, Provider: p.Model.Provider,
		Width: int64(p.Width), Height: int64(p.Height), AspectRatio: p.AspectRatio, Quality: p.Quality,
		Style: p.Style, Format: p.Format, Seed: p.Seed, HasSeed: true, Options: opts, Vars: orig.Vars,
		Name: name, CostEstimate: p.Price, ParentImageID: im.ID,
	}
	items := []store.Item{it}
	if err := s.db.InsertItems(ctx, tx, items); err != nil {
		return store.Item{}, err
	}
	if err := s.db.AddBatchTotals(ctx, tx, b.ID, 1, p.Price); err != nil {
		return store.Item{}, err
	}
	if b.Status != store.BatchPaused {
		if err := s.enqueue(ctx, tx, []store.QueuedItem{{ID: items[0].ID, Provider: items[0].Provider}}); err != nil {
			return store.Item{}, err
		}
		if err := s.reopen(ctx, tx, b); err != nil {
			return store.Item{}, err
		}
	}
	return s.db.GetItem(ctx, tx, ws, items[0].ID)
}

// regenerateRow builds the input row that plans a regeneration of orig:
// its stored, already expanded request with ov applied, as a literal row
// (the prompt is not a template any more).
func regenerateRow(orig store.Item, ov regenerateOverrides) (input.Row, error) {
	pick := func(o *string, v string) string {
		if o != nil {
			return *o
		}
		return v
	}
	v := map[string]string{
		input.FieldPrompt:         pick(ov.Prompt, orig.Prompt),
		input.FieldNegativePrompt: pick(ov.NegativePrompt, orig.NegativePrompt),
		input.FieldModel:          pick(ov.Model, orig.Model),
		input.FieldQuality:        pick(ov.Quality, orig.Quality),
		input.FieldStyle:          pick(ov.Style, orig.Style),
		input.FieldFormat:         pick(ov.Format, orig.Format),
		input.FieldN:              "1",
	}
	switch {
	case ov.Size != nil || ov.AspectRatio != nil:
		v[input.FieldSize] = pick(ov.Size, "")
		v[input.FieldAspectRatio] = pick(ov.AspectRatio, "")
	case ov.Model != nil && orig.AspectRatio != "":
		// Another model may not offer the same pixel size; the ratio
		// carries over and the model picks its size for it.
		v[input.FieldAspectRatio] = orig.AspectRatio
	case orig.Width > 0 && orig.Height > 0:
		v[input.FieldSize] = fmt.Sprintf("%dx%d", orig.Width, orig.Height)
	}
	if ov.Seed != nil {
		v[input.FieldSeed] = strconv.FormatInt(*ov.Seed, 10)
	} else {
		n, err := rand.Int(rand.Reader, big.NewInt(batch.MaxSeed+1))
		if err != nil {
			return input.Row{}, err
		}
		v[input.FieldSeed] = n.String()
	}
	var opts map[string]string
	if len(orig.Options) > 0 {
		if err := json.Unmarshal(orig.Options, &opts); err != nil {
			return input.Row{}, fmt.Errorf("item %d options: %w", orig.ID, err)
		}
	}
	for k, val := range opts {
		v[input.OptPrefix+k] = val
	}
	return input.Row{File: "regenerate", Line: int(orig.SourceLine), Values: v, Literal: true}, nil
}

// versionSuffix matches the "-vN" that versionName appends.
var versionSuffix = regexp.MustCompile(`-v[0-9]+$`)

// versionName returns the first free "<name>-vN" (N from 2) in the batch
// for a regeneration of the item named name.
func (s *Server) versionName(ctx context.Context, tx *sql.Tx, batchID int64, name string) (string, error) {
	base := versionSuffix.ReplaceAllString(name, "")
	for n := 2; ; n++ {
		cand := base + "-v" + strconv.Itoa(n)
		taken, err := s.db.ItemNameTaken(ctx, tx, batchID, cand)
		if err != nil {
			return "", err
		}
		if !taken {
			return cand, nil
		}
		if n > 100_000 {
			return "", fmt.Errorf("no free version name for %q", strings.TrimSpace(name))
		}
	}
}
