package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"bulkgen/internal/auth"
	"bulkgen/internal/batch"
	"bulkgen/internal/blob"
	"bulkgen/internal/blob/fileblob"
	"bulkgen/internal/blobgc"
	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/ledger"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/preview"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
	"bulkgen/internal/store/storetest"
)

// testBundle is one server over a fresh migrated database (SQLite, or
// PostgreSQL when BULKGEN_TEST_DATABASE_URL is set), a blob folder in a
// temp dir and an insert-only River client, with two workspaces A and B,
// each with its own user and API token.
type testBundle struct {
	DB     *store.DB
	Server *Server
	URL    string // base URL of the running httptest.Server
	Blobs  *fileblob.Store
	River  *river.Client[*sql.Tx]
	A, B   testTenant
}

// testTenant is a user with a workspace and a valid API token for it.
type testTenant struct {
	UserID      int64
	WorkspaceID int64
	Token       string
}

// newTestBundle builds a testBundle; edit, when not nil, may change the
// server's dependencies before the server is built. Nothing works the
// queued jobs: tests play the worker with completeItem and failItem.
func newTestBundle(t *testing.T, edit func(*Deps)) *testBundle {
	t.Helper()
	db := storetest.New(t)
	blobs, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatalf("blob store: %v", err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	rc, err := queue.New(t.Context(), db, queue.Config{InsertOnly: true, TestOnly: true}, nil, nil)
	if err != nil {
		t.Fatalf("river client: %v", err)
	}
	svc := newTestService(db)
	svc.Queue = rc
	return buildTestBundle(t, db, blobs, rc, svc, edit)
}

// newTestService is the batch service the test servers run, on the
// default catalogue, without its queue (set once the client exists).
func newTestService(db *store.DB) *batch.Service {
	return &batch.Service{DB: db, Ledger: &ledger.Ledger{DB: db}, Catalog: catalog.Default(), DefaultModel: "preview",
		Policy: generate.Policy{MaxAttempts: 3}}
}

// newWorkerBundle builds a testBundle whose River client is started with
// the real image worker (generate.ImageWorker) on the preview engine, each
// call taking latency.
func newWorkerBundle(t *testing.T, latency time.Duration) *testBundle {
	t.Helper()
	db := storetest.New(t)
	blobs, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatalf("blob store: %v", err)
	}
	t.Cleanup(func() { _ = blobs.Close() })
	eng, err := preview.New(preview.Config{Latency: latency, RandSeed: 1})
	if err != nil {
		t.Fatalf("preview engine: %v", err)
	}
	svc := newTestService(db)
	workers := river.NewWorkers()
	river.AddWorker(workers, &generate.ImageWorker{
		DB: db, Blobs: blobs, Generator: &generate.Generator{Providers: testProviders{preview.Name: eng}},
		Settler: svc, JobTimeout: 30 * time.Second, PausedSnooze: 50 * time.Millisecond,
	})
	rc, err := queue.New(t.Context(), db, queue.Config{
		Queues:            map[string]queue.Queue{batch.QueueFor(preview.Name): {MaxWorkers: 4}},
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		MaxAttempts:       3,
		Retry:             generate.Policy{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond},
		TestOnly:          true,
	}, workers, nil)
	if err != nil {
		t.Fatalf("river client: %v", err)
	}
	svc.Queue = rc
	if err := rc.Start(t.Context()); err != nil {
		t.Fatalf("start river: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rc.Stop(ctx); err != nil {
			t.Errorf("stop river: %v", err)
		}
	})
	return buildTestBundle(t, db, blobs, rc, svc, nil)
}

// testProviders finds providers by name for the generator.
type testProviders map[string]provider.Provider

func (p testProviders) Get(name string) (provider.Provider, error) {
	if pr, ok := p[name]; ok {
		return pr, nil
	}
	return nil, fmt.Errorf("provider %q not configured", name)
}

func buildTestBundle(t *testing.T, db *store.DB, blobs *fileblob.Store, rc *river.Client[*sql.Tx], svc *batch.Service, edit func(*Deps)) *testBundle {
	t.Helper()
	deps := Deps{
		DB:     db,
		Logger: slog.New(slog.DiscardHandler),
		Ext: Extra{
			Catalog:   catalog.Default(),
			Blobs:     blobs,
			Batches:   svc,
			Ledger:    svc.Ledger,
			UploadDir: t.TempDir(),
		},
	}
	if edit != nil {
		edit(&deps)
	}
	s := New(deps)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	b := &testBundle{DB: db, Server: s, URL: ts.URL, Blobs: blobs, River: rc}
	b.A = b.newTenant(t, "a")
	b.B = b.newTenant(t, "b")
	return b
}

// newTenant creates a user, a workspace and an API token.
func (b *testBundle) newTenant(t *testing.T, name string) testTenant {
	t.Helper()
	ctx := t.Context()
	u, err := b.DB.CreateUser(ctx, b.DB.Writer(), store.User{Email: name + "@example.com", Name: name})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	ws, err := b.DB.CreateWorkspace(ctx, b.DB.Writer(), store.Workspace{OwnerUserID: u.ID, Name: name})
	if err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	// Unlimited, like a self-hoster's own workspace, so that paid models
	// run; the credit tests make limited ones (limitedTenant).
	if err := b.DB.SetCreditLimits(ctx, b.DB.Writer(), ws.ID, true, 0); err != nil {
		t.Fatalf("credit limits: %v", err)
	}
	plain, hash, prefix := auth.NewToken()
	if _, err := b.DB.CreateAPIToken(ctx, b.DB.Writer(), store.APIToken{UserID: u.ID, WorkspaceID: ws.ID, Name: name,
		TokenHash: hash, Prefix: prefix}); err != nil {
		t.Fatalf("create token: %v", err)
	}
	return testTenant{UserID: u.ID, WorkspaceID: ws.ID, Token: plain}
}

// testResponse is an answer read whole.
type testResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r testResponse) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.Status, r.Body, err)
	}
}

// ErrorCode is the code of an error body, "" when there is none.
func (r testResponse) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// do sends a request as the tenant with token (none when ""). body may be
// nil, a string or []byte (sent as is), an io.Reader, or any other value
// (sent as JSON).
func (b *testBundle) do(t *testing.T, method, path, token string, body any, header ...string) testResponse {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch v := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(v), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(v), "application/json"
	case io.Reader:
		rd = v
	default:
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd, ct = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return testResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// must sends a request and fails the test unless the status is want.
func (b *testBundle) must(t *testing.T, want int, method, path, token string, body any, v any) testResponse {
	t.Helper()
	r := b.do(t, method, path, token, body)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.Status, want, r.Body)
	}
	if v != nil {
		r.JSON(t, v)
	}
	return r
}

// createBatch submits prompts on the preview model for tenant and returns
// the batch id.
func (b *testBundle) createBatch(t *testing.T, tn testTenant, prompts ...string) int64 {
	t.Helper()
	var out struct {
		ID int64 `json:"id"`
	}
	b.must(t, http.StatusCreated, "POST", "/api/v1/batches", tn.Token, map[string]any{
		"name": "test", "prompts": prompts, "defaults": map[string]any{"model": "preview", "size": "16x16"},
	}, &out)
	return out.ID
}

// items returns a batch's items straight from the database.
func (b *testBundle) items(t *testing.T, tn testTenant, batchID int64) []store.Item {
	t.Helper()
	items, err := b.DB.ListItems(t.Context(), b.DB.Reader(), tn.WorkspaceID, store.ItemFilter{BatchID: batchID}, 0, 1000)
	if err != nil {
		t.Fatalf("list items: %v", err)
	}
	return items
}

// completeItem does what the worker does for a successful item: it stores
// a PNG in the blob store and records the image (with the item's parent
// image as its parent) and the item's success. It returns the image.
func (b *testBundle) completeItem(t *testing.T, it store.Item) store.Image {
	t.Helper()
	ctx := t.Context()
	data := testPNG(t, it.ID)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	key := blob.KeyFor(hexSum, "png")
	if err := b.Blobs.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatalf("put blob: %v", err)
	}
	var im store.Image
	err := b.DB.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		im, _, err = b.DB.InsertImage(ctx, tx, store.Image{
			ItemID: it.ID, BatchID: it.BatchID, WorkspaceID: it.WorkspaceID, ParentID: it.ParentImageID,
			BlobKey: key, SHA256: hexSum, Bytes: int64(len(data)), Width: 8, Height: 8, Format: "png",
			Seed: it.Seed, HasSeed: it.HasSeed, Provider: it.Provider, Model: it.Model, Cost: it.CostEstimate,
		})
		if err != nil {
			return err
		}
		if _, err := b.DB.UpdateItemStatus(ctx, tx, it.ID, store.ItemUpdate{Status: store.ItemSucceeded, Attempts: 1}); err != nil {
			return err
		}
		return b.DB.RecountBatch(ctx, tx, it.BatchID)
	})
	if err != nil {
		t.Fatalf("complete item %d: %v", it.ID, err)
	}
	return im
}

// failItem marks an item failed and counts it, as the worker does when
// it gives up.
func (b *testBundle) failItem(t *testing.T, it store.Item) {
	t.Helper()
	ctx := t.Context()
	err := b.DB.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := b.DB.UpdateItemStatus(ctx, tx, it.ID, store.ItemUpdate{
			Status: store.ItemFailed, Error: "provider said no", ErrorClass: "rejected", Attempts: 1}); err != nil {
			return err
		}
		return b.DB.RecountBatch(ctx, tx, it.BatchID)
	})
	if err != nil {
		t.Fatalf("fail item: %v", err)
	}
}

// jobStates counts the image jobs of a batch's items by River state. It
// finds them by their arguments, not through items.job_id, so that it
// also sees jobs the items no longer link to.
func (b *testBundle) jobStates(t *testing.T, batchID int64) map[string]int {
	t.Helper()
	return b.queryJobStates(t, `SELECT j.state FROM river_job j JOIN items i ON i.id = CAST(j.args->>'item_id' AS BIGINT)
		WHERE j.kind = 'image' AND i.batch_id = `+fmt.Sprint(batchID))
}

// itemJobStates counts the image jobs of the given items by River state.
func (b *testBundle) itemJobStates(t *testing.T, itemIDs []int64) map[string]int {
	t.Helper()
	list := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(itemIDs)), ","), "[]")
	return b.queryJobStates(t, `SELECT j.state FROM river_job j
		WHERE j.kind = 'image' AND CAST(j.args->>'item_id' AS BIGINT) IN (`+list+`)`)
}

func (b *testBundle) queryJobStates(t *testing.T, q string) map[string]int {
	t.Helper()
	rows, err := b.DB.Reader().QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("job states: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("job states: %v", err)
		}
		out[s]++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("job states: %v", err)
	}
	return out
}

// testPNG is a small PNG whose pixels depend on seed, so that different
// items make different files.
func testPNG(t *testing.T, seed int64) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = byte(seed*31 + int64(i))
	}
	img.Set(0, 0, color.RGBA{R: byte(seed), A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}

// shareBlob records a second image (a later generation of the first item
// of batch other) stored in the same file as im, as content addressing
// does for identical bytes.
func (b *testBundle) shareBlob(t *testing.T, other int64, im store.Image) store.Image {
	t.Helper()
	it := b.items(t, testTenant{WorkspaceID: im.WorkspaceID}, other)[0]
	out, _, err := b.DB.InsertImage(t.Context(), b.DB.Writer(), store.Image{
		ItemID: it.ID, BatchID: other, WorkspaceID: im.WorkspaceID, Generation: 2, BlobKey: im.BlobKey,
		SHA256: im.SHA256, Bytes: im.Bytes, Format: im.Format,
	})
	if err != nil {
		t.Fatalf("insert sharing image: %v", err)
	}
	return out
}

// sweep runs the blob sweeper with a grace period of a nanosecond, as if
// every file were old: files no image uses go.
func (b *testBundle) sweep(t *testing.T) {
	t.Helper()
	if _, err := blobgc.Sweep(t.Context(), b.DB, b.Blobs, time.Nanosecond, nil); err != nil {
		t.Fatalf("sweep: %v", err)
	}
}

// blobExists reports whether the blob store holds key.
func (b *testBundle) blobExists(t *testing.T, key string) bool {
	t.Helper()
	obj, err := b.Blobs.Open(t.Context(), key)
	if errors.Is(err, blob.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("open blob %s: %v", key, err)
	}
	_ = obj.Close()
	return true
}

// filesIn lists the entries of dir.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// waitBatch polls the batch until done says its state is reached, and
// fails the test after a generous deadline (a wait, not a timing claim).
func (b *testBundle) waitBatch(t *testing.T, tn testTenant, id int64, done func(batchOut) bool) batchOut {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out batchOut
		b.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d", id), tn.Token, nil, &out)
		if done(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %d never reached the awaited state; last seen %+v", id, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
