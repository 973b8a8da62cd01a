package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/store"
)

// batchOut is the part of a batch answer the tests read.
type batchOut struct {
	ID           int64            `json:"id"`
	ProjectID    *int64           `json:"project_id"`
	Name         string           `json:"name"`
	Status       string           `json:"status"`
	SourceFile   string           `json:"source_file"`
	Total        int64            `json:"total"`
	Counts       map[string]int64 `json:"counts"`
	CostEstimate int64            `json:"cost_estimate"`
	CostSpent    int64            `json:"cost_spent"`
	ETASeconds   *int64           `json:"eta_seconds"`
	StartedAt    *time.Time       `json:"started_at"`
	Problems     []batch.Problem  `json:"problems"`
	ProblemCount int              `json:"problem_count"`
}

type itemOut struct {
	ID            int64             `json:"id"`
	Status        string            `json:"status"`
	Name          string            `json:"name"`
	Prompt        string            `json:"prompt"`
	Model         string            `json:"model"`
	Width         int64             `json:"width"`
	Height        int64             `json:"height"`
	Seed          *int64            `json:"seed"`
	Format        string            `json:"format"`
	SourceLine    int64             `json:"source_line"`
	Vars          map[string]string `json:"vars"`
	Options       map[string]string `json:"options"`
	ParentImageID *int64            `json:"parent_image_id"`
}

type pageOut[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func TestBatchCreateFromJSON(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	tests := []struct {
		name      string
		body      map[string]any
		wantItems int
		wantNames []string
		wantProbs int
		check     func(t *testing.T, items []store.Item)
	}{
		{
			name:      "prompts",
			body:      map[string]any{"prompts": []string{"a red fox", "a blue whale"}, "defaults": map[string]any{"model": "preview", "size": "64x64", "n": 2}},
			wantItems: 4,
			wantNames: []string{"1-1.png", "1-2.png", "2-1.png", "2-2.png"},
			check: func(t *testing.T, items []store.Item) {
				if items[0].Prompt != "a red fox" || items[0].Width != 64 || items[0].Height != 64 || items[0].Provider != "preview" {
					t.Errorf("first item = %+v", items[0])
				}
			},
		},
		{
			name: "rows with variables, options and a template",
			body: map[string]any{
				"rows": []map[string]any{
					{"animal": "cat", "Negative Prompt": "blurry", "seed": 7, "opt.steps": 20},
					{"animal": "dog", "Size": "32x48", "format": "jpeg"},
				},
				"template":      "a photo of a {animal}",
				"name_template": "{animal}-{n}",
				"defaults":      map[string]any{"model": "preview", "size": "64x64"},
			},
			wantItems: 2,
			wantNames: []string{"cat-1.png", "dog-1.jpg"},
			check: func(t *testing.T, items []store.Item) {
				cat, dog := items[0], items[1]
				if cat.Prompt != "a photo of a cat" || cat.NegativePrompt != "blurry" || cat.Seed != 7 ||
					jsonMap(t, cat.Options)["steps"] != "20" || jsonMap(t, cat.Vars)["animal"] != "cat" {
					t.Errorf("cat item = %+v options %s vars %s", cat, cat.Options, cat.Vars)
				}
				if dog.Width != 32 || dog.Height != 48 || dog.Format != "jpeg" {
					t.Errorf("dog item = %+v", dog)
				}
			},
		},
		{
			name:      "txt text",
			body:      map[string]any{"text": "a castle\n\n# a comment\na lighthouse --seed 3\n", "defaults": map[string]any{"model": "preview"}},
			wantItems: 2,
			check: func(t *testing.T, items []store.Item) {
				if items[1].Prompt != "a lighthouse" || items[1].Seed != 3 || items[1].SourceLine != 4 {
					t.Errorf("second item = %+v", items[1])
				}
			},
		},
		{
			name: "some invalid rows are skipped and reported",
			body: map[string]any{"rows": []map[string]any{
				{"prompt": "ok one"}, {"prompt": "bad size", "size": "huge"}, {"prompt": ""}, {"prompt": "ok two", "n": "x"},
				{"prompt": "nested", "animal": map[string]string{"x": "y"}},
			}, "defaults": map[string]any{"model": "preview"}},
			wantItems: 1,
			wantProbs: 4,
		},
		{
			name:      "combinatorial template",
			body:      map[string]any{"prompts": []string{"a {red|green|blue} {cube|ball}"}, "combinatorial": true, "defaults": map[string]any{"model": "preview"}},
			wantItems: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out batchOut
			tb.must(t, http.StatusCreated, "POST", "/api/v1/batches", tb.A.Token, tt.body, &out)
			if out.ID == 0 || out.Status != "queued" || out.Total != int64(tt.wantItems) || out.Counts["pending"] != int64(tt.wantItems) {
				t.Fatalf("batch = %+v, want %d pending items", out, tt.wantItems)
			}
			if len(out.Problems) != tt.wantProbs || out.ProblemCount != tt.wantProbs {
				t.Errorf("problems = %+v, want %d", out.Problems, tt.wantProbs)
			}
			for _, p := range out.Problems {
				if p.Line == 0 || p.Message == "" {
					t.Errorf("problem %+v lacks a line or message", p)
				}
			}
			items := tb.items(t, tb.A, out.ID)
			if len(items) != tt.wantItems {
				t.Fatalf("%d items stored, want %d", len(items), tt.wantItems)
			}
			if jobs := tb.jobStates(t, out.ID); jobs["available"] != tt.wantItems {
				t.Errorf("jobs = %v, want %d available", jobs, tt.wantItems)
			}
			if tt.wantNames != nil {
				var list pageOut[itemOut]
				tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d/items", out.ID), tb.A.Token, nil, &list)
				for i, want := range tt.wantNames {
					if list.Data[i].Name != want {
						t.Errorf("item %d name %q, want %q", i, list.Data[i].Name, want)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, items)
			}
		})
	}
}

func TestBatchCreateProblemsDetail(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	var out batchOut
	tb.must(t, http.StatusCreated, "POST", "/api/v1/batches", tb.A.Token, map[string]any{
		"rows":     []map[string]any{{"prompt": "fine"}, {"prompt": "bad", "size": "huge"}},
		"defaults": map[string]any{"model": "preview"},
	}, &out)
	if len(out.Problems) != 1 || out.Problems[0].Line != 2 || out.Problems[0].Field != "size" {
		t.Errorf("problems = %+v, want one on line 2, field size", out.Problems)
	}
}

func TestBatchDryRun(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	var plan struct {
		DryRun        bool                        `json:"dry_run"`
		Rows          int                         `json:"rows"`
		InvalidRows   int                         `json:"invalid_rows"`
		Images        int                         `json:"images"`
		EstimatedCost int64                       `json:"estimated_cost"`
		PerModel      map[string]map[string]int64 `json:"per_model"`
		FirstItems    []struct {
			Name  string `json:"name"`
			Model string `json:"model"`
			Price int64  `json:"price"`
		} `json:"first_items"`
		Problems []batch.Problem `json:"problems"`
	}
	tb.must(t, http.StatusOK, "POST", "/api/v1/batches", tb.A.Token, map[string]any{
		"rows": []map[string]any{
			{"prompt": "a", "model": "gpt-image-1", "quality": "low", "size": "1024x1024"},
			{"prompt": "b", "n": 3},
			{"prompt": "c", "model": "no-such-model"},
		},
		"defaults": map[string]any{"model": "preview"},
		"dry_run":  true,
	}, &plan)
	if !plan.DryRun || plan.Rows != 3 || plan.InvalidRows != 1 || plan.Images != 4 || len(plan.Problems) != 1 {
		t.Fatalf("plan = %+v", plan)
	}
	if plan.PerModel["preview"]["images"] != 3 || plan.PerModel["openai/gpt-image-1"]["images"] != 1 {
		t.Errorf("per model = %v", plan.PerModel)
	}
	if plan.EstimatedCost <= 0 || plan.EstimatedCost != plan.PerModel["openai/gpt-image-1"]["cost"] {
		t.Errorf("estimated cost %d, per model %v: want the priced model's cost", plan.EstimatedCost, plan.PerModel)
	}
	if len(plan.FirstItems) != 4 || plan.FirstItems[0].Model != "openai/gpt-image-1" || plan.FirstItems[0].Price != plan.EstimatedCost {
		t.Errorf("first items = %+v", plan.FirstItems)
	}
	// Nothing was stored.
	var list pageOut[batchOut]
	tb.must(t, http.StatusOK, "GET", "/api/v1/batches", tb.A.Token, nil, &list)
	if len(list.Data) != 0 {
		t.Errorf("a dry run stored %d batches", len(list.Data))
	}
	var jobs int
	if err := tb.DB.Reader().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM river_job`).Scan(&jobs); err != nil || jobs != 0 {
		t.Errorf("a dry run queued %d jobs (err %v)", jobs, err)
	}
}

// multipartBody builds a form with a file part and fields.
func multipartBody(t *testing.T, fileName, content string, fields map[string]string) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", fileName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func TestBatchUpload(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	var proj struct{ ID int64 }
	tb.must(t, http.StatusCreated, "POST", "/api/v1/projects", tb.A.Token, map[string]string{"name": "uploads"}, &proj)
	tests := []struct {
		name, file, content string
		fields              map[string]string
		wantItems           int
		wantProbs           int
		check               func(t *testing.T, items []store.Item)
	}{
		{
			name: "csv with defaults part and plain fields", file: "prompts.csv",
			content: "prompt,animal,size\n\"a {animal}\",cat,32x32\n\"a {animal}\",dog,\n,bad,\n",
			fields: map[string]string{"defaults": `{"model":"preview","size":"64x64"}`, "format": "webp",
				"project_id": fmt.Sprint(proj.ID), "name_template": "{animal}", "opt.steps": "4"},
			wantItems: 2, wantProbs: 1,
			check: func(t *testing.T, items []store.Item) {
				if items[0].Prompt != "a cat" || items[0].Width != 32 || items[1].Width != 64 || items[1].Format != "webp" ||
					items[0].Name != "cat" || jsonMap(t, items[0].Options)["steps"] != "4" {
					t.Errorf("items = %+v", items)
				}
			},
		},
		{
			name: "txt", file: "prompts.txt", content: "one\ntwo\nthree\n",
			fields: map[string]string{"model": "preview", "n": "2"}, wantItems: 6,
		},
		{
			name: "jsonl", file: "prompts.jsonl", content: `{"prompt":"x","seed":5}` + "\n" + `{"prompt":"y"}` + "\n",
			fields: map[string]string{"model": "preview"}, wantItems: 2,
			check: func(t *testing.T, items []store.Item) {
				if items[0].Seed != 5 {
					t.Errorf("seed = %d, want 5", items[0].Seed)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := multipartBody(t, tt.file, tt.content, tt.fields)
			r := tb.do(t, "POST", "/api/v1/batches", tb.A.Token, body, "Content-Type", ct)
			if r.Status != http.StatusCreated {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			var out batchOut
			r.JSON(t, &out)
			if out.Total != int64(tt.wantItems) || out.ProblemCount != tt.wantProbs || out.SourceFile != tt.file {
				t.Fatalf("batch = %+v, want %d items, %d problems, source %s", out, tt.wantItems, tt.wantProbs, tt.file)
			}
			if tt.check != nil {
				tt.check(t, tb.items(t, tb.A, out.ID))
			}
		})
	}
	// The upload's temporary file is gone once the request is over.
	if left := filesIn(t, tb.Server.ext.UploadDir); len(left) != 0 {
		t.Errorf("upload files left behind: %v", left)
	}
}

func TestBatchGetAndList(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	tb := newTestBundle(t, func(d *Deps) { d.Now = func() time.Time { return clock } })
	var proj struct{ ID int64 }
	tb.must(t, http.StatusCreated, "POST", "/api/v1/projects", tb.A.Token, map[string]string{"name": "p"}, &proj)

	var ids []int64
	for i := range 5 {
		body := map[string]any{"prompts": []string{"x", "y", "z", "w"}, "defaults": map[string]any{"model": "preview"}}
		if i%2 == 0 {
			body["project_id"] = proj.ID
		}
		var out batchOut
		tb.must(t, http.StatusCreated, "POST", "/api/v1/batches", tb.A.Token, body, &out)
		ids = append(ids, out.ID)
	}

	// Progress: two of four done, the batch started 10 s ago (by the
	// server's clock) → 10 s left.
	ctx := t.Context()
	first := ids[0]
	if err := tb.DB.SetBatchStatus(ctx, tb.DB.Writer(), first, store.BatchRunning); err != nil {
		t.Fatal(err)
	}
	b, err := tb.DB.GetBatch(ctx, tb.DB.Reader(), tb.A.WorkspaceID, first)
	if err != nil {
		t.Fatal(err)
	}
	clock = b.StartedAt.Add(10 * time.Second)
	items := tb.items(t, tb.A, first)
	tb.completeItem(t, items[0])
	tb.failItem(t, items[1])
	var got batchOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d", first), tb.A.Token, nil, &got)
	if got.Status != "running" || got.Counts["succeeded"] != 1 || got.Counts["failed"] != 1 || got.Counts["pending"] != 2 || got.Total != 4 {
		t.Errorf("batch = %+v", got)
	}
	if got.ETASeconds == nil || *got.ETASeconds != 10 {
		t.Errorf("eta = %v, want 10 s", got.ETASeconds)
	}
	if got.ProjectID == nil || *got.ProjectID != proj.ID {
		t.Errorf("project_id = %v, want %d", got.ProjectID, proj.ID)
	}

	// Cursor pagination walks every batch once, newest first.
	var seen []int64
	cursor := ""
	for range 10 {
		var pg pageOut[batchOut]
		tb.must(t, http.StatusOK, "GET", "/api/v1/batches?limit=2"+cursor, tb.A.Token, nil, &pg)
		for _, b := range pg.Data {
			seen = append(seen, b.ID)
		}
		if pg.NextCursor == nil {
			break
		}
		cursor = "&after=" + *pg.NextCursor
	}
	if fmt.Sprint(seen) != fmt.Sprint([]int64{ids[4], ids[3], ids[2], ids[1], ids[0]}) {
		t.Errorf("pages gave %v, want %v newest first", seen, ids)
	}

	filters := []struct {
		query string
		want  []int64
	}{
		{"project_id=" + fmt.Sprint(proj.ID), []int64{ids[4], ids[2], ids[0]}},
		{"status=running", []int64{ids[0]}},
		{"status=queued&project_id=" + fmt.Sprint(proj.ID), []int64{ids[4], ids[2]}},
		{"created_after=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)), ids5(ids)},
		{"created_before=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)), nil},
		{"created_after=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), nil},
	}
	for _, f := range filters {
		var pg pageOut[batchOut]
		tb.must(t, http.StatusOK, "GET", "/api/v1/batches?"+f.query, tb.A.Token, nil, &pg)
		var gotIDs []int64
		for _, b := range pg.Data {
			gotIDs = append(gotIDs, b.ID)
		}
		if fmt.Sprint(gotIDs) != fmt.Sprint(f.want) {
			t.Errorf("?%s gave %v, want %v", f.query, gotIDs, f.want)
		}
	}

	// Items of a batch, filtered by status.
	var pending pageOut[itemOut]
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d/items?status=pending", first), tb.A.Token, nil, &pending)
	if len(pending.Data) != 2 || pending.Data[0].Status != "pending" {
		t.Errorf("pending items = %+v", pending.Data)
	}
	var firstPage pageOut[itemOut]
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d/items?limit=3", first), tb.A.Token, nil, &firstPage)
	if len(firstPage.Data) != 3 || firstPage.NextCursor == nil {
		t.Fatalf("first page = %+v", firstPage)
	}
	var rest pageOut[itemOut]
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d/items?limit=3&after=%s", first, *firstPage.NextCursor), tb.A.Token, nil, &rest)
	if len(rest.Data) != 1 || rest.NextCursor != nil || rest.Data[0].ID != items[3].ID {
		t.Errorf("second page = %+v", rest)
	}
}

func ids5(ids []int64) []int64 { return []int64{ids[4], ids[3], ids[2], ids[1], ids[0]} }

func TestBatchLifecycle(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	path := func(id int64, action string) string { return fmt.Sprintf("/api/v1/batches/%d/%s", id, action) }
	itemStatuses := func(id int64) map[store.ItemStatus]int {
		out := map[store.ItemStatus]int{}
		for _, it := range tb.items(t, tb.A, id) {
			out[it.Status]++
		}
		return out
	}

	t.Run("pause and resume", func(t *testing.T) {
		id := tb.createBatch(t, tb.A, "a", "b", "c")
		var out batchOut
		tb.must(t, http.StatusOK, "POST", path(id, "pause"), tb.A.Token, nil, &out)
		if out.Status != "paused" {
			t.Errorf("status %q after pause", out.Status)
		}
		if jobs := tb.jobStates(t, id); len(jobs) != 0 {
			t.Errorf("jobs after pause = %v, want the 3 queued jobs deleted", jobs)
		}
		if st := itemStatuses(id); st[store.ItemPending] != 3 {
			t.Errorf("items after pause = %v, want 3 pending", st)
		}
		if r := tb.do(t, "POST", path(id, "pause"), tb.A.Token, nil); r.Status != http.StatusConflict || r.ErrorCode() != "invalid_state" {
			t.Errorf("pausing a paused batch: %d %s", r.Status, r.Body)
		}
		tb.must(t, http.StatusOK, "POST", path(id, "resume"), tb.A.Token, nil, &out)
		if out.Status != "queued" {
			t.Errorf("status %q after resume", out.Status)
		}
		if jobs := tb.jobStates(t, id); jobs["available"] != 3 {
			t.Errorf("jobs after resume = %v, want 3 available", jobs)
		}
		if r := tb.do(t, "POST", path(id, "resume"), tb.A.Token, nil); r.Status != http.StatusConflict {
			t.Errorf("resuming a queued batch: %d %s", r.Status, r.Body)
		}
		// A second pause and resume queues each item once more, not twice.
		tb.must(t, http.StatusOK, "POST", path(id, "pause"), tb.A.Token, nil, nil)
		tb.must(t, http.StatusOK, "POST", path(id, "resume"), tb.A.Token, nil, nil)
		if jobs := tb.jobStates(t, id); jobs["available"] != 3 {
			t.Errorf("jobs after a second resume = %v, want 3 available", jobs)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		id := tb.createBatch(t, tb.A, "a", "b", "c")
		items := tb.items(t, tb.A, id)
		tb.completeItem(t, items[0])
		var out batchOut
		tb.must(t, http.StatusOK, "POST", path(id, "cancel"), tb.A.Token, nil, &out)
		if out.Status != "canceled" || out.Counts["canceled"] != 2 || out.Counts["succeeded"] != 1 {
			t.Errorf("batch after cancel = %+v", out)
		}
		// The pending items' jobs are gone; the finished item's stays
		// (nothing works the jobs here, so it is still available).
		if jobs := tb.jobStates(t, id); jobs["available"] != 1 || len(jobs) != 1 {
			t.Errorf("jobs after cancel = %v, want only the finished item's", jobs)
		}
		for _, action := range []string{"cancel", "pause", "resume"} {
			if r := tb.do(t, "POST", path(id, action), tb.A.Token, nil); r.Status != http.StatusConflict {
				t.Errorf("%s of a canceled batch: %d %s", action, r.Status, r.Body)
			}
		}
	})

	t.Run("retry failed", func(t *testing.T) {
		id := tb.createBatch(t, tb.A, "a", "b", "c")
		if r := tb.do(t, "POST", path(id, "retry"), tb.A.Token, nil); r.Status != http.StatusConflict || r.ErrorCode() != "nothing_to_retry" {
			t.Errorf("retry without failures: %d %s", r.Status, r.Body)
		}
		items := tb.items(t, tb.A, id)
		tb.completeItem(t, items[0])
		tb.failItem(t, items[1])
		tb.failItem(t, items[2])
		if err := tb.DB.SetBatchStatus(t.Context(), tb.DB.Writer(), id, store.BatchPartial); err != nil {
			t.Fatal(err)
		}
		var out batchOut
		tb.must(t, http.StatusOK, "POST", path(id, "retry"), tb.A.Token, nil, &out)
		if out.Status != "queued" || out.Counts["pending"] != 2 || out.Counts["failed"] != 0 {
			t.Errorf("batch after retry = %+v", out)
		}
		if jobs := tb.jobStates(t, id); jobs["available"] != 5 {
			// 3 original jobs (still available: nothing works them here)
			// plus 2 new ones.
			t.Errorf("jobs after retry = %v, want 2 more", jobs)
		}
		for _, it := range tb.items(t, tb.A, id)[1:] {
			if it.Status != store.ItemPending || it.Error != "" {
				t.Errorf("retried item = %+v", it)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		id := tb.createBatch(t, tb.A, "a", "b")
		other := tb.createBatch(t, tb.A, "c")
		items := tb.items(t, tb.A, id)
		im := tb.completeItem(t, items[0])
		// The other batch's image has different bytes; a third image
		// shares the first one's file.
		otherIm := tb.completeItem(t, tb.items(t, tb.A, other)[0])
		shared := tb.shareBlob(t, other, im)
		var itemIDs []int64
		for _, it := range items {
			itemIDs = append(itemIDs, it.ID)
		}
		tb.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("/api/v1/batches/%d", id), tb.A.Token, nil, nil)
		if r := tb.do(t, "GET", fmt.Sprintf("/api/v1/batches/%d", id), tb.A.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("GET after delete: %d", r.Status)
		}
		if r := tb.do(t, "GET", fmt.Sprintf("/api/v1/images/%d", im.ID), tb.A.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("image after delete: %d", r.Status)
		}
		if n := len(tb.items(t, tb.A, id)); n != 0 {
			t.Errorf("%d items left", n)
		}
		if jobs := tb.itemJobStates(t, itemIDs); len(jobs) != 0 {
			// Nothing works the jobs here, so both were still queued.
			t.Errorf("jobs of the deleted items = %v, want both deleted", jobs)
		}
		// The shared file stays (another image uses it); the other batch
		// is untouched.
		if !tb.blobExists(t, shared.BlobKey) || !tb.blobExists(t, otherIm.BlobKey) {
			t.Errorf("a file still in use was deleted")
		}
		tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d/file", shared.ID), tb.A.Token, nil, nil)
		// Deleting the other batch removes the last users of both files;
		// the blob sweeper, not the delete, removes the files.
		tb.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("/api/v1/batches/%d", other), tb.A.Token, nil, nil)
		if !tb.blobExists(t, shared.BlobKey) {
			t.Errorf("the delete removed a file itself; only the sweeper may")
		}
		tb.sweep(t)
		if tb.blobExists(t, shared.BlobKey) || tb.blobExists(t, otherIm.BlobKey) {
			t.Errorf("files of deleted images are still stored after the sweep")
		}
	})
}

// jsonMap decodes a stored JSON object of strings.
func jsonMap(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

// TestBatchWithWorker runs the whole path with the real River worker on
// the preview engine: submit, generate, inspect, download, regenerate.
func TestBatchWithWorker(t *testing.T) {
	t.Parallel()
	tb := newWorkerBundle(t, 0)
	tok := tb.A.Token
	final := func(b batchOut) bool { return store.BatchStatus(b.Status).Final() }

	id := tb.createBatch(t, tb.A, "a red fox", "a blue whale", "a green frog")
	b := tb.waitBatch(t, tb.A, id, final)
	if b.Status != "succeeded" || b.Counts["succeeded"] != 3 || b.Total != 3 || b.StartedAt == nil {
		t.Fatalf("batch = %+v", b)
	}
	var ims pageOut[imageOut]
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images?batch_id=%d", id), tok, nil, &ims)
	if len(ims.Data) != 3 {
		t.Fatalf("images = %+v", ims)
	}
	file := tb.must(t, http.StatusOK, "GET", ims.Data[0].FileURL, tok, nil, nil)
	sum := sha256.Sum256(file.Body)
	if file.Header.Get("Content-Type") != "image/png" || hex.EncodeToString(sum[:]) != ims.Data[0].SHA256 ||
		file.Header.Get("ETag") != `"`+ims.Data[0].SHA256+`"` {
		t.Errorf("file: %s, %d bytes, etag %s; image %+v", file.Header.Get("Content-Type"), len(file.Body), file.Header.Get("ETag"), ims.Data[0])
	}

	// A regeneration runs through the worker and lands as a version.
	var regen regenOut
	tb.must(t, http.StatusAccepted, "POST", fmt.Sprintf("/api/v1/images/%d/regenerate", ims.Data[0].ID), tok,
		map[string]any{"overrides": map[string]any{"prompt": "a red fox at dawn"}}, &regen)
	b = tb.waitBatch(t, tb.A, id, final)
	if b.Status != "succeeded" || b.Counts["succeeded"] != 4 || b.Total != 4 {
		t.Errorf("batch after regeneration = %+v", b)
	}
	var versions struct{ Data []imageOut }
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d/versions", ims.Data[0].ID), tok, nil, &versions)
	if len(versions.Data) != 2 || versions.Data[1].ParentID == nil || *versions.Data[1].ParentID != ims.Data[0].ID ||
		versions.Data[1].Relation != "descendant" || versions.Data[1].SHA256 == ims.Data[0].SHA256 {
		t.Errorf("versions = %+v", versions.Data)
	}

}

// TestBatchPauseCancelWithWorker pauses, resumes and cancels batches that
// the real worker is working on.
func TestBatchPauseCancelWithWorker(t *testing.T) {
	t.Parallel()
	final := func(b batchOut) bool { return store.BatchStatus(b.Status).Final() }
	running := func(b batchOut) bool { return b.Counts["running"] > 0 }
	idle := func(b batchOut) bool { return b.Counts["running"] == 0 }
	// 12 images of 300 ms on 4 workers take three rounds: the pause and
	// the cancel below land while the first round runs.
	slow := newWorkerBundle(t, 300*time.Millisecond)
	prompts := make([]string, 12)
	for i := range prompts {
		prompts[i] = fmt.Sprintf("prompt %d", i)
	}

	// Pause mid-run: running images finish, the rest wait; resume: the
	// batch ends with every image made exactly once.
	pid := slow.createBatch(t, slow.A, prompts...)
	slow.waitBatch(t, slow.A, pid, running)
	slow.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/batches/%d/pause", pid), slow.A.Token, nil, nil)
	paused := slow.waitBatch(t, slow.A, pid, idle)
	if paused.Status != "paused" || paused.Counts["pending"] == 0 || paused.Counts["failed"] != 0 {
		t.Errorf("batch after pause = %+v", paused)
	}
	slow.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/batches/%d/resume", pid), slow.A.Token, nil, nil)
	done := slow.waitBatch(t, slow.A, pid, final)
	if done.Status != "succeeded" || done.Counts["succeeded"] != 12 {
		t.Errorf("batch after resume = %+v", done)
	}
	var all pageOut[imageOut]
	slow.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images?batch_id=%d", pid), slow.A.Token, nil, &all)
	perItem := map[int64]int{}
	for _, im := range all.Data {
		perItem[im.ItemID]++
	}
	if len(all.Data) != 12 || len(perItem) != 12 {
		t.Errorf("%d images for %d items, want one each of 12", len(all.Data), len(perItem))
	}

	// Cancel mid-run: the batch ends canceled, the running images
	// finish, nothing stays pending.
	cid := slow.createBatch(t, slow.A, prompts...)
	slow.waitBatch(t, slow.A, cid, running)
	slow.must(t, http.StatusOK, "POST", fmt.Sprintf("/api/v1/batches/%d/cancel", cid), slow.A.Token, nil, nil)
	c := slow.waitBatch(t, slow.A, cid, func(b batchOut) bool { return b.Counts["running"] == 0 && b.Counts["pending"] == 0 })
	if c.Status != "canceled" || c.Counts["canceled"] == 0 || c.Counts["canceled"]+c.Counts["succeeded"] != 12 {
		t.Errorf("batch after cancel = %+v", c)
	}
}
