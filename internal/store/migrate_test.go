package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// openUnmigrated opens an empty database for tb alone: SQLite in a temp
// folder, or a fresh PostgreSQL database when BULKGEN_TEST_DATABASE_URL
// names a server (storetest's variable; storetest itself migrates, and
// importing it here would be a cycle).
func openUnmigrated(tb testing.TB) *DB {
	tb.Helper()
	ctx := context.Background()
	dsn := filepath.Join(tb.TempDir(), "old.db")
	if admin := os.Getenv("BULKGEN_TEST_DATABASE_URL"); admin != "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		name := "bulkgen_migrate_" + hex.EncodeToString(b[:])
		adm, err := sql.Open("pgx", admin)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := adm.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			_, _ = adm.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = adm.Close()
		})
		u, err := url.Parse(admin)
		if err != nil {
			tb.Fatal(err)
		}
		u.Path = "/" + name
		dsn = u.String()
	}
	db, err := Open(ctx, dsn, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// migrateTo applies db's migrations up to and including version.
func migrateTo(tb testing.TB, db *DB, version int) {
	tb.Helper()
	files, err := loadMigrations(db.dialect)
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range files {
		if m.version > version {
			return
		}
		if err := db.Tx(context.Background(), func(tx *sql.Tx) error {
			_, err := db.applyMigration(context.Background(), tx, m)
			return err
		}); err != nil {
			tb.Fatalf("%s: %v", m.name, err)
		}
	}
}

// TestMigrationMovesPrompts: items written before prompts were stored
// once keep their prompts, and the items of a batch that shared a prompt
// now share one row.
func TestMigrationMovesPrompts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openUnmigrated(t)
	migrateTo(t, db, 5)
	w := db.Writer()
	now := db.timeArg(db.timestamp())
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := w.ExecContext(ctx, db.q(query), args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	exec(`INSERT INTO users (email, created_at) VALUES ('a@example.com', ?)`, now)
	exec(`INSERT INTO workspaces (owner_user_id, name, created_at) VALUES (1, 'a', ?)`, now)
	exec(`INSERT INTO batches (workspace_id, name, created_at) VALUES (1, 'one', ?)`, now)
	exec(`INSERT INTO batches (workspace_id, name, created_at) VALUES (1, 'two', ?)`, now)
	prompts := []struct {
		batch            int64
		prompt, negative string
	}{
		{1, "a red fox", ""}, {1, "a red fox", ""}, {1, "a red fox", "blurry"}, {1, "a lighthouse", ""},
		{2, "a red fox", ""},
	}
	for i, p := range prompts {
		exec(`INSERT INTO items (batch_id, workspace_id, prompt, negative_prompt, name, created_at, updated_at)
			VALUES (?, 1, ?, ?, ?, ?, ?)`, p.batch, p.prompt, p.negative, fmt.Sprint("item-", i), now, now)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for i, p := range prompts {
		it, err := db.GetItemByID(ctx, db.Reader(), int64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if it.Prompt != p.prompt || it.NegativePrompt != p.negative || it.BatchID != p.batch {
			t.Errorf("item %d: %q / %q in batch %d, want %q / %q in %d", i+1, it.Prompt, it.NegativePrompt, it.BatchID,
				p.prompt, p.negative, p.batch)
		}
	}
	var rows int
	if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM item_prompts`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 4 {
		t.Errorf("%d prompt rows, want 4 (three distinct in batch 1, one in batch 2)", rows)
	}
}

// TestPromptsStoredOnce: the items a row makes share one prompt row, new
// items of a batch number their prompts after its last, and each item
// reads its own prompt back.
func TestPromptsStoredOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openUnmigrated(t)
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := db.Writer()
	u, err := db.CreateUser(ctx, w, User{Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := db.CreateWorkspace(ctx, w, Workspace{OwnerUserID: u.ID, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateBatch(ctx, w, Batch{WorkspaceID: ws.ID})
	if err != nil {
		t.Fatal(err)
	}
	long := fmt.Sprintf("%0*d", 20_000, 7)
	var items []Item
	for i := range 50 {
		items = append(items, Item{BatchID: b.ID, WorkspaceID: ws.ID, Prompt: long, Name: fmt.Sprint("x", i)})
	}
	items = append(items, Item{BatchID: b.ID, WorkspaceID: ws.ID, Prompt: "short", NegativePrompt: "no", Name: "y"})
	if err := db.InsertItems(ctx, w, items); err != nil {
		t.Fatal(err)
	}
	more := []Item{{BatchID: b.ID, WorkspaceID: ws.ID, Prompt: long, Name: "z"}}
	if err := db.InsertItems(ctx, w, more); err != nil {
		t.Fatal(err)
	}
	var rows int
	var bytes int64
	if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*), SUM(LENGTH(prompt)) FROM item_prompts`).Scan(&rows, &bytes); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || bytes != int64(2*len(long)+len("short")) {
		t.Errorf("%d prompt rows holding %d bytes, want 3 holding %d", rows, bytes, 2*len(long)+len("short"))
	}
	got, err := db.ListItems(ctx, db.Reader(), ws.ID, ItemFilter{BatchID: b.ID}, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range got {
		want := append(items, more...)[i]
		if it.Prompt != want.Prompt || it.NegativePrompt != want.NegativePrompt {
			t.Fatalf("item %d reads %.20q / %q, want %.20q / %q", i, it.Prompt, it.NegativePrompt, want.Prompt, want.NegativePrompt)
		}
	}
}
