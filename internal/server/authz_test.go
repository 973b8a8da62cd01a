package server

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// resourcesOfB are workspace B's resources that the authorization test
// aims workspace A's token at.
type resourcesOfB struct {
	project, batch, image int64
}

// authzCase says how to call one route against workspace B's resources
// with workspace A's token, and what A must get.
type authzCase struct {
	path func(r resourcesOfB) string
	body any
	// cross is the status A gets. 404 for every route that names a
	// resource; list routes answer 200 with none of B's resources (see
	// listOf), and creating answers 201 in A's own workspace.
	cross int
	// listOf names the field B's ids would appear under in a 200 list.
	listOf func(r resourcesOfB) []int64
	// public routes need no token.
	public bool
}

// authzCases covers every route under /api/v1 that routes.go registers;
// TestAuthzCoversEveryRoute keeps the two in step.
var authzCases = map[string]authzCase{
	"POST /api/v1/projects": {path: fixed("/api/v1/projects"), body: map[string]string{"name": "B's project"}, cross: http.StatusCreated},
	"GET /api/v1/projects":  {path: fixed("/api/v1/projects"), cross: http.StatusOK, listOf: func(r resourcesOfB) []int64 { return []int64{r.project} }},
	"GET /api/v1/projects/{id}": {path: func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/projects/%d", r.project) },
		cross: http.StatusNotFound},
	"PATCH /api/v1/projects/{id}": {path: func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/projects/%d", r.project) },
		body: map[string]string{"name": "taken over"}, cross: http.StatusNotFound},
	"DELETE /api/v1/projects/{id}": {path: func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/projects/%d", r.project) },
		cross: http.StatusNotFound},

	"POST /api/v1/batches": {path: fixed("/api/v1/batches"), cross: http.StatusNotFound, body: func(r resourcesOfB) any {
		return map[string]any{"project_id": r.project, "prompts": []string{"x"}, "defaults": map[string]string{"model": "preview"}}
	}},
	"GET /api/v1/batches": {path: func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/batches?project_id=%d", r.project) },
		cross: http.StatusOK, listOf: func(r resourcesOfB) []int64 { return []int64{r.batch} }},
	"GET /api/v1/usage":                   {path: fixed("/api/v1/usage"), cross: http.StatusOK},
	"GET /api/v1/batches/{id}":            {path: batchPath(""), cross: http.StatusNotFound},
	"DELETE /api/v1/batches/{id}":         {path: batchPath(""), cross: http.StatusNotFound},
	"POST /api/v1/batches/{id}/cancel":    {path: batchPath("/cancel"), cross: http.StatusNotFound},
	"POST /api/v1/batches/{id}/pause":     {path: batchPath("/pause"), cross: http.StatusNotFound},
	"POST /api/v1/batches/{id}/resume":    {path: batchPath("/resume"), cross: http.StatusNotFound},
	"POST /api/v1/batches/{id}/retry":     {path: batchPath("/retry"), cross: http.StatusNotFound},
	"GET /api/v1/batches/{id}/items":      {path: batchPath("/items"), cross: http.StatusNotFound},
	"GET /api/v1/batches/{id}/export.zip": {path: batchPath("/export.zip"), cross: http.StatusNotFound},
	"GET /api/v1/batches/{id}/events":     {path: batchPath("/events"), cross: http.StatusNotFound},

	"GET /api/v1/images": {path: func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/images?batch_id=%d", r.batch) },
		cross: http.StatusOK, listOf: func(r resourcesOfB) []int64 { return []int64{r.image} }},
	"GET /api/v1/images/{id}":          {path: imagePath(""), cross: http.StatusNotFound},
	"GET /api/v1/images/{id}/file":     {path: imagePath("/file"), cross: http.StatusNotFound},
	"GET /api/v1/images/{id}/versions": {path: imagePath("/versions"), cross: http.StatusNotFound},
	"POST /api/v1/images/{id}/review": {path: imagePath("/review"), body: map[string]string{"review": "rejected"},
		cross: http.StatusNotFound},
	"POST /api/v1/images/{id}/regenerate": {path: imagePath("/regenerate"), cross: http.StatusNotFound},
	"POST /api/v1/images/regenerate": {path: fixed("/api/v1/images/regenerate"), cross: http.StatusNotFound,
		body: func(r resourcesOfB) any { return map[string]any{"image_ids": []int64{r.image}} }},

	"GET /api/v1/openapi.json": {path: fixed("/api/v1/openapi.json"), cross: http.StatusOK, public: true},
}

func fixed(p string) func(resourcesOfB) string { return func(resourcesOfB) string { return p } }

func batchPath(suffix string) func(resourcesOfB) string {
	return func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/batches/%d%s", r.batch, suffix) }
}

func imagePath(suffix string) func(resourcesOfB) string {
	return func(r resourcesOfB) string { return fmt.Sprintf("/api/v1/images/%d%s", r.image, suffix) }
}

// registeredAPIRoutes is every "METHOD /api/v1/…" pattern written in
// routes.go (see registeredRoutes), sorted.
func registeredAPIRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range registeredRoutes(t) {
		if strings.Contains(r, " /api/v1/") {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func TestAuthzCoversEveryRoute(t *testing.T) {
	t.Parallel()
	registered := registeredAPIRoutes(t)
	if len(registered) < len(authzCases)/2 {
		t.Fatalf("found only %d routes in routes.go: %v", len(registered), registered)
	}
	for _, p := range registered {
		if _, ok := authzCases[p]; !ok {
			t.Errorf("route %q is registered but authz_test.go does not cover it: add it to authzCases", p)
		}
	}
	// Every case is a real route: the server's mux sends its request to
	// exactly that pattern.
	s := New(Deps{})
	for p, c := range authzCases {
		if !slices.Contains(registered, p) {
			t.Errorf("authzCases has %q, which routes.go does not register", p)
		}
		method, _, _ := strings.Cut(p, " ")
		req := httptest.NewRequest(method, c.path(resourcesOfB{project: 1, batch: 2, image: 3}), nil)
		if _, got := s.mux.Handler(req); got != p {
			t.Errorf("%s %s is served by %q, want %q", method, req.URL.Path, got, p)
		}
	}
	// The table that builds the routes is all in routes.go's literals.
	for _, rt := range s.resourceRoutes() {
		if !slices.Contains(registered, rt.pattern) {
			t.Errorf("resourceRoutes has %q, which the routes.go scan missed", rt.pattern)
		}
	}
}

// TestAuthzWorkspaceIsolation aims workspace A's token at every route with
// workspace B's resources: A gets 404 (or a list without B's resources),
// B's resources are unchanged afterwards, and every route wants a token.
func TestAuthzWorkspaceIsolation(t *testing.T) {
	t.Parallel()
	tb := newTestBundle(t, nil)
	var proj projectOut
	tb.must(t, http.StatusCreated, "POST", "/api/v1/projects", tb.B.Token, map[string]string{"name": "B's project"}, &proj)
	var bb batchOut
	tb.must(t, http.StatusCreated, "POST", "/api/v1/batches", tb.B.Token, map[string]any{
		"project_id": proj.ID, "prompts": []string{"one", "two"}, "defaults": map[string]string{"model": "preview"},
	}, &bb)
	items := tb.items(t, tb.B, bb.ID)
	im := tb.completeItem(t, items[0])
	tb.failItem(t, items[1]) // so that retry would have work
	res := resourcesOfB{project: proj.ID, batch: bb.ID, image: im.ID}

	for _, pattern := range slices.Sorted(maps.Keys(authzCases)) {
		c := authzCases[pattern]
		method, _, _ := strings.Cut(pattern, " ")
		path := c.path(res)
		body := c.body
		if f, ok := body.(func(resourcesOfB) any); ok {
			body = f(res)
		}
		t.Run(pattern, func(t *testing.T) {
			r := tb.do(t, method, path, tb.A.Token, body)
			if r.Status != c.cross {
				t.Fatalf("%s %s with A's token: %d %s, want %d", method, path, r.Status, r.Body, c.cross)
			}
			if c.cross == http.StatusNotFound && r.ErrorCode() != "not_found" {
				t.Errorf("404 body %s, want code not_found", r.Body)
			}
			if c.listOf != nil {
				var pg pageOut[struct {
					ID int64 `json:"id"`
				}]
				r.JSON(t, &pg)
				for _, got := range pg.Data {
					if slices.Contains(c.listOf(res), got.ID) {
						t.Errorf("A's list shows B's resource %d", got.ID)
					}
				}
			}
			if c.public {
				return
			}
			for _, tok := range []string{"", "bgk_not_a_real_token"} {
				r := tb.do(t, method, path, tok, body)
				if r.Status != http.StatusUnauthorized || r.ErrorCode() != "unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s with token %q: %d %s, want 401", method, path, tok, r.Status, r.Body)
				}
			}
		})
	}

	// Nothing A tried changed B's resources.
	var p projectOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/projects/%d", proj.ID), tb.B.Token, nil, &p)
	if p.Name != "B's project" {
		t.Errorf("B's project is now %+v", p)
	}
	var b batchOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/batches/%d", bb.ID), tb.B.Token, nil, &b)
	if b.Status != "queued" || b.Total != 2 || b.Counts["failed"] != 1 {
		t.Errorf("B's batch is now %+v", b)
	}
	var got imageOut
	tb.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/v1/images/%d", im.ID), tb.B.Token, nil, &got)
	if got.Review != "none" {
		t.Errorf("B's image review is now %q", got.Review)
	}
	if jobs := tb.jobStates(t, bb.ID); jobs["available"] != 2 || len(jobs) != 1 {
		t.Errorf("B's jobs are now %v", jobs)
	}
}
