package server

import (
	"net/http"

	"bulkgen/internal/ledger"
)

// usageJSON is the workspace's credits and this month's spending.
type usageJSON struct {
	// Balance is the credits available; Unlimited says the workspace is
	// not refused for want of them (its quota and caps still apply).
	Balance   int64 `json:"balance"`
	Unlimited bool  `json:"unlimited"`
	// Reserved is the credits held for images not made yet.
	Reserved int64 `json:"reserved"`
	// MonthlyQuota is null without a quota; QuotaLeft likewise.
	MonthlyQuota *int64 `json:"monthly_quota"`
	QuotaLeft    *int64 `json:"quota_left"`
	// Month is the calendar month (UTC) of Spent and PerModel.
	Month    string           `json:"month"`
	Spent    int64            `json:"spent"`
	Images   int64            `json:"images"`
	PerModel []modelUsageJSON `json:"per_model"`
}

type modelUsageJSON struct {
	Model   string `json:"model"`
	Images  int64  `json:"images"`
	Credits int64  `json:"credits"`
}

// handleUsage handles GET /api/v1/usage: the workspace's balance, what its
// running batches hold, its quota, and what it spent this month by model.
func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request) error {
	if s.ext.Ledger == nil {
		return Errorf(http.StatusServiceUnavailable, "unavailable", "this server keeps no credits")
	}
	ctx, ws := r.Context(), caller(r).WorkspaceID
	acc, err := s.ext.Ledger.Account(ctx, s.db.Reader(), ws)
	if err != nil {
		return err
	}
	month := ledger.Month(s.now())
	usage, err := s.db.MonthUsage(ctx, s.db.Reader(), ws, month)
	if err != nil {
		return err
	}
	out := usageJSON{Balance: acc.Balance, Unlimited: acc.Unlimited, Reserved: acc.Reserved, Month: month,
		PerModel: make([]modelUsageJSON, 0, len(usage))}
	if acc.MonthlyQuota > 0 {
		q, left := acc.MonthlyQuota, acc.QuotaLeft()
		out.MonthlyQuota, out.QuotaLeft = &q, &left
	}
	for _, u := range usage {
		out.Spent += u.Credits
		out.Images += u.Images
		out.PerModel = append(out.PerModel, modelUsageJSON{Model: u.Model, Images: u.Images, Credits: u.Credits})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
