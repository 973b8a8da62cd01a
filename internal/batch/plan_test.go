package batch

import (
	"strings"
	"testing"
	"time"

	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
)

// newPlanner returns a planner on the default catalogue with the preview
// engine as default model; edit, when given, changes the config first.
func newPlanner(t testing.TB, edit ...func(*Config)) *Planner {
	t.Helper()
	cfg := Config{
		Catalog:  catalog.Default(),
		Defaults: Defaults{Model: "preview", N: 1},
		Now:      time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC),
	}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatalf("NewPlanner: %v", err)
	}
	return p
}

func planAll(p *Planner, row input.Row) ([]generate.Request, []Problem) {
	var items []generate.Request
	probs := p.Plan(row, func(it generate.Request) bool { items = append(items, it); return true })
	return items, probs
}

func TestPlanRows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		values    map[string]string
		wantN     int
		wantField string // problem field, "" for none
		check     func(t *testing.T, items []generate.Request)
	}{
		{name: "plain", values: map[string]string{"prompt": "a cat"}, wantN: 1},
		{name: "n", values: map[string]string{"prompt": "a cat", "n": "3"}, wantN: 3, check: func(t *testing.T, items []generate.Request) {
			seen := map[int64]bool{}
			for i, it := range items {
				if it.Index != i+1 {
					t.Errorf("item %d has index %d", i, it.Index)
				}
				if seen[it.Seed] {
					t.Errorf("seed %d repeated", it.Seed)
				}
				seen[it.Seed] = true
			}
		}},
		{name: "explicit seed", values: map[string]string{"prompt": "a cat", "n": "2", "seed": "100"}, wantN: 2, check: func(t *testing.T, items []generate.Request) {
			if items[0].Seed != 100 || items[1].Seed != 101 {
				t.Errorf("seeds %d %d, want 100 101", items[0].Seed, items[1].Seed)
			}
		}},
		{name: "bad n", values: map[string]string{"prompt": "a cat", "n": "two"}, wantField: "n"},
		{name: "zero n", values: map[string]string{"prompt": "a cat", "n": "0"}, wantField: "n"},
		{name: "negative seed", values: map[string]string{"prompt": "a cat", "seed": "-1"}, wantField: "seed"},
		{name: "seed too big", values: map[string]string{"prompt": "a cat", "seed": "4294967295"}, wantField: "seed"},
		{name: "empty prompt", values: map[string]string{"prompt": "  "}, wantField: "prompt"},
		{name: "bad template", values: map[string]string{"prompt": "a {cat"}, wantField: "prompt"},
		{name: "unknown variable", values: map[string]string{"prompt": "a {colour} cat"}, wantField: "prompt"},
		{name: "variable", values: map[string]string{"prompt": "a {color} cat", "color": "red"}, wantN: 1, check: func(t *testing.T, items []generate.Request) {
			if items[0].Prompt != "a red cat" {
				t.Errorf("prompt %q", items[0].Prompt)
			}
			if items[0].Vars["color"] != "red" {
				t.Errorf("vars %v", items[0].Vars)
			}
		}},
		{name: "unknown model", values: map[string]string{"prompt": "a cat", "model": "nope"}, wantField: "model"},
		{name: "bad size", values: map[string]string{"prompt": "a cat", "size": "big"}, wantField: "size"},
		{name: "bad format", values: map[string]string{"prompt": "a cat", "format": "gif"}, wantField: "format"},
		{name: "ratio", values: map[string]string{"prompt": "a cat", "aspect_ratio": "16:9"}, wantN: 1, check: func(t *testing.T, items []generate.Request) {
			if it := items[0]; it.Width*9 != it.Height*16 && (it.Width <= it.Height) {
				t.Errorf("16:9 gave %dx%d", it.Width, it.Height)
			}
		}},
		{name: "explicit name", values: map[string]string{"prompt": "a cat", "name": "../../etc/cat", "n": "2"}, wantN: 2, check: func(t *testing.T, items []generate.Request) {
			for _, it := range items {
				if strings.Contains(it.Name, "..") || strings.HasPrefix(it.Name, "/") {
					t.Errorf("name %q escapes", it.Name)
				}
			}
			if items[0].Name == items[1].Name {
				t.Errorf("two images share name %q", items[0].Name)
			}
		}},
		{name: "options", values: map[string]string{"prompt": "a cat", "opt.latency": "5ms"}, wantN: 1, check: func(t *testing.T, items []generate.Request) {
			if items[0].Options["latency"] != "5ms" {
				t.Errorf("options %v", items[0].Options)
			}
		}},
		{name: "too many", values: map[string]string{"prompt": "a cat", "n": "20000"}, wantField: "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlanner(t)
			items, probs := planAll(p, input.Row{File: "in.csv", Line: 7, Values: tt.values})
			if tt.wantField != "" {
				if len(probs) == 0 {
					t.Fatalf("no problem, want one on %s (items %d)", tt.wantField, len(items))
				}
				if probs[0].Field != tt.wantField || !strings.HasPrefix(probs[0].Error(), "in.csv:7: ") {
					t.Errorf("problem %q field %q, want field %q at in.csv:7", probs[0].Error(), probs[0].Field, tt.wantField)
				}
				if len(items) != 0 {
					t.Errorf("a row with problems yielded %d items", len(items))
				}
				return
			}
			if len(probs) > 0 {
				t.Fatalf("problems: %v", probs)
			}
			if len(items) != tt.wantN {
				t.Fatalf("%d items, want %d", len(items), tt.wantN)
			}
			if tt.check != nil {
				tt.check(t, items)
			}
		})
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	t.Parallel()
	row := input.Row{File: "in.csv", Line: 3, Values: map[string]string{"prompt": "a {red|blue|green} {cat|dog}", "n": "2"}}
	a, _ := planAll(newPlanner(t), row)
	b, _ := planAll(newPlanner(t), row)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("items %d %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Seed != b[i].Seed || a[i].Prompt != b[i].Prompt || a[i].Name != b[i].Name {
			t.Errorf("item %d differs between runs: %+v vs %+v", i, a[i], b[i])
		}
	}
	if a[0].Seed == a[1].Seed {
		t.Errorf("both images of the row have seed %d", a[0].Seed)
	}
}

// TestPlanDrawsPerImage: without --combinatorial, each of a row's n
// images draws its own variants (with its own seed), so "a {red|blue|green}
// cup" with n=12 makes more than one colour; the same row always draws
// the same ones.
func TestPlanDrawsPerImage(t *testing.T) {
	t.Parallel()
	row := input.Row{File: "in.csv", Line: 3, Values: map[string]string{"prompt": "a {red|blue|green} cup", "n": "12"}}
	a, probs := planAll(newPlanner(t), row)
	if len(probs) > 0 || len(a) != 12 {
		t.Fatalf("%d items, problems %v", len(a), probs)
	}
	b, _ := planAll(newPlanner(t), row)
	colours := map[string]bool{}
	for i := range a {
		colours[a[i].Prompt] = true
		if a[i].Prompt != b[i].Prompt || a[i].Seed != b[i].Seed {
			t.Errorf("image %d differs between runs: %q/%d vs %q/%d", i, a[i].Prompt, a[i].Seed, b[i].Prompt, b[i].Seed)
		}
		if a[i].Index != i+1 {
			t.Errorf("image %d has index %d", i, a[i].Index)
		}
	}
	if len(colours) < 2 {
		t.Errorf("12 images drew only %v", colours)
	}
	// A template of plain variables has nothing to draw: every image has
	// the same prompt.
	same, _ := planAll(newPlanner(t), input.Row{File: "in.csv", Line: 4, Values: map[string]string{"prompt": "a {color} cup", "color": "red", "n": "3"}})
	for _, it := range same {
		if it.Prompt != "a red cup" {
			t.Errorf("prompt %q, want a red cup", it.Prompt)
		}
	}
}

func TestPlanCombinatorialAndTemplate(t *testing.T) {
	t.Parallel()
	p := newPlanner(t, func(c *Config) {
		c.Combinatorial = true
		c.Template = "Studio photo of a {color} {product}, {front|side} view"
	})
	items, probs := planAll(p, input.Row{File: "p.csv", Line: 2, Values: map[string]string{"color": "red", "product": "mug"}})
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if len(items) != 2 || items[0].Prompt != "Studio photo of a red mug, front view" || items[1].Prompt != "Studio photo of a red mug, side view" {
		t.Fatalf("items: %+v", items)
	}
	if items[0].Name != "1-1" || items[1].Name != "1-2" {
		t.Errorf("names %q %q", items[0].Name, items[1].Name)
	}
}

func TestPlanLiteralManifestRows(t *testing.T) {
	t.Parallel()
	p := newPlanner(t)
	items, probs := planAll(p, input.Row{File: "manifest.csv", Line: 2, Literal: true,
		Values: map[string]string{"prompt": "braces {stay} as written", "seed": "9", "name": "sub/x"}})
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	if items[0].Prompt != "braces {stay} as written" || items[0].Seed != 9 || items[0].Name != "sub/x" {
		t.Errorf("item %+v", items[0])
	}
}

func BenchmarkPlan(b *testing.B) {
	p := newPlanner(b, func(c *Config) { c.Template = "Studio photo of a {color} {product}, white background" })
	row := input.Row{File: "b.csv", Line: 2, Values: map[string]string{"sku": "A-1", "color": "red", "product": "mug", "aspect_ratio": "1:1"}}
	b.ReportAllocs()
	for b.Loop() {
		p.Plan(row, func(generate.Request) bool { return true })
	}
}
