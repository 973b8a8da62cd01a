package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"bulkgen/internal/ledger"
	"bulkgen/internal/store"
)

// creditsUsage is the help of `bulkgen admin credits`.
const creditsUsage = `usage: bulkgen admin credits show  [--email EMAIL]
       bulkgen admin credits grant --amount CREDITS [--note TEXT] [--email EMAIL]
       bulkgen admin credits set   [--unlimited true|false] [--monthly-quota CREDITS] [--email EMAIL]`

// creditsFlags are the flags of `bulkgen admin credits`.
type creditsFlags struct {
	email, note, unlimited string
	amount, quota          int64
}

// adminCredits implements `bulkgen admin credits show|grant|set` for the
// personal workspace of the user with email: it prints the workspace's
// credits as JSON (after a grant or a change, as they are then), and the
// ledger's own check of them.
func adminCredits(ctx context.Context, db *store.DB, action string, f creditsFlags, stdout, stderr io.Writer) error {
	ws, err := personalWorkspace(ctx, db, f.email)
	if err != nil {
		return err
	}
	l := &ledger.Ledger{DB: db}
	switch action {
	case "show":
	case "grant":
		if f.amount <= 0 {
			fmt.Fprintln(stderr, creditsUsage)
			return errUsage
		}
		note := f.note
		if note == "" {
			note = "granted by an operator"
		}
		if err := l.Grant(ctx, db.Writer(), ws.ID, f.amount, "", note); err != nil {
			return err
		}
	case "set":
		acc, err := db.GetCreditAccount(ctx, db.Reader(), ws.ID, false)
		if err != nil {
			return err
		}
		unlimited, quota := acc.Unlimited, acc.MonthlyQuota
		if f.unlimited != "" {
			if unlimited, err = strconv.ParseBool(f.unlimited); err != nil {
				fmt.Fprintln(stderr, creditsUsage)
				return errUsage
			}
		}
		if f.quota >= 0 {
			quota = f.quota
		}
		if err := db.SetCreditLimits(ctx, db.Writer(), ws.ID, unlimited, quota); err != nil {
			return err
		}
	default:
		fmt.Fprintln(stderr, creditsUsage)
		return errUsage
	}
	acc, err := l.Account(ctx, db.Reader(), ws.ID)
	if err != nil {
		return err
	}
	out := map[string]any{
		"workspace_id": ws.ID, "workspace": ws.Name, "balance": acc.Balance, "unlimited": acc.Unlimited,
		"reserved": acc.Reserved, "monthly_quota": acc.MonthlyQuota, "month_used": acc.MonthUsed, "check": "ok",
	}
	if err := l.Verify(ctx, db.Reader(), ws.ID); err != nil {
		out["check"] = err.Error()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	if out["check"] != "ok" {
		return exitCode(1)
	}
	return nil
}

// personalWorkspace is the first workspace the user with email owns.
func personalWorkspace(ctx context.Context, db *store.DB, email string) (store.Workspace, error) {
	u, err := db.GetUserByEmail(ctx, db.Reader(), email)
	if errors.Is(err, store.ErrNotFound) {
		return store.Workspace{}, fmt.Errorf("no user %s", email)
	}
	if err != nil {
		return store.Workspace{}, err
	}
	wss, err := db.ListWorkspacesByOwner(ctx, db.Reader(), u.ID)
	if err != nil {
		return store.Workspace{}, err
	}
	if len(wss) == 0 {
		return store.Workspace{}, fmt.Errorf("%s has no workspace", email)
	}
	return wss[0], nil
}
