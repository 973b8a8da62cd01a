package store_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// testBundle is the fresh state most tests start from: a migrated database
// with one user and their workspace.
type testBundle struct {
	db        *store.DB
	user      store.User
	workspace store.Workspace
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := t.Context()
	db := storetest.New(t)
	user, err := db.CreateUser(ctx, db.Writer(), store.User{Email: "ann@example.com", Name: "Ann"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	ws, err := db.CreateWorkspace(ctx, db.Writer(), store.Workspace{OwnerUserID: user.ID, Name: "Ann's"})
	if err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	return &testBundle{db: db, user: user, workspace: ws}
}

// otherWorkspace creates a second user and workspace, for isolation checks.
func (b *testBundle) otherWorkspace(t *testing.T) store.Workspace {
	t.Helper()
	ctx := t.Context()
	u, err := b.db.CreateUser(ctx, b.db.Writer(), store.User{Email: "bob@example.com"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	ws, err := b.db.CreateWorkspace(ctx, b.db.Writer(), store.Workspace{OwnerUserID: u.ID, Name: "Bob's"})
	if err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	return ws
}

func TestOpenSQLite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	tests := []struct {
		name string
		dsn  string
	}{
		{"plain path in new folder", filepath.Join(dir, "a", "b", "plain.db")},
		{"sqlite url", "sqlite://" + filepath.Join(dir, "url.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(ctx, tt.dsn, nil)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.dsn, err)
			}
			defer db.Close()
			if got := db.Dialect(); got != store.SQLite {
				t.Errorf("Dialect() = %q, want %q", got, store.SQLite)
			}
			if got := db.Writer().Stats().MaxOpenConnections; got != 1 {
				t.Errorf("writer MaxOpenConnections = %d, want 1", got)
			}
			if db.Reader() == db.Writer() {
				t.Errorf("Reader() is the writer pool, want a separate pool")
			}
			for _, p := range []struct {
				pool         *sql.DB
				pragma, want string
			}{
				{db.Writer(), "journal_mode", "wal"},
				{db.Writer(), "foreign_keys", "1"},
				{db.Writer(), "busy_timeout", "10000"},
				{db.Writer(), "synchronous", "1"},
				{db.Reader(), "busy_timeout", "10000"},
				{db.Reader(), "query_only", "1"},
			} {
				var got string
				if err := p.pool.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
					t.Fatalf("PRAGMA %s: %v", p.pragma, err)
				}
				if got != p.want {
					t.Errorf("PRAGMA %s = %q, want %q", p.pragma, got, p.want)
				}
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"", ":memory:", "sqlite://file:x.db", "sqlite://" + filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if db, err := store.Open(t.Context(), dsn, nil); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", dsn)
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := storetest.New(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	var n int
	if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatalf("count schema_migrations: %v", err)
	}
	files, err := os.ReadDir(filepath.Join("migrations", string(db.Dialect())))
	if err != nil {
		t.Fatalf("list migration files: %v", err)
	}
	if n != len(files) {
		t.Errorf("schema_migrations has %d rows, want one per migration file (%d)", n, len(files))
	}
	// River's tables are there too.
	if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM river_job`).Scan(&n); err != nil {
		t.Fatalf("count river_job: %v", err)
	}
}

func TestMigrateConcurrentSQLite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "race.db")
	// Two processes' worth of pools on one file, migrating at once: the
	// immediate transactions must serialise them.
	var dbs []*store.DB
	for range 2 {
		db, err := store.Open(ctx, path, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(dbs))
	for i, db := range dbs {
		wg.Go(func() { errs[i] = db.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
}

func TestTx(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db := b.db

	errBoom := errors.New("boom")
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := db.CreateProject(ctx, tx, store.Project{WorkspaceID: b.workspace.ID, Name: "rolled back"}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx error = %v, want %v", err, errBoom)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("Tx swallowed a panic")
			}
		}()
		_ = db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := db.CreateProject(ctx, tx, store.Project{WorkspaceID: b.workspace.ID, Name: "panicked"}); err != nil {
				return err
			}
			panic("boom")
		})
	}()

	var committed store.Project
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		committed, err = db.CreateProject(ctx, tx, store.Project{WorkspaceID: b.workspace.ID, Name: "kept"})
		return err
	}); err != nil {
		t.Fatalf("Tx: %v", err)
	}

	// The reader pool sees exactly the committed project.
	got, err := db.ListProjects(ctx, db.Reader(), b.workspace.ID, 0, 10)
	if err != nil {
		t.Fatalf("ListProjects: %v", err)
	}
	if len(got) != 1 || got[0].ID != committed.ID {
		t.Errorf("ListProjects = %+v, want only %+v", got, committed)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()

	if b.user.Role != store.RoleUser || b.user.ID == 0 || b.user.CreatedAt.IsZero() {
		t.Errorf("CreateUser = %+v, want an id, a created_at and role user", b.user)
	}
	got, err := db.GetUserByEmail(ctx, db.Reader(), "  ANN@Example.com ")
	if err != nil {
		t.Fatalf("GetUserByEmail: %v", err)
	}
	if got != b.user {
		t.Errorf("GetUserByEmail = %+v, want %+v", got, b.user)
	}
	if _, err := db.CreateUser(ctx, w, store.User{Email: "Ann@example.COM"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser(same email) error = %v, want ErrConflict", err)
	}
	if _, err := db.GetUser(ctx, w, b.user.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(missing) error = %v, want ErrNotFound", err)
	}
	if err := db.SetUserRole(ctx, w, b.user.ID, store.RoleAdmin); err != nil {
		t.Fatalf("SetUserRole: %v", err)
	}
	if err := db.SetUserPassword(ctx, w, b.user.ID, "$argon2id$x"); err != nil {
		t.Fatalf("SetUserPassword: %v", err)
	}
	got, err = db.GetUser(ctx, w, b.user.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.Role != store.RoleAdmin || got.PasswordHash != "$argon2id$x" {
		t.Errorf("after updates got role %q hash %q, want admin and the new hash", got.Role, got.PasswordHash)
	}
	if err := db.SetUserRole(ctx, w, b.user.ID+1000, store.RoleAdmin); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetUserRole(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := w.ExecContext(ctx, `UPDATE users SET role = 'root'`); err == nil {
		t.Errorf("role 'root' accepted, want the CHECK constraint to refuse it")
	}
	if n, err := db.CountUsers(ctx, w); err != nil || n != 1 {
		t.Errorf("CountUsers = %d, %v; want 1", n, err)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()

	now := b.user.CreatedAt
	live, err := db.CreateSession(ctx, w, store.Session{UserID: b.user.ID, TokenHash: []byte("live"), ExpiresAt: now.Add(1e12)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if _, err := db.CreateSession(ctx, w, store.Session{UserID: b.user.ID, TokenHash: []byte("old"), ExpiresAt: now.Add(-1e12)}); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	got, err := db.LookupSession(ctx, w, []byte("live"))
	if err != nil {
		t.Fatalf("LookupSession: %v", err)
	}
	if got.ID != live.ID || !got.ExpiresAt.Equal(live.ExpiresAt) {
		t.Errorf("LookupSession = %+v, want %+v", got, live)
	}
	if _, err := db.LookupSession(ctx, w, []byte("old")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupSession(expired) error = %v, want ErrNotFound", err)
	}
	if err := db.DeleteUserSessions(ctx, w, b.user.ID); err != nil {
		t.Fatalf("DeleteUserSessions: %v", err)
	}
	if _, err := db.LookupSession(ctx, w, []byte("live")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupSession(deleted) error = %v, want ErrNotFound", err)
	}
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()

	hash := []byte{0x01, 0x02, 0xff, 0x00, 0x10}
	tok, err := db.CreateAPIToken(ctx, w, store.APIToken{
		UserID: b.user.ID, WorkspaceID: b.workspace.ID, Name: "ci", TokenHash: hash, Prefix: "bg_12",
	})
	if err != nil {
		t.Fatalf("CreateAPIToken: %v", err)
	}
	if _, err := db.CreateAPIToken(ctx, w, store.APIToken{UserID: b.user.ID, WorkspaceID: b.workspace.ID, TokenHash: hash}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateAPIToken(same hash) error = %v, want ErrConflict", err)
	}
	got, err := db.LookupAPIToken(ctx, db.Reader(), hash)
	if err != nil {
		t.Fatalf("LookupAPIToken: %v", err)
	}
	if got.ID != tok.ID || got.Prefix != "bg_12" || string(got.TokenHash) != string(hash) || !got.LastUsedAt.IsZero() {
		t.Errorf("LookupAPIToken = %+v, want %+v", got, tok)
	}
	if err := db.TouchAPIToken(ctx, w, tok.ID); err != nil {
		t.Fatalf("TouchAPIToken: %v", err)
	}
	other := b.otherWorkspace(t)
	if err := db.RevokeAPIToken(ctx, w, other.OwnerUserID, tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeAPIToken(by another user) error = %v, want ErrNotFound", err)
	}
	if err := db.RevokeAPIToken(ctx, w, b.user.ID, tok.ID); err != nil {
		t.Fatalf("RevokeAPIToken: %v", err)
	}
	if _, err := db.LookupAPIToken(ctx, w, hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupAPIToken(revoked) error = %v, want ErrNotFound", err)
	}
	list, err := db.ListAPITokens(ctx, w, b.user.ID)
	if err != nil {
		t.Fatalf("ListAPITokens: %v", err)
	}
	if len(list) != 1 || list[0].RevokedAt.IsZero() || list[0].LastUsedAt.IsZero() {
		t.Errorf("ListAPITokens = %+v, want one token, used and revoked", list)
	}
}

func TestWorkspacesAndProjects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	db, w := b.db, b.db.Writer()

	got, err := db.GetWorkspace(ctx, w, b.workspace.ID)
	if err != nil {
		t.Fatalf("GetWorkspace: %v", err)
	}
	if got != b.workspace {
		t.Errorf("GetWorkspace = %+v, want %+v", got, b.workspace)
	}
	list, err := db.ListWorkspacesByOwner(ctx, w, b.user.ID)
	if err != nil || len(list) != 1 || list[0] != b.workspace {
		t.Errorf("ListWorkspacesByOwner = %+v, %v; want [%+v]", list, err, b.workspace)
	}

	var ids []int64
	for _, name := range []string{"a", "b", "c"} {
		p, err := db.CreateProject(ctx, w, store.Project{WorkspaceID: b.workspace.ID, Name: name})
		if err != nil {
			t.Fatalf("CreateProject: %v", err)
		}
		ids = append(ids, p.ID)
	}
	if _, err := db.CreateProject(ctx, w, store.Project{WorkspaceID: b.workspace.ID, Name: "a"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateProject(same name) error = %v, want ErrConflict", err)
	}
	other := b.otherWorkspace(t)
	if _, err := db.GetProject(ctx, w, other.ID, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetProject(other workspace) error = %v, want ErrNotFound", err)
	}
	page1, err := db.ListProjects(ctx, w, b.workspace.ID, 0, 2)
	if err != nil {
		t.Fatalf("ListProjects: %v", err)
	}
	page2, err := db.ListProjects(ctx, w, b.workspace.ID, page1[len(page1)-1].ID, 2)
	if err != nil {
		t.Fatalf("ListProjects: %v", err)
	}
	var gotIDs []int64
	for _, p := range append(page1, page2...) {
		gotIDs = append(gotIDs, p.ID)
	}
	if len(page1) != 2 || len(page2) != 1 || !equalIDs(gotIDs, ids) {
		t.Errorf("pages = %v, want %v split 2+1", gotIDs, ids)
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
