package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"bulkgen/internal/generate"
	"bulkgen/internal/store"
)

// itemJSON is an item (one image to make) as the API shows it.
type itemJSON struct {
	ID             int64           `json:"id"`
	BatchID        int64           `json:"batch_id"`
	SourceLine     int64           `json:"source_line"`
	Index          int64           `json:"index"`
	Status         string          `json:"status"`
	Name           string          `json:"name"`
	Prompt         string          `json:"prompt"`
	NegativePrompt string          `json:"negative_prompt"`
	Model          string          `json:"model"`
	Provider       string          `json:"provider"`
	Width          int64           `json:"width"`
	Height         int64           `json:"height"`
	AspectRatio    string          `json:"aspect_ratio"`
	Quality        string          `json:"quality"`
	Style          string          `json:"style"`
	Format         string          `json:"format"`
	Seed           *int64          `json:"seed"`
	Options        json.RawMessage `json:"options"`
	Vars           json.RawMessage `json:"vars"`
	CostEstimate   int64           `json:"cost_estimate"`
	Error          string          `json:"error"`
	ErrorClass     string          `json:"error_class"`
	Attempts       int64           `json:"attempts"`
	ParentImageID  *int64          `json:"parent_image_id"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

func toItemJSON(it store.Item) itemJSON {
	var seed *int64
	if it.HasSeed {
		seed = &it.Seed
	}
	return itemJSON{
		ID: it.ID, BatchID: it.BatchID, SourceLine: it.SourceLine, Index: it.Index, Status: string(it.Status),
		Name: it.Name + generate.Extension(it.Format), Prompt: it.Prompt, NegativePrompt: it.NegativePrompt,
		Model: it.Model, Provider: it.Provider, Width: it.Width, Height: it.Height, AspectRatio: it.AspectRatio,
		Quality: it.Quality, Style: it.Style, Format: it.Format, Seed: seed, Options: jsonObject(it.Options),
		Vars: jsonObject(it.Vars), CostEstimate: it.CostEstimate, Error: it.Error, ErrorClass: it.ErrorClass,
		Attempts: it.Attempts, ParentImageID: optID(it.ParentImageID), CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt,
	}
}

// jsonObject shows a stored JSON object, "{}" when it is empty or null.
func jsonObject(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`)
	}
	return raw
}

// itemStatuses are the accepted values of ?status= on the item list.
var itemStatuses = []store.ItemStatus{store.ItemPending, store.ItemRunning, store.ItemSucceeded, store.ItemFailed, store.ItemCanceled}

// handleItemList handles GET /api/v1/batches/{id}/items?status=&after=
// &limit=: the batch's items in input order.
func (s *Server) handleItemList(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	f := store.ItemFilter{BatchID: id}
	if v := r.URL.Query().Get("status"); v != "" {
		if !slices.Contains(itemStatuses, store.ItemStatus(v)) {
			return Errorf(http.StatusBadRequest, "invalid_parameter", "status must be one of %s", joinStatuses(itemStatuses))
		}
		f.Status = store.ItemStatus(v)
	}
	ctx := r.Context()
	ws := caller(r).WorkspaceID
	if _, err := s.db.GetBatch(ctx, s.db.Reader(), ws, id); err != nil {
		return err
	}
	items, err := s.db.ListItems(ctx, s.db.Reader(), ws, f, after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, items, limit, toItemJSON, func(it store.Item) int64 { return it.ID })
	return nil
}
