package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"bulkgen/internal/auth"
	"bulkgen/internal/store"
)

// DefaultAdminEmail is the first admin's address unless the operator
// names another (BULKGEN_ADMIN_EMAIL).
const DefaultAdminEmail = "admin@localhost"

// BootstrapAdmin creates the first admin, its workspace and an API token
// when the database has no user yet, and prints the token once on stdout
// (the explanation goes to stderr, so that stdout can be captured).
func BootstrapAdmin(ctx context.Context, db *store.DB, email string, stdout, stderr io.Writer) error {
	n, err := db.CountUsers(ctx, db.Reader())
	if err != nil || n > 0 {
		return err
	}
	u, ws, err := EnsureAdmin(ctx, db, email)
	if errors.Is(err, store.ErrConflict) {
		return nil // another process started at the same moment and made it
	}
	if err != nil {
		return err
	}
	plain, err := CreateToken(ctx, db, u, ws, "first start")
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bulkgen: first start: created the admin user %s (workspace %q).\n", u.Email, ws.Name)
	fmt.Fprintf(stderr, "bulkgen: its API token is printed below, ONCE; store it now. More tokens: bulkgen admin create-token --name NAME\n")
	fmt.Fprintf(stdout, "admin API token: %s\n", plain)
	return nil
}

// EnsureAdmin returns the admin user with email and its personal
// workspace, creating either when missing (the workspace with unlimited
// credits) and promoting an existing user.
func EnsureAdmin(ctx context.Context, db *store.DB, email string) (store.User, store.Workspace, error) {
	var u store.User
	var ws store.Workspace
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = db.GetUserByEmail(ctx, tx, email)
		switch {
		case errors.Is(err, store.ErrNotFound):
			u, err = db.CreateUser(ctx, tx, store.User{Email: email, Name: "Administrator", Role: store.RoleAdmin})
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case u.Role != store.RoleAdmin:
			if err := db.SetUserRole(ctx, tx, u.ID, store.RoleAdmin); err != nil {
				return err
			}
			u.Role = store.RoleAdmin
		}
		wss, err := db.ListWorkspacesByOwner(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		if len(wss) > 0 {
			ws = wss[0]
			return nil
		}
		ws, err = db.CreateWorkspace(ctx, tx, store.Workspace{OwnerUserID: u.ID, Name: "Personal"})
		if err != nil {
			return err
		}
		// A self-hoster's own workspace runs on their own provider keys:
		// it is not refused for want of credits (a quota and max_cost
		// still apply when set).
		return db.SetCreditLimits(ctx, tx, ws.ID, true, 0)
	})
	return u, ws, err
}

// CreateToken stores a new API token for u in ws and returns its
// plaintext, which exists nowhere else.
func CreateToken(ctx context.Context, db *store.DB, u store.User, ws store.Workspace, name string) (string, error) {
	plain, hash, display := auth.NewToken()
	if _, err := db.CreateAPIToken(ctx, db.Writer(), store.APIToken{
		UserID: u.ID, WorkspaceID: ws.ID, Name: name, TokenHash: hash, Prefix: display,
	}); err != nil {
		return "", err
	}
	return plain, nil
}
