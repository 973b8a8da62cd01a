package store_test

import (
	"errors"
	"testing"

	"bulkgen/internal/store"
)

func TestLedger(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()
	ws := b.workspace.ID
	item := b.newItem(t)
	im, _, err := db.InsertImage(ctx, w, newImage(item, 1))
	if err != nil {
		t.Fatalf("InsertImage: %v", err)
	}

	entries := []struct {
		entry       store.LedgerEntry
		wantCreated bool
		wantBalance int64
	}{
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryGrant, Amount: 1000, IdemKey: "grant:welcome"}, true, 1000},
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryReserve, Amount: -40, ItemID: item.ID, BatchID: item.BatchID, IdemKey: "reserve:item:1"}, true, 960},
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryCharge, Amount: -40, ImageID: im.ID, Attempt: 1, IdemKey: "charge:image:1:1"}, true, 920},
		// A re-delivered job replays its charge: nothing changes.
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryCharge, Amount: -40, ImageID: im.ID, Attempt: 1, IdemKey: "charge:image:1:1"}, false, 920},
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryRefund, Amount: 40, ItemID: item.ID, IdemKey: "refund:item:1", Note: "reservation released"}, true, 960},
	}
	var firstCharge store.LedgerEntry
	for i, e := range entries {
		got, created, err := db.AddEntry(ctx, w, e.entry)
		if err != nil {
			t.Fatalf("entry %d: AddEntry: %v", i, err)
		}
		if created != e.wantCreated || got.Amount != e.entry.Amount || got.IdemKey != e.entry.IdemKey ||
			got.ImageID != e.entry.ImageID || got.ItemID != e.entry.ItemID || got.Note != e.entry.Note {
			t.Errorf("entry %d: AddEntry = %+v created=%v, want %+v created=%v", i, got, created, e.entry, e.wantCreated)
		}
		if i == 2 {
			firstCharge = got
		}
		if i == 3 && got.ID != firstCharge.ID {
			t.Errorf("replayed charge got id %d, want the first charge's %d", got.ID, firstCharge.ID)
		}
		bal, err := db.Balance(ctx, w, ws)
		if err != nil {
			t.Fatalf("Balance: %v", err)
		}
		if bal != e.wantBalance {
			t.Errorf("entry %d: Balance = %d, want %d", i, bal, e.wantBalance)
		}
	}

	// Reusing a key for a different entry is a bug: refused.
	if _, _, err := db.AddEntry(ctx, w, store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryCharge, Amount: -400, IdemKey: "charge:image:1:1"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("AddEntry(reused key) error = %v, want ErrConflict", err)
	}
	if _, _, err := db.AddEntry(ctx, w, store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryGrant, Amount: 1}); err == nil {
		t.Errorf("AddEntry(no key) succeeded, want an error")
	}
	if _, _, err := db.AddEntry(ctx, w, store.LedgerEntry{WorkspaceID: ws, Kind: "gift", Amount: 1, IdemKey: "k"}); err == nil {
		t.Errorf("AddEntry(kind gift) succeeded, want the CHECK constraint to refuse it")
	}

	other := b.otherWorkspace(t)
	if bal, err := db.Balance(ctx, w, other.ID); err != nil || bal != 0 {
		t.Errorf("Balance(empty workspace) = %d, %v; want 0", bal, err)
	}

	page1, err := db.ListLedgerEntries(ctx, db.Reader(), ws, 0, 3)
	if err != nil {
		t.Fatalf("ListLedgerEntries: %v", err)
	}
	page2, err := db.ListLedgerEntries(ctx, db.Reader(), ws, page1[len(page1)-1].ID, 3)
	if err != nil {
		t.Fatalf("ListLedgerEntries: %v", err)
	}
	if len(page1) != 3 || len(page2) != 1 || page1[0].Kind != store.EntryRefund || page2[0].Kind != store.EntryGrant {
		t.Errorf("pages = %+v / %+v, want 3 newest then the grant", page1, page2)
	}
}
