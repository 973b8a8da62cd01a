package server

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/store"
)

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
	svc, err := s.batches()
	if err != nil {
		return err
	}
	im, err := svc.Review(r.Context(), caller(r).WorkspaceID, id, store.Review(req.Review))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toImageJSON(im))
	return nil
}

// regenerateOneRequest is the (optional) body of
// POST /api/v1/images/{id}/regenerate.
type regenerateOneRequest struct {
	Overrides batch.Overrides `json:"overrides"`
}

// regenerateRequest is the body of POST /api/v1/images/regenerate.
type regenerateRequest struct {
	ImageIDs  []int64         `json:"image_ids"`
	Overrides batch.Overrides `json:"overrides"`
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
	return s.regenerate(w, r, req.ImageIDs, req.Overrides)
}

func (s *Server) regenerate(w http.ResponseWriter, r *http.Request, ids []int64, ov batch.Overrides) error {
	svc, err := s.batches()
	if err != nil {
		return err
	}
	done, err := svc.Regenerate(r.Context(), caller(r).WorkspaceID, ids, ov)
	if err != nil {
		return err
	}
	out := make([]regeneratedJSON, len(done))
	for i, d := range done {
		out[i] = regeneratedJSON{ImageID: d.ImageID, Item: toItemJSON(d.Item)}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"data": out})
	return nil
}
