package batch

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/riverqueue/river"

	"bulkgen/internal/expand"
	"bulkgen/internal/generate"
	"bulkgen/internal/store"
)

// Submitter writes a planned batch, its items and one image job per item in
// a single transaction, so that a batch exists with all of its work queued
// or not at all.
type Submitter struct {
	DB    *store.DB
	River *river.Client[*sql.Tx]
	// MaxAttempts per image job; 0 means the queue's default.
	MaxAttempts int
}

// submitChunk is how many items (and jobs) are written per statement round.
const submitChunk = 500

// Submit creates b and every item that plan yields, with their jobs. plan
// streams items; it is called once, inside the transaction. The stored
// batch (with id, counts and estimate) is returned.
func (s *Submitter) Submit(ctx context.Context, b store.Batch, plan func(yield func(Item) error) error) (store.Batch, error) {
	var out store.Batch
	err := s.DB.Tx(ctx, func(tx *sql.Tx) error {
		b.Status = store.BatchQueued
		created, err := s.DB.CreateBatch(ctx, tx, b)
		if err != nil {
			return err
		}
		names := &expand.Unique{}
		var chunk []store.Item
		var total, estimate int64
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			if err := s.DB.InsertItems(ctx, tx, chunk); err != nil {
				return err
			}
			params := make([]river.InsertManyParams, len(chunk))
			for i, it := range chunk {
				params[i] = river.InsertManyParams{Args: generate.ImageArgs{ItemID: it.ID}, InsertOpts: &river.InsertOpts{
					Queue: QueueFor(it.Provider), MaxAttempts: s.MaxAttempts,
				}}
			}
			if _, err := s.River.InsertManyFastTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue image jobs: %w", err)
			}
			chunk = chunk[:0]
			return nil
		}
		err = plan(func(it Item) error {
			row, err := storeItem(created, it, names.Claim(it.Name))
			if err != nil {
				return err
			}
			chunk = append(chunk, row)
			total++
			estimate += it.Price
			if len(chunk) >= submitChunk {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if err := s.DB.SetBatchTotals(ctx, tx, created.ID, total, estimate); err != nil {
			return err
		}
		created.TotalCount, created.CostEstimate = total, estimate
		out = created
		return nil
	})
	if err != nil {
		return store.Batch{}, fmt.Errorf("submit batch: %w", err)
	}
	return out, nil
}

// QueueFor is the River queue of a provider: one queue per provider gives
// each its own concurrency.
func QueueFor(provider string) string { return "provider_" + provider }

func storeItem(b store.Batch, it Item, name string) (store.Item, error) {
	opts, err := json.Marshal(it.Options)
	if err != nil {
		return store.Item{}, fmt.Errorf("encode options: %w", err)
	}
	vars, err := json.Marshal(RecordVars(it.Vars))
	if err != nil {
		return store.Item{}, fmt.Errorf("encode vars: %w", err)
	}
	return store.Item{
		BatchID:        b.ID,
		WorkspaceID:    b.WorkspaceID,
		SourceLine:     int64(it.SourceLine),
		Index:          int64(it.Index),
		Status:         store.ItemPending,
		Prompt:         it.Prompt,
		NegativePrompt: it.NegativePrompt,
		Model:          it.Model.ID,
		Provider:       it.Model.Provider,
		Width:          int64(it.Width),
		Height:         int64(it.Height),
		AspectRatio:    it.AspectRatio,
		Quality:        it.Quality,
		Style:          it.Style,
		Format:         it.Format,
		Seed:           it.Seed,
		HasSeed:        true,
		Options:        opts,
		Vars:           vars,
		Name:           name,
		CostEstimate:   it.Price,
	}, nil
}
