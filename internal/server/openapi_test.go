package server

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// routePattern matches a ServeMux pattern with a method, as routes.go
// writes them ("GET /api/v1/batches/{id}").
var routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (/\S*)$`)

// registeredRoutes returns every route pattern written in routes.go,
// whether passed to m.Handle directly or listed in a table: any string
// literal shaped like a pattern counts. TestOpenAPIMatchesRoutes then checks
// each against the live mux, so a literal that is not really registered
// fails too.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "routes.go", nil, 0)
	if err != nil {
		t.Fatalf("parse routes.go: %v", err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err == nil && routePattern.MatchString(s) {
			out = append(out, s)
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("found no routes in routes.go")
	}
	return out
}

// openAPIPath turns a mux path into an OpenAPI path: "{name...}" becomes
// "{name}".
func openAPIPath(p string) string { return strings.ReplaceAll(p, "...}", "}") }

// samplePath fills a path's parameters with "1".
func samplePath(p string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(p, "1")
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	// A server without a database is enough to ask the mux which pattern
	// a request reaches.
	s := New(Deps{})

	routes := registeredRoutes(t)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		if !documented[method+" "+openAPIPath(path)] {
			t.Errorf("route %q is not in openapi.json", rt)
		}
		req := httptest.NewRequest(method, samplePath(path), nil)
		if _, pattern := s.mux.Handler(req); pattern != rt {
			t.Errorf("route %q written in routes.go is not registered (a request for it reaches %q)", rt, pattern)
		}
	}
	for op := range documented {
		method, path, _ := strings.Cut(op, " ")
		if !slices.ContainsFunc(routes, func(rt string) bool {
			m, p, _ := strings.Cut(rt, " ")
			return m == method && openAPIPath(p) == path
		}) {
			t.Errorf("openapi.json documents %s, which routes.go does not register", op)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, nil)
	r := b.do(t, "GET", "/api/v1/openapi.json", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200", r.Status)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var doc map[string]any
	r.JSON(t, &doc)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("served document has openapi %v", doc["openapi"])
	}
}
