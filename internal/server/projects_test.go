package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

type projectOut struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

func TestProjects(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	tok := tb.A.Token

	var a, b projectOut
	tb.must(t, http.StatusCreated, "POST", "/api/v1/projects", tok, map[string]string{"name": "  Cats  "}, &a)
	if a.ID == 0 || a.Name != "Cats" {
		t.Errorf("created %+v, want a trimmed name", a)
	}
	tb.must(t, http.StatusCreated, "POST", "/api/v1/projects", tok, map[string]string{"name": "Dogs"}, &b)

	tests := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"duplicate name", "POST", "/api/v1/projects", map[string]string{"name": "Cats"}, http.StatusConflict, "conflict"},
		{"empty name", "POST", "/api/v1/projects", map[string]string{"name": "  "}, http.StatusUnprocessableEntity, "invalid_field"},
		{"name too long", "POST", "/api/v1/projects", map[string]string{"name": strings.Repeat("x", 201)}, http.StatusUnprocessableEntity, "invalid_field"},
		{"control characters", "POST", "/api/v1/projects", map[string]string{"name": "a\nb"}, http.StatusUnprocessableEntity, "invalid_field"},
		{"rename onto a taken name", "PATCH", fmt.Sprintf("/api/v1/projects/%d", b.ID), map[string]string{"name": "Cats"}, http.StatusConflict, "conflict"},
		{"rename a missing project", "PATCH", "/api/v1/projects/999999", map[string]string{"name": "x"}, http.StatusNotFound, "not_found"},
		{"non-numeric id", "GET", "/api/v1/projects/abc", nil, http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tb.do(t, tt.method, tt.path, tok, tt.body)
			if r.Status != tt.status || r.ErrorCode() != tt.code {
				t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, r.Status, r.Body, tt.status, tt.code)
			}
		})
	}

	var renamed projectOut
	tb.must(t, http.StatusOK, "PATCH", fmt.Sprintf("/api/v1/projects/%d", b.ID), tok, map[string]string{"name": "Wolves"}, &renamed)
	if renamed.Name != "Wolves" || renamed.ID != b.ID {
		t.Errorf("renamed = %+v", renamed)
	}
	var got projectOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/projects/%d", b.ID), tok, nil, &got)
	if got != renamed {
		t.Errorf("GET = %+v, want %+v", got, renamed)
	}

	var page1, page2 pageOut[projectOut]
	tb.must(t, http.StatusOK, "GET", "/api/v1/projects?limit=1", tok, nil, &page1)
	if len(page1.Data) != 1 || page1.Data[0].ID != a.ID || page1.NextCursor == nil {
		t.Fatalf("first page = %+v", page1)
	}
	tb.must(t, http.StatusOK, "GET", "/api/v1/projects?limit=1&after="+*page1.NextCursor, tok, nil, &page2)
	if len(page2.Data) != 1 || page2.Data[0].ID != b.ID || page2.NextCursor != nil {
		t.Errorf("second page = %+v", page2)
	}
}

func TestProjectDeleteTakesEverything(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	tok := tb.A.Token
	var p projectOut
	tb.must(t, http.StatusCreated, "POST", "/api/v1/projects", tok, map[string]string{"name": "doomed"}, &p)

	var inProject []int64
	for range 2 {
		var out batchOut
		tb.must(t, http.StatusCreated, "POST", "/api/v1/batches", tok, map[string]any{
			"project_id": p.ID, "prompts": []string{"a", "b"}, "defaults": map[string]any{"model": "preview"},
		}, &out)
		inProject = append(inProject, out.ID)
	}
	outside := tb.createBatch(t, tb.A, "kept")
	var keys []string
	for _, id := range inProject {
		im := tb.completeItem(t, tb.items(t, tb.A, id)[0])
		keys = append(keys, im.BlobKey)
	}
	keptImage := tb.completeItem(t, tb.items(t, tb.A, outside)[0])

	tb.must(t, http.StatusNoContent, "DELETE", fmt.Sprintf("/api/v1/projects/%d", p.ID), tok, nil, nil)

	if r := tb.do(t, "GET", fmt.Sprintf("/api/v1/projects/%d", p.ID), tok, nil); r.Status != http.StatusNotFound {
		t.Errorf("project after delete: %d", r.Status)
	}
	for _, id := range inProject {
		if r := tb.do(t, "GET", fmt.Sprintf("/api/v1/batches/%d", id), tok, nil); r.Status != http.StatusNotFound {
			t.Errorf("batch %d after project delete: %d", id, r.Status)
		}
		if n := len(tb.items(t, tb.A, id)); n != 0 {
			t.Errorf("batch %d has %d items left", id, n)
		}
	}
	tb.sweep(t)
	for _, k := range keys {
		if tb.blobExists(t, k) {
			t.Errorf("file %s of a deleted image is still stored after the sweep", k)
		}
	}
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d", outside), tok, nil, nil)
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d/file", keptImage.ID), tok, nil, nil)
	if r := tb.do(t, "DELETE", fmt.Sprintf("/api/v1/projects/%d", p.ID), tok, nil); r.Status != http.StatusNotFound {
		t.Errorf("second delete: %d, want 404", r.Status)
	}
}
