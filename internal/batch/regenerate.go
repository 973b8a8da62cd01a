package batch

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/ledger"
	"bulkgen/internal/store"
)

// Overrides change the request of a regenerated image; a nil field keeps
// the original's value, except Seed: without one, each regeneration gets a
// fresh random seed (the same seed would make the same image again on a
// deterministic model).
type Overrides struct {
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

// Regenerated is one queued regeneration: the image it remakes and the
// new item that will make its next version.
type Regenerated struct {
	ImageID int64
	Item    store.Item
}

// Regenerate makes a new version of each of the workspace's images ids
// with ov applied: a new item in the image's batch, planned like any row
// (so the overrides are checked against the catalogue and priced), whose
// image will have the original as its parent. It reserves the new items'
// cost and queues them (in a paused batch they wait for resume), all or
// nothing in one transaction.
func (s *Service) Regenerate(ctx context.Context, workspaceID int64, ids []int64, ov Overrides) ([]Regenerated, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if limit := s.Limits.maxRegenerate(); len(ids) == 0 || len(ids) > limit {
		return nil, fieldError("image_ids", "must list 1 to %d images", limit)
	}
	if ov.Seed != nil && (*ov.Seed < 0 || *ov.Seed > MaxSeed) {
		return nil, fieldError("overrides.seed", "must be between 0 and %d", MaxSeed)
	}
	var out []Regenerated
	var queued []store.QueuedItem
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		out, queued = nil, nil
		for _, id := range ids {
			it, enqueued, err := s.regenerateOne(ctx, tx, workspaceID, id, ov)
			if err != nil {
				return err
			}
			out = append(out, Regenerated{ImageID: id, Item: it})
			if enqueued {
				queued = append(queued, store.QueuedItem{ID: it.ID, Provider: it.Provider})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.wake(queued)
	return out, nil
}

// regenerateOne adds to the image's batch an item that remakes the image
// with ov applied, reserves its cost, and queues its job unless the batch
// is paused (reported by enqueued).
func (s *Service) regenerateOne(ctx context.Context, tx *sql.Tx, workspaceID, imageID int64, ov Overrides) (it store.Item, enqueued bool, err error) {
	im, err := s.DB.GetImage(ctx, tx, workspaceID, imageID)
	if err != nil {
		return store.Item{}, false, err
	}
	b, err := s.DB.LockWorkspaceBatch(ctx, tx, workspaceID, im.BatchID)
	if err != nil {
		return store.Item{}, false, err
	}
	orig, err := s.DB.GetItem(ctx, tx, workspaceID, im.ItemID)
	if err != nil {
		return store.Item{}, false, err
	}
	row, err := regenerateRow(orig, ov)
	if err != nil {
		return store.Item{}, false, err
	}
	p, err := NewPlanner(Config{Catalog: s.Catalog, Available: s.Available, Now: s.now()})
	if err != nil {
		return store.Item{}, false, err
	}
	var planned []generate.Request
	problems := p.Plan(row, func(req generate.Request) bool { planned = append(planned, req); return true })
	if len(problems) > 0 || len(planned) != 1 {
		return store.Item{}, false, &Error{Kind: Invalid, Code: "invalid_overrides",
			Message: fmt.Sprintf("image %d cannot be regenerated with these overrides", imageID),
			Details: map[string]any{"image_id": imageID, "problems": nonNil(problems)}}
	}
	name, err := s.versionName(ctx, tx, b.ID, orig.Name)
	if err != nil {
		return store.Item{}, false, err
	}
	req := planned[0]
	it = itemOf(req, workspaceID, name)
	it.BatchID, it.SourceLine, it.Index, it.Vars, it.ParentImageID = b.ID, orig.SourceLine, orig.Index, orig.Vars, im.ID
	items := []store.Item{it}
	if err := s.DB.InsertItems(ctx, tx, items); err != nil {
		return store.Item{}, false, err
	}
	it = items[0]
	err = s.Ledger.Reserve(ctx, tx, ledger.Hold{WorkspaceID: workspaceID, BatchID: b.ID, Amount: req.Price,
		Key: fmt.Sprintf("reserve:item:%d", it.ID), Note: fmt.Sprintf("regenerate image %d", imageID)})
	if err != nil {
		return store.Item{}, false, creditError(err)
	}
	if err := s.DB.AddBatchCounts(ctx, tx, store.BatchDelta{BatchID: b.ID, Total: 1, Estimate: req.Price, Reserved: req.Price}); err != nil {
		return store.Item{}, false, err
	}
	if b.Status != store.BatchPaused {
		if err := s.insertJobs(ctx, tx, []store.QueuedItem{{ID: it.ID, Provider: it.Provider}}); err != nil {
			return store.Item{}, false, err
		}
		if err := s.reopen(ctx, tx, b); err != nil {
			return store.Item{}, false, err
		}
		enqueued = true
	}
	it, err = s.DB.GetItem(ctx, tx, workspaceID, it.ID)
	return it, enqueued, err
}

// regenerateRow builds the input row that plans a regeneration of orig:
// its stored, already expanded request with ov applied, as a literal row
// (the prompt is not a template any more).
func regenerateRow(orig store.Item, ov Overrides) (input.Row, error) {
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
		n, err := rand.Int(rand.Reader, big.NewInt(MaxSeed+1))
		if err != nil {
			return input.Row{}, err
		}
		v[input.FieldSeed] = n.String()
	}
	req, err := generate.RequestOf(orig)
	if err != nil {
		return input.Row{}, err
	}
	for k, val := range req.Options {
		v[input.OptPrefix+k] = val
	}
	return input.Row{File: "regenerate", Line: int(orig.SourceLine), Values: v, Literal: true}, nil
}

// versionSuffix matches the "-vN" that versionName appends.
var versionSuffix = regexp.MustCompile(`-v[0-9]+$`)

// versionName returns the first free "<name>-vN" (N from 2) in the batch
// for a regeneration of the item named name.
func (s *Service) versionName(ctx context.Context, tx *sql.Tx, batchID int64, name string) (string, error) {
	base := versionSuffix.ReplaceAllString(name, "")
	for n := 2; ; n++ {
		cand := base + "-v" + strconv.Itoa(n)
		taken, err := s.DB.ItemNameTaken(ctx, tx, batchID, cand)
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
