package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CreditAccount is a workspace's row of credit_accounts. Balance is the
// credits available: the sum of the workspace's ledger entries other than
// charges, kept by a trigger on ledger_entries (see migration
// 0005_batch_service). A limited account's balance never goes below zero
// (the database refuses it); an unlimited one's may.
type CreditAccount struct {
	WorkspaceID  int64
	Unlimited    bool
	Balance      int64
	MonthlyQuota int64 // 0: none
	UpdatedAt    time.Time
}

const creditAccountColumns = `workspace_id, unlimited, balance, monthly_quota, updated_at`

func scanCreditAccount(r interface{ Scan(...any) error }) (CreditAccount, error) {
	var a CreditAccount
	err := r.Scan(&a.WorkspaceID, &a.Unlimited, &a.Balance, &a.MonthlyQuota, timeCol{&a.UpdatedAt})
	return a, err
}

// GetCreditAccount returns the workspace's account, or ErrNotFound. With
// forUpdate (inside a transaction) it holds the row until the transaction
// ends, so that a check of the balance and the entry that spends it cannot
// be split by another.
func (db *DB) GetCreditAccount(ctx context.Context, q Querier, workspaceID int64, forUpdate bool) (CreditAccount, error) {
	query := `SELECT ` + creditAccountColumns + ` FROM credit_accounts WHERE workspace_id = ?`
	if forUpdate && db.dialect == Postgres {
		query += ` FOR NO KEY UPDATE`
	}
	a, err := scanCreditAccount(q.QueryRowContext(ctx, db.q(query), workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return CreditAccount{}, fmt.Errorf("credit account of workspace %d: %w", workspaceID, ErrNotFound)
	}
	if err != nil {
		return CreditAccount{}, fmt.Errorf("credit account of workspace %d: %w", workspaceID, err)
	}
	return a, nil
}

// SetCreditLimits sets whether the workspace's account is unlimited and
// its monthly quota (0: none), or returns ErrNotFound.
func (db *DB) SetCreditLimits(ctx context.Context, q Querier, workspaceID int64, unlimited bool, monthlyQuota int64) error {
	res, err := q.ExecContext(ctx, db.q(`UPDATE credit_accounts SET unlimited = ?, monthly_quota = ?, updated_at = ?
		WHERE workspace_id = ?`), unlimited, monthlyQuota, db.timeArg(db.timestamp()), workspaceID)
	return checkUpdated(res, err, "set credit limits of workspace", workspaceID)
}

// LedgerSums are a workspace's ledger entries summed by kind.
type LedgerSums map[EntryKind]int64

// SumLedger sums the workspace's entries by kind, those created at or
// after since (all with the zero time) and, when kinds are given, of those
// kinds only.
func (db *DB) SumLedger(ctx context.Context, q Querier, workspaceID int64, since time.Time, kinds ...EntryKind) (LedgerSums, error) {
	query := `SELECT kind, CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE workspace_id = ?`
	args := []any{workspaceID}
	if len(kinds) > 0 {
		query += ` AND kind IN (` + placeholders(len(kinds)) + `)`
		for _, k := range kinds {
			args = append(args, string(k))
		}
	}
	if !since.IsZero() {
		query += ` AND created_at >= ?`
		args = append(args, db.timeArg(since))
	}
	rows, err := q.QueryContext(ctx, db.q(query+` GROUP BY kind`), args...)
	if err != nil {
		return nil, fmt.Errorf("sum ledger of workspace %d: %w", workspaceID, err)
	}
	type sum struct {
		kind EntryKind
		n    int64
	}
	got, err := collect(rows, func(r interface{ Scan(...any) error }) (sum, error) {
		var s sum
		err := r.Scan(&s.kind, &s.n)
		return s, err
	}, "sum ledger")
	if err != nil {
		return nil, err
	}
	out := LedgerSums{}
	for _, s := range got {
		out[s.kind] = s.n
	}
	return out, nil
}

// BatchLedger sums the ledger entries about batch by kind.
func (db *DB) BatchLedger(ctx context.Context, q Querier, batchID int64) (LedgerSums, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT kind, CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries
		WHERE batch_id = ? GROUP BY kind`), batchID)
	if err != nil {
		return nil, fmt.Errorf("sum ledger of batch %d: %w", batchID, err)
	}
	out := LedgerSums{}
	for rows.Next() {
		var k EntryKind
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("sum ledger of batch %d: %w", batchID, err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum ledger of batch %d: %w", batchID, err)
	}
	return out, rows.Close()
}

// ReservedCredits is the sum of the workspace's batches' open
// reservations (Batch.Reserved).
func (db *DB) ReservedCredits(ctx context.Context, q Querier, workspaceID int64) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, db.q(`SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM batches
		WHERE workspace_id = ? AND reserved <> 0`), workspaceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("reserved credits of workspace %d: %w", workspaceID, err)
	}
	return n, nil
}

// ModelUsage is one model's spending in a month.
type ModelUsage struct {
	Model   string
	Images  int64
	Credits int64
}

// UsageDelta adds images and credits to a workspace's month and model.
type UsageDelta struct {
	WorkspaceID int64
	Month       string // "YYYY-MM"
	Model       string
	Images      int64
	Credits     int64
}

// AddUsage queues the addition of ds to usage_monthly, one statement (the
// image workers' group).
func (db *DB) AddUsage(p *Pipeline, ds []UsageDelta) error {
	if len(ds) == 0 {
		return nil
	}
	if err := checkGroupSize("add usage", len(ds)); err != nil {
		return err
	}
	args := make([]any, 0, 5*len(ds))
	for _, d := range ds {
		args = append(args, d.WorkspaceID, d.Month, d.Model, d.Images, d.Credits)
	}
	p.Queue(insertRows("usage_monthly", `workspace_id, month, model, images, credits`, len(ds),
		`ON CONFLICT (workspace_id, month, model) DO UPDATE SET
		images = usage_monthly.images + excluded.images, credits = usage_monthly.credits + excluded.credits`), args, nil)
	return nil
}

// MonthUsage returns the workspace's spending in month ("YYYY-MM") by
// model, in model order.
func (db *DB) MonthUsage(ctx context.Context, q Querier, workspaceID int64, month string) ([]ModelUsage, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT model, images, credits FROM usage_monthly
		WHERE workspace_id = ? AND month = ? ORDER BY model`), workspaceID, month)
	if err != nil {
		return nil, fmt.Errorf("usage of workspace %d: %w", workspaceID, err)
	}
	return collect(rows, func(r interface{ Scan(...any) error }) (ModelUsage, error) {
		var u ModelUsage
		err := r.Scan(&u.Model, &u.Images, &u.Credits)
		return u, err
	}, "usage of workspace")
}
