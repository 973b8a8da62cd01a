// Package ledger keeps each workspace's credits: an append-only list of
// entries in whole credits (1 credit = US$0.001), and the rules that spend
// them. Entries are:
//
//   - grant: credits given to the workspace (+);
//   - adjustment: an operator's correction (+ or −);
//   - reserve: credits held for a batch's images before anything runs (−);
//   - release: held credits handed back, for an image that failed or was
//     canceled, or a batch's remainder (+);
//   - charge: an image made, drawn from its batch's reservation (−).
//
// The balance (credits available) is the sum of every entry but the
// charges, which move credits from "held" to "spent" and leave the balance
// as the reservation left it. So at any time
//
//	balance = grants + adjustments − charges − open reservations
//
// where open reservations = reserves − releases − charges. The database
// keeps the balance in credit_accounts, in the same transaction as each
// entry (a trigger), and refuses a limited account's balance below zero;
// Check recomputes it from the entries.
//
// Every entry has an idempotency key derived from what it is about (an
// image's item and generation, a job, a batch), so a job that runs twice
// cannot charge or release twice.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"bulkgen/internal/store"
)

// Ledger reads and writes credits.
type Ledger struct {
	DB *store.DB
	// Now is the clock for the monthly quota; nil means time.Now.
	Now func() time.Time
}

// ShortError is a reservation refused for want of credits: the balance or
// the month's quota does not cover it.
type ShortError struct {
	// Quota is true when the monthly quota refused it, false for the
	// balance.
	Quota bool
	// Need is the reservation asked for, Have what was left of the
	// balance or the quota.
	Need, Have int64
}

func (e *ShortError) Error() string {
	what := "credits"
	if e.Quota {
		what = "this month's quota"
	}
	return fmt.Sprintf("not enough %s: the batch needs %d, %d left (short by %d)", what, e.Need, e.Have, e.Need-e.Have)
}

// Account is a workspace's credits as a person reads them.
type Account struct {
	store.CreditAccount
	// Reserved is the credits held for batches that are still running.
	Reserved int64
	// MonthUsed is what the month's reservations took, less what they
	// handed back: the part of the monthly quota used.
	MonthUsed int64
}

// QuotaLeft is what is left of the month's quota, or -1 without one.
func (a Account) QuotaLeft() int64 {
	if a.MonthlyQuota == 0 {
		return -1
	}
	return max(0, a.MonthlyQuota-a.MonthUsed)
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// MonthStart is the first instant (UTC) of t's month.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Month is t's month as usage is kept: "YYYY-MM" in UTC.
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// Account returns the workspace's credits.
func (l *Ledger) Account(ctx context.Context, q store.Querier, workspaceID int64) (Account, error) {
	acc, err := l.DB.GetCreditAccount(ctx, q, workspaceID, false)
	if err != nil {
		return Account{}, err
	}
	return l.fill(ctx, q, acc)
}

func (l *Ledger) fill(ctx context.Context, q store.Querier, acc store.CreditAccount) (Account, error) {
	out := Account{CreditAccount: acc}
	var err error
	if out.Reserved, err = l.DB.ReservedCredits(ctx, q, acc.WorkspaceID); err != nil {
		return Account{}, err
	}
	if acc.MonthlyQuota > 0 {
		sums, err := l.DB.SumLedger(ctx, q, acc.WorkspaceID, MonthStart(l.now()), store.EntryReserve, store.EntryRelease)
		if err != nil {
			return Account{}, err
		}
		out.MonthUsed = -(sums[store.EntryReserve] + sums[store.EntryRelease])
	}
	return out, nil
}

// Hold is a reservation to make: amount credits for a batch.
type Hold struct {
	WorkspaceID int64
	BatchID     int64
	Amount      int64
	// Key makes the reservation happen once; Note says what it is for.
	Key, Note string
}

// Check reports, without writing, whether the workspace could reserve
// amount now: nil, a *ShortError, or a read error. Create calls it before
// writing anything, so that a batch the workspace cannot pay is refused at
// once; Reserve checks again, atomically.
func (l *Ledger) Check(ctx context.Context, q store.Querier, workspaceID, amount int64) error {
	if amount <= 0 {
		return nil
	}
	acc, err := l.DB.GetCreditAccount(ctx, q, workspaceID, false)
	if err != nil {
		return err
	}
	return l.covers(ctx, q, acc, amount)
}

func (l *Ledger) covers(ctx context.Context, q store.Querier, acc store.CreditAccount, amount int64) error {
	if !acc.Unlimited && acc.Balance < amount {
		return &ShortError{Need: amount, Have: acc.Balance}
	}
	if acc.MonthlyQuota > 0 {
		a, err := l.fill(ctx, q, acc)
		if err != nil {
			return err
		}
		if left := a.QuotaLeft(); left < amount {
			return &ShortError{Quota: true, Need: amount, Have: left}
		}
	}
	return nil
}

// Reserve holds h.Amount credits for h.BatchID inside tx, or returns a
// *ShortError when the balance (of a limited account) or the monthly quota
// does not cover it. The account's row stays locked until tx ends, so two
// reservations cannot both spend the same credits. A zero amount (the
// preview engine costs nothing) is never refused and writes nothing.
func (l *Ledger) Reserve(ctx context.Context, tx store.Querier, h Hold) error {
	if h.Amount <= 0 {
		return nil
	}
	acc, err := l.DB.GetCreditAccount(ctx, tx, h.WorkspaceID, true)
	if err != nil {
		return err
	}
	if err := l.covers(ctx, tx, acc, h.Amount); err != nil {
		return err
	}
	_, _, err = l.DB.AddEntry(ctx, tx, store.LedgerEntry{
		WorkspaceID: h.WorkspaceID, Kind: store.EntryReserve, Amount: -h.Amount, BatchID: h.BatchID,
		IdemKey: h.Key, Note: h.Note,
	})
	return err
}

// Release hands back amount credits held for a batch: an image that
// failed or was canceled, or a batch's remainder. key makes it happen once.
func (l *Ledger) Release(ctx context.Context, q store.Querier, workspaceID, batchID, itemID, amount int64, key, note string) error {
	if amount <= 0 {
		return nil
	}
	_, _, err := l.DB.AddEntry(ctx, q, store.LedgerEntry{
		WorkspaceID: workspaceID, Kind: store.EntryRelease, Amount: amount, BatchID: batchID, ItemID: itemID,
		IdemKey: key, Note: note,
	})
	return err
}

// Charge is the entry for an image made for item (generation gen),
// drawn from its batch's reservation. Its key is the image's identity, so
// a job that records the image twice charges once.
func Charge(workspaceID, batchID, itemID, gen, attempt, amount int64, model string) store.LedgerEntry {
	return store.LedgerEntry{
		WorkspaceID: workspaceID, Kind: store.EntryCharge, Amount: -amount,
		BatchID: batchID, ItemID: itemID, Attempt: attempt,
		IdemKey: fmt.Sprintf("charge:item:%d:gen:%d", itemID, gen),
		Note:    fmt.Sprintf("image of item %d (%s)", itemID, model),
	}
}

// ReleaseKey is the key of the release for an image whose job failed:
// the job's id is unique per queued attempt at the image, so a retried
// item (a new job) releases its new reservation, and a job that fails
// twice (re-delivered after a crash) releases once.
func ReleaseKey(jobID int64) string { return fmt.Sprintf("release:job:%d", jobID) }

// Grant adds amount credits to the workspace (an operator's grant, or a
// new workspace's first credits). key makes it happen once; "" makes a
// key from the time, for a grant that is meant each time it is asked.
func (l *Ledger) Grant(ctx context.Context, q store.Querier, workspaceID, amount int64, key, note string) error {
	if amount <= 0 {
		return errors.New("grant: the amount must be positive")
	}
	if key == "" {
		key = fmt.Sprintf("grant:ws:%d:%d", workspaceID, l.now().UnixNano())
	}
	_, _, err := l.DB.AddEntry(ctx, q, store.LedgerEntry{
		WorkspaceID: workspaceID, Kind: store.EntryGrant, Amount: amount, IdemKey: key, Note: note,
	})
	return err
}

// Verify recomputes the workspace's balance from its entries and reports
// an error when the kept balance differs, or when it breaks the identity
// balance = grants + adjustments − charges − open reservations, with the
// open reservations read from the batches.
func (l *Ledger) Verify(ctx context.Context, q store.Querier, workspaceID int64) error {
	acc, err := l.Account(ctx, q, workspaceID)
	if err != nil {
		return err
	}
	sums, err := l.DB.SumLedger(ctx, q, workspaceID, time.Time{})
	if err != nil {
		return err
	}
	fromEntries := sums[store.EntryGrant] + sums[store.EntryAdjustment] + sums[store.EntryReserve] + sums[store.EntryRelease]
	if acc.Balance != fromEntries {
		return fmt.Errorf("workspace %d: balance %d, its entries sum to %d", workspaceID, acc.Balance, fromEntries)
	}
	open := -(sums[store.EntryReserve] + sums[store.EntryRelease]) + sums[store.EntryCharge]
	if open != acc.Reserved {
		return fmt.Errorf("workspace %d: entries hold %d credits open, batches %d", workspaceID, open, acc.Reserved)
	}
	if want := sums[store.EntryGrant] + sums[store.EntryAdjustment] + sums[store.EntryCharge] - open; acc.Balance != want {
		return fmt.Errorf("workspace %d: balance %d, grants − charges − open reservations = %d", workspaceID, acc.Balance, want)
	}
	if !acc.Unlimited && acc.Balance < 0 {
		return fmt.Errorf("workspace %d: balance %d below zero", workspaceID, acc.Balance)
	}
	return nil
}
