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
		// A charge draws on the reservation: the balance stays.
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryCharge, Amount: -40, ImageID: im.ID, Attempt: 1, IdemKey: "charge:image:1:1"}, true, 960},
		// A re-delivered job replays its charge: nothing changes.
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryCharge, Amount: -40, ImageID: im.ID, Attempt: 1, IdemKey: "charge:image:1:1"}, false, 960},
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryRelease, Amount: 40, ItemID: item.ID, IdemKey: "release:item:1", Note: "reservation released"}, true, 1000},
		{store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryAdjustment, Amount: -5, IdemKey: "adjust:1"}, true, 995},
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
		acc, err := db.GetCreditAccount(ctx, w, ws, false)
		if err != nil {
			t.Fatalf("GetCreditAccount: %v", err)
		}
		if bal := acc.Balance; bal != e.wantBalance {
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

	// A limited account cannot go below zero: the database refuses the
	// entry that would take it there.
	if _, _, err := db.AddEntry(ctx, w, store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryReserve, Amount: -996, IdemKey: "reserve:too-much"}); err == nil {
		t.Errorf("AddEntry(reserve beyond the balance) succeeded, want the CHECK constraint to refuse it")
	}
	if err := db.SetCreditLimits(ctx, w, ws, true, 0); err != nil {
		t.Fatalf("SetCreditLimits: %v", err)
	}
	if _, _, err := db.AddEntry(ctx, w, store.LedgerEntry{WorkspaceID: ws, Kind: store.EntryReserve, Amount: -996, IdemKey: "reserve:unlimited"}); err != nil {
		t.Errorf("AddEntry(reserve beyond the balance, unlimited) = %v, want it accepted", err)
	}
	if acc, err := db.GetCreditAccount(ctx, w, ws, false); err != nil || acc.Balance != -1 || !acc.Unlimited {
		t.Errorf("account = %+v, %v; want unlimited with balance -1", acc, err)
	}

	other := b.otherWorkspace(t)
	if acc, err := db.GetCreditAccount(ctx, w, other.ID, false); err != nil || acc.Balance != 0 || acc.Unlimited {
		t.Errorf("GetCreditAccount(new workspace) = %+v, %v; want limited with balance 0", acc, err)
	}

	page1, err := db.ListLedgerEntries(ctx, db.Reader(), ws, 0, 3)
	if err != nil {
		t.Fatalf("ListLedgerEntries: %v", err)
	}
	page2, err := db.ListLedgerEntries(ctx, db.Reader(), ws, page1[len(page1)-1].ID, 3)
	if err != nil {
		t.Fatalf("ListLedgerEntries: %v", err)
	}
	if len(page1) != 3 || len(page2) != 3 || page1[0].Kind != store.EntryReserve || page2[2].Kind != store.EntryGrant {
		t.Errorf("pages = %+v / %+v, want 3 newest then 3 ending with the grant", page1, page2)
	}
}
