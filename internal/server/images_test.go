package server

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"bulkgen/internal/store"
)

type imageOut struct {
	ID       int64  `json:"id"`
	ItemID   int64  `json:"item_id"`
	BatchID  int64  `json:"batch_id"`
	ParentID *int64 `json:"parent_id"`
	SHA256   string `json:"sha256"`
	Format   string `json:"format"`
	Review   string `json:"review"`
	FileURL  string `json:"file_url"`
	Relation string `json:"relation"`
	Item     *struct {
		Prompt string `json:"prompt"`
		Name   string `json:"name"`
	} `json:"item"`
}

// finishedBatch makes a batch of prompts whose items all succeeded and
// returns it with its images.
func (b *testBundle) finishedBatch(t *testing.T, prompts ...string) (int64, []store.Image) {
	t.Helper()
	id := b.createBatch(t, b.A, prompts...)
	var ims []store.Image
	for _, it := range b.items(t, b.A, id) {
		ims = append(ims, b.completeItem(t, it))
	}
	if err := b.DB.SetBatchStatus(t.Context(), b.DB.Writer(), id, store.BatchRunning); err != nil {
		t.Fatal(err)
	}
	if err := b.DB.SetBatchStatus(t.Context(), b.DB.Writer(), id, store.BatchSucceeded); err != nil {
		t.Fatal(err)
	}
	return id, ims
}

func TestImageListGetReview(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	tok := tb.A.Token
	b1, ims := tb.finishedBatch(t, "a red fox", "b", "c")
	_, others := tb.finishedBatch(t, "d")

	var got imageOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d", ims[0].ID), tok, nil, &got)
	if got.ID != ims[0].ID || got.BatchID != b1 || got.SHA256 != ims[0].SHA256 || got.Item == nil ||
		got.Item.Prompt != "a red fox" || got.Item.Name != "1-1.png" || got.FileURL != fmt.Sprintf("/api/v1/images/%d/file", ims[0].ID) {
		t.Errorf("image = %+v item %+v", got, got.Item)
	}

	var out imageOut
	tb.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/images/%d/review", ims[1].ID), tok, map[string]string{"review": "approved"}, &out)
	if out.Review != "approved" {
		t.Errorf("review = %q", out.Review)
	}
	tb.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/images/%d/review", others[0].ID), tok, map[string]string{"review": "rejected"}, nil)
	if r := tb.do(t, "POST", fmt.Sprintf("/api/v1/images/%d/review", ims[1].ID), tok, map[string]string{"review": "great"}); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("bad review value: %d %s", r.Status, r.Body)
	}

	lists := []struct {
		query string
		want  []int64
	}{
		{"", []int64{ims[0].ID, ims[1].ID, ims[2].ID, others[0].ID}},
		{fmt.Sprintf("?batch_id=%d", b1), []int64{ims[0].ID, ims[1].ID, ims[2].ID}},
		{"?review=approved", []int64{ims[1].ID}},
		{fmt.Sprintf("?review=rejected&batch_id=%d", b1), nil},
		{"?review=none", []int64{ims[0].ID, ims[2].ID}},
	}
	for _, l := range lists {
		var pg pageOut[imageOut]
		tb.must(t, http.StatusOK, "GET", "/api/v1/images"+l.query, tok, nil, &pg)
		var ids []int64
		for _, im := range pg.Data {
			ids = append(ids, im.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(l.want) {
			t.Errorf("GET /api/v1/images%s = %v, want %v", l.query, ids, l.want)
		}
	}
	var pg pageOut[imageOut]
	tb.must(t, http.StatusOK, "GET", "/api/v1/images?limit=3", tok, nil, &pg)
	if len(pg.Data) != 3 || pg.NextCursor == nil || *pg.NextCursor != fmt.Sprint(ims[2].ID) {
		t.Errorf("page = %+v", pg)
	}
}

func TestImageFile(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	_, ims := tb.finishedBatch(t, "x")
	im := ims[0]
	want := testPNG(t, im.ItemID)
	path := fmt.Sprintf("/api/v1/images/%d/file", im.ID)
	etag := `"` + im.SHA256 + `"`

	r := tb.must(t, http.StatusOK, "GET", path, tb.A.Token, nil, nil)
	if !bytes.Equal(r.Body, want) {
		t.Errorf("body is %d bytes, want the stored %d", len(r.Body), len(want))
	}
	if ct := r.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.Header.Get("ETag") != etag || r.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("headers = %v", r.Header)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != `inline; filename=1-1.png` {
		t.Errorf("Content-Disposition %q", cd)
	}

	r = tb.do(t, "GET", path, tb.A.Token, nil, "If-None-Match", etag)
	if r.Status != http.StatusNotModified || len(r.Body) != 0 {
		t.Errorf("If-None-Match: %d with %d bytes, want 304", r.Status, len(r.Body))
	}
	r = tb.do(t, "GET", path, tb.A.Token, nil, "If-None-Match", `"something-else"`)
	if r.Status != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", r.Status)
	}
	r = tb.do(t, "GET", path, tb.A.Token, nil, "Range", "bytes=2-9")
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[2:10]) ||
		r.Header.Get("Content-Range") != fmt.Sprintf("bytes 2-9/%d", len(want)) {
		t.Errorf("Range: %d %q %v", r.Status, r.Body, r.Header)
	}
	r = tb.do(t, "GET", path, tb.A.Token, nil, "Range", fmt.Sprintf("bytes=%d-", len(want)+10))
	if r.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable Range: %d", r.Status)
	}

	// A row whose file went missing is a clear 404, not a 500.
	if err := tb.Blobs.Delete(t.Context(), im.BlobKey); err != nil {
		t.Fatal(err)
	}
	if r := tb.do(t, "GET", path, tb.A.Token, nil); r.Status != http.StatusNotFound || r.ErrorCode() != "file_missing" {
		t.Errorf("missing file: %d %s", r.Status, r.Body)
	}
}

type regenOut struct {
	Data []struct {
		ImageID int64   `json:"image_id"`
		Item    itemOut `json:"item"`
	} `json:"data"`
}

func TestImageRegenerateAndVersions(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	tok := tb.A.Token
	batchID, ims := tb.finishedBatch(t, "a castle", "a lighthouse")
	orig := ims[0]

	// Regenerate with overrides: a new pending item in the same batch,
	// pointing at the original, with its own job; the finished batch
	// runs again.
	var one regenOut
	tb.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/api/v1/images/%d/regenerate", orig.ID), tok, map[string]any{
		"overrides": map[string]any{"prompt": "a castle at night", "seed": 42, "size": "48x32", "format": "webp"},
	}, &one)
	if len(one.Data) != 1 {
		t.Fatalf("regenerate answered %+v", one)
	}
	v2 := one.Data[0].Item
	if v2.ParentImageID == nil || *v2.ParentImageID != orig.ID || v2.Prompt != "a castle at night" || v2.Seed == nil ||
		*v2.Seed != 42 || v2.Width != 48 || v2.Height != 32 || v2.Format != "webp" || v2.Status != "pending" || v2.Name != "1-1-v2.webp" {
		t.Errorf("regenerated item = %+v", v2)
	}
	var b batchOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d", batchID), tok, nil, &b)
	if b.Status != "running" || b.Total != 3 || b.Counts["pending"] != 1 {
		t.Errorf("batch after regenerate = %+v", b)
	}
	if jobs := tb.itemJobStates(t, []int64{v2.ID}); jobs["available"] != 1 {
		t.Errorf("jobs of the new item = %v", jobs)
	}

	// Without a body: same request, fresh seed.
	var plain regenOut
	tb.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/api/v1/images/%d/regenerate", orig.ID), tok, nil, &plain)
	v3 := plain.Data[0].Item
	origItem := tb.items(t, tb.A, batchID)[0]
	if v3.Prompt != "a castle" || v3.Width != origItem.Width || v3.Name != "1-1-v3.png" || *v3.ParentImageID != orig.ID {
		t.Errorf("plain regeneration = %+v", v3)
	}

	// The worker makes both images; then a regeneration of a
	// regeneration.
	byID := map[int64]store.Item{}
	for _, it := range tb.items(t, tb.A, batchID) {
		byID[it.ID] = it
	}
	im2 := tb.completeItem(t, byID[v2.ID])
	im3 := tb.completeItem(t, byID[v3.ID])
	var bulk regenOut
	tb.must(t, http.StatusAccepted, "POST", "/api/v1/images/regenerate", tok, map[string]any{
		"image_ids": []int64{im2.ID, ims[1].ID, im2.ID}, "overrides": map[string]any{"quality": ""},
	}, &bulk)
	if len(bulk.Data) != 2 {
		t.Fatalf("bulk regenerate gave %+v, want 2 (duplicates collapse)", bulk)
	}
	var v4 itemOut
	for _, d := range bulk.Data {
		if d.ImageID == im2.ID {
			v4 = d.Item
		}
	}
	if v4.Name != "1-1-v4.webp" || *v4.ParentImageID != im2.ID {
		t.Errorf("regeneration of a regeneration = %+v", v4)
	}
	im4 := tb.completeItem(t, tb.itemByID(t, batchID, v4.ID))

	versions := func(id int64) string {
		var out struct{ Data []imageOut }
		tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d/versions", id), tok, nil, &out)
		s := ""
		for _, v := range out.Data {
			s += fmt.Sprintf("%d:%s ", v.ID, v.Relation)
		}
		return s
	}
	tests := []struct {
		of   int64
		want string
	}{
		{orig.ID, fmt.Sprintf("%d:self %d:descendant %d:descendant %d:descendant ", orig.ID, im2.ID, im3.ID, im4.ID)},
		{im2.ID, fmt.Sprintf("%d:ancestor %d:self %d:descendant ", orig.ID, im2.ID, im4.ID)},
		{im4.ID, fmt.Sprintf("%d:ancestor %d:ancestor %d:self ", orig.ID, im2.ID, im4.ID)},
		{im3.ID, fmt.Sprintf("%d:ancestor %d:self ", orig.ID, im3.ID)},
		{ims[1].ID, fmt.Sprintf("%d:self ", ims[1].ID)},
	}
	for _, tt := range tests {
		if got := versions(tt.of); got != tt.want {
			t.Errorf("versions of %d = %q, want %q", tt.of, got, tt.want)
		}
	}
	var meta imageOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d", im4.ID), tok, nil, &meta)
	if meta.ParentID == nil || *meta.ParentID != im2.ID {
		t.Errorf("parent_id of the third version = %v, want %d", meta.ParentID, im2.ID)
	}
}

func TestImageRegenerateRefusals(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	tok := tb.A.Token
	batchID, ims := tb.finishedBatch(t, "x")
	before := len(tb.items(t, tb.A, batchID))
	tests := []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"unknown model", fmt.Sprintf("/api/v1/images/%d/regenerate", ims[0].ID),
			map[string]any{"overrides": map[string]any{"model": "no-such-model"}}, http.StatusUnprocessableEntity, "invalid_overrides"},
		{"bad size", fmt.Sprintf("/api/v1/images/%d/regenerate", ims[0].ID),
			map[string]any{"overrides": map[string]any{"size": "big"}}, http.StatusUnprocessableEntity, "invalid_overrides"},
		{"negative seed", fmt.Sprintf("/api/v1/images/%d/regenerate", ims[0].ID),
			map[string]any{"overrides": map[string]any{"seed": -1}}, http.StatusUnprocessableEntity, "invalid_field"},
		{"unknown override", fmt.Sprintf("/api/v1/images/%d/regenerate", ims[0].ID),
			map[string]any{"overrides": map[string]any{"steps": 3}}, http.StatusBadRequest, "unknown_field"},
		{"missing image", "/api/v1/images/999999/regenerate", nil, http.StatusNotFound, "not_found"},
		{"one missing image sinks the selection", "/api/v1/images/regenerate",
			map[string]any{"image_ids": []int64{ims[0].ID, 999999}}, http.StatusNotFound, "not_found"},
		{"empty selection", "/api/v1/images/regenerate", map[string]any{"image_ids": []int64{}}, http.StatusUnprocessableEntity, "invalid_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tb.do(t, "POST", tt.path, tok, tt.body)
			if r.Status != tt.status || r.ErrorCode() != tt.code {
				t.Errorf("%d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
		})
	}
	if after := len(tb.items(t, tb.A, batchID)); after != before {
		t.Errorf("refused regenerations left %d new items", after-before)
	}

	// In a paused batch the new item waits for resume, with no job.
	id := tb.createBatch(t, tb.A, "p", "q")
	im := tb.completeItem(t, tb.items(t, tb.A, id)[0])
	tb.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/batches/%d/pause", id), tok, nil, nil)
	var out regenOut
	tb.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/api/v1/images/%d/regenerate", im.ID), tok, nil, &out)
	if jobs := tb.itemJobStates(t, []int64{out.Data[0].Item.ID}); len(jobs) != 0 {
		t.Errorf("a paused batch's regeneration was queued: %v", jobs)
	}
	var b batchOut
	tb.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/batches/%d/resume", id), tok, nil, &b)
	if jobs := tb.itemJobStates(t, []int64{out.Data[0].Item.ID}); jobs["available"] != 1 {
		t.Errorf("resume did not queue the regeneration: %v", jobs)
	}
}

// itemByID reads one item of the batch.
func (b *testBundle) itemByID(t *testing.T, batchID, id int64) store.Item {
	t.Helper()
	for _, it := range b.items(t, b.A, batchID) {
		if it.ID == id {
			return it
		}
	}
	t.Fatalf("item %d not in batch %d", id, batchID)
	return store.Item{}
}
