package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// today is the date the catalogue's retirements are judged against.
var today = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func mustDefault(tb testing.TB) *Catalog {
	tb.Helper()
	c, err := Load(DefaultJSON())
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return c
}

func mustOverride(tb testing.TB, override string) *Catalog {
	tb.Helper()
	c, err := Load(defaultJSON, strings.NewReader(override))
	if err != nil {
		tb.Fatalf("Load with override: %v", err)
	}
	return c
}

// knownProviders are the adapters bulkgen has; every model must use one.
var knownProviders = []string{"openai", "gemini", "stability", "replicate", "fal", "bfl", "comfyui", "a1111", "openaicompat", "preview"}

// TestDefaultSelfConsistent checks every model in the embedded file against
// itself: it is what keeps a hand edit of models.json honest.
func TestDefaultSelfConsistent(t *testing.T) {
	t.Parallel()
	c := mustDefault(t)
	if got := len(c.Models()); got < 30 {
		t.Fatalf("default catalogue has %d models, want the full list (30+)", got)
	}
	for _, p := range knownProviders {
		info, ok := c.Provider(p)
		if !ok {
			t.Errorf("provider %q missing from the providers section", p)
			continue
		}
		if p != "preview" && (len(info.Env) == 0 || info.Docs == "" || info.BaseURL == "") {
			t.Errorf("provider %q: env, docs and base_url are required, got %+v", p, info)
		}
		if info.Concurrency < 0 || info.RPM < 0 {
			t.Errorf("provider %q: negative limits %+v", p, info)
		}
	}
	for _, m := range c.Models() {
		t.Run(m.ID, func(t *testing.T) {
			t.Parallel()
			if !slices.Contains(knownProviders, m.Provider) {
				t.Errorf("provider %q is not one of %v", m.Provider, knownProviders)
			}
			if m.RemoteID == "" && m.Provider != "comfyui" && m.Provider != "a1111" {
				t.Errorf("remote_id is empty")
			}
			if m.Replacement != "" {
				r, err := c.LookupAt(m.Replacement, today)
				if err != nil {
					t.Errorf("replacement %q: %v", m.Replacement, err)
				} else if r == m {
					t.Errorf("replacement is the model itself")
				}
			}
			if m.Shutdown.IsZero() != (m.Replacement == "") && m.Provider != "preview" {
				t.Errorf("shutdown %v and replacement %q must come together", m.Shutdown, m.Replacement)
			}
			for _, f := range m.Formats {
				if !slices.Contains(knownFormats, f) {
					t.Errorf("format %q is not one of %v", f, knownFormats)
				}
			}
			if !m.Allows(m.DefaultSize.W, m.DefaultSize.H) {
				t.Errorf("default size %v is not allowed", m.DefaultSize)
			}
			for _, q := range append([]string{""}, m.Qualities...) {
				for _, s := range append([]Size{m.DefaultSize}, m.Sizes...) {
					if p := m.Cost(q, s.W, s.H); p < 0 {
						t.Errorf("Cost(%q, %v) = %d, want >= 0", q, s, p)
					}
				}
			}
			if m.Provider != "preview" && m.Provider != "comfyui" && m.Provider != "a1111" &&
				m.Provider != "openaicompat" && m.Cost("", m.DefaultSize.W, m.DefaultSize.H) == 0 {
				t.Errorf("hosted model costs nothing at its default size")
			}
			// The defaults alone must pass, except for the retirement.
			_, probs := c.Check(Spec{Model: m.ID, Prompt: "a lighthouse at dusk"}, today)
			for _, p := range probs {
				if !(p.Field == "model" && m.RetiredAt(today)) {
					t.Errorf("Check with defaults: %v", p)
				}
			}
			// Every native ratio maps to a size the model accepts, of
			// that ratio, with no warning.
			for _, r := range m.Ratios {
				if !m.Allows(r.Size.W, r.Size.H) {
					t.Errorf("ratio %s maps to %v, which the model does not accept", r.Name, r.Size)
				}
				if !aspectMatches(r.Size.W, r.Size.H, r.W, r.H) {
					t.Errorf("ratio %s maps to %v, which is not that ratio", r.Name, r.Size)
				}
				res, probs := c.Check(Spec{Model: m.ID, Prompt: "x", AspectRatio: r.Name}, time.Time{})
				res.Warnings = slices.DeleteFunc(res.Warnings, func(w string) bool { return w == m.warnShutdown })
				if len(probs) > 0 || len(res.Warnings) > 0 {
					t.Errorf("Check(ratio %s): problems %v, warnings %v", r.Name, probs, res.Warnings)
				}
				if res.Width != r.Size.W || res.Height != r.Size.H {
					t.Errorf("Check(ratio %s) = %dx%d, want %v", r.Name, res.Width, res.Height, r.Size)
				}
				// And the size it maps to resolves back to the ratio.
				res, _ = c.Check(Spec{Model: m.ID, Prompt: "x", Width: r.Size.W, Height: r.Size.H}, time.Time{})
				res.Warnings = slices.DeleteFunc(res.Warnings, func(w string) bool { return w == m.warnShutdown })
				if res.AspectRatio != r.Name || len(res.Warnings) > 0 {
					t.Errorf("Check(size %v) = ratio %q, warnings %v; want %s and none", r.Size, res.AspectRatio, res.Warnings, r.Name)
				}
			}
			for _, s := range m.Sizes {
				if !m.Allows(s.W, s.H) {
					t.Errorf("listed size %v is not allowed", s)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if _, err := c.LookupAt("preview", today); err != nil {
		t.Fatalf("Default().Lookup(preview): %v", err)
	}
	if Default() != c {
		t.Fatal("Default must parse the embedded file once and share the result")
	}
	if got := DefaultJSON(); len(got) == 0 || got[0] != '{' {
		t.Fatal("DefaultJSON is not the embedded file")
	}
}

func TestModelsSorted(t *testing.T) {
	t.Parallel()
	ms := mustDefault(t).Models()
	if !slices.IsSortedFunc(ms, func(a, b *Model) int {
		if c := strings.Compare(a.Provider, b.Provider); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}) {
		t.Fatal("Models() is not sorted by provider, id")
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	c := mustOverride(t, `{"models": [
		{"id": "test/a", "provider": "preview", "aliases": ["shared"], "sizes": ["64x64"], "formats": ["png"], "price": {"base": 0}},
		{"id": "test/b", "provider": "preview", "aliases": ["shared", "openai/gpt-image-1"], "sizes": ["64x64"], "formats": ["png"], "price": {"base": 0}},
		{"id": "openai/dall-e-2", "disabled": true}
	]}`)
	tests := []struct {
		name       string
		id         string
		now        time.Time
		wantID     string
		wantRemote string
		check      func(t *testing.T, err error)
	}{
		{name: "exact id", id: "openai/gpt-image-2", wantID: "openai/gpt-image-2"},
		{name: "id any case", id: "OpenAI/GPT-Image-2", wantID: "openai/gpt-image-2"},
		{name: "alias", id: "gpt-image-2", wantID: "openai/gpt-image-2"},
		{name: "alias any case", id: "Nano-Banana-Pro", wantID: "gemini/gemini-3-pro-image"},
		{name: "provider path alias", id: "fal-ai/flux/schnell", wantID: "fal/flux-schnell"},
		{name: "id wins over another model's alias", id: "openai/gpt-image-1", wantID: "openai/gpt-image-1"},
		{name: "preview", id: "preview", wantID: "preview"},
		{name: "before shutdown", id: "gpt-image-1.5", now: today, wantID: "openai/gpt-image-1.5"},
		{
			name: "on shutdown day", id: "gpt-image-1.5", now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			wantID: "openai/gpt-image-1.5",
			check: func(t *testing.T, err error) {
				var re *RetiredError
				if !errors.As(err, &re) || re.Replacement != "openai/gpt-image-2.6-sunburst" {
					t.Fatalf("got %v, want *RetiredError naming openai/gpt-image-2.6-sunburst", err)
				}
			},
		},
		{
			name: "retired", id: "dall-e-3", now: today, wantID: "openai/dall-e-3",
			check: func(t *testing.T, err error) {
				var re *RetiredError
				if !errors.As(err, &re) || re.Replacement == "" || !strings.Contains(err.Error(), "2026-05-12") {
					t.Fatalf("got %v, want *RetiredError with date and replacement", err)
				}
			},
		},
		{
			name: "imagen retired", id: "imagen-4", now: today, wantID: "gemini/imagen-4.0-generate-001",
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "gemini/gemini-3.1-flash-image") {
					t.Fatalf("got %v, want the replacement named", err)
				}
			},
		},
		{
			name: "unknown with suggestions", id: "gpt-image-3",
			check: func(t *testing.T, err error) {
				var ue *UnknownModelError
				if !errors.As(err, &ue) || !slices.Contains(ue.Suggestions, "openai/gpt-image-2") {
					t.Fatalf("got %v, want suggestions including openai/gpt-image-2", err)
				}
			},
		},
		{
			name: "unknown far from everything", id: "zzzzzzzzzzzz",
			check: func(t *testing.T, err error) {
				var ue *UnknownModelError
				if !errors.As(err, &ue) || len(ue.Suggestions) != 0 || !slices.Contains(ue.Known, "preview") {
					t.Fatalf("got %v, want the list of known models", err)
				}
			},
		},
		{
			name: "ambiguous alias", id: "shared",
			check: func(t *testing.T, err error) {
				var ue *UnknownModelError
				if !errors.As(err, &ue) || len(ue.Ambiguous) != 2 {
					t.Fatalf("got %v, want ambiguity between test/a and test/b", err)
				}
			},
		},
		{
			name: "disabled", id: "dall-e-2",
			check: func(t *testing.T, err error) {
				var ue *UnknownModelError
				if !errors.As(err, &ue) {
					t.Fatalf("got %v, want *UnknownModelError", err)
				}
			},
		},
		{
			name: "disabled by id", id: "openai/dall-e-2",
			check: func(t *testing.T, err error) {
				var ue *UnknownModelError
				if !errors.As(err, &ue) || ue.Disabled == "" {
					t.Fatalf("got %v, want a disabled error", err)
				}
			},
		},
		{name: "replicate dynamic", id: "replicate:stability-ai/sdxl", wantID: "replicate:stability-ai/sdxl", wantRemote: "stability-ai/sdxl"},
		{name: "replicate dynamic version", id: "replicate:owner/name:5c7d5dc6", wantID: "replicate:owner/name:5c7d5dc6", wantRemote: "owner/name:5c7d5dc6"},
		{name: "replicate prefix any case", id: "Replicate:owner/name", wantID: "Replicate:owner/name", wantRemote: "owner/name"},
		{
			name: "replicate dynamic malformed", id: "replicate:no-slash",
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "owner/name") {
					t.Fatalf("got %v, want a format error", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := tt.now
			if now.IsZero() {
				now = today
			}
			m, err := c.LookupAt(tt.id, now)
			if tt.check != nil {
				tt.check(t, err)
			} else if err != nil {
				t.Fatalf("LookupAt(%q): %v", tt.id, err)
			}
			if tt.wantID != "" && (m == nil || m.ID != tt.wantID) {
				t.Fatalf("LookupAt(%q) = %v, want %s", tt.id, m, tt.wantID)
			}
			if tt.wantRemote != "" {
				if m.RemoteID != tt.wantRemote || m.Provider != "replicate" || !m.Dynamic {
					t.Fatalf("dynamic model = %+v, want replicate %s", m, tt.wantRemote)
				}
				again, _ := c.LookupAt(tt.id, now)
				if again != m {
					t.Fatal("dynamic model not reused on the second lookup")
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	const ok = `"provider": "preview", "sizes": ["64x64"], "formats": ["png"], "price": {"base": 1}`
	tests := []struct {
		name  string
		file  string
		wants []string // substrings of the error
	}{
		{"bad JSON", "{\n  \"models\": [\n    {\"id\": }\n", []string{"line 3"}},
		{"trailing data", `{} {}`, []string{"unexpected data"}},
		{"unknown top-level field", `{"modles": []}`, []string{`unknown field "modles"`}},
		{"unknown model field", `{"models": [{"id": "t/x", "prise": 1, ` + ok + `}]}`, []string{`models[0] (t/x)`, `unknown field "prise"`}},
		{"unknown nested field", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["png"], "price": {"base": 1, "per": 2}}]}`, []string{`unknown field "per"`}},
		{"wrong type", `{"models": [{"id": "t/x", "max_n": "ten", ` + ok + `}]}`, []string{"models[0]", "max_n", "want an integer"}},
		{"missing id", `{"models": [{` + ok + `}]}`, []string{"models[0]: id: required"}},
		{"negative price", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["png"], "price": {"base": -5}}]}`, []string{"price.base: -5 is negative"}},
		{"negative quality price", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["png"], "qualities": ["hd"], "price": {"base": 1, "by_quality": {"hd": -1}}}]}`, []string{"price.by_quality.hd"}},
		{"negative tier price", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["png"], "price": {"base": 1, "tiers": [{"max_pixels": 100, "base": -2}]}}]}`, []string{"price.tiers[0].base"}},
		{"missing price", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["png"]}]}`, []string{"price: required"}},
		{"duplicate id", `{"models": [{"id": "t/x", ` + ok + `}, {"id": "T/X", ` + ok + `}]}`, []string{"models[1] (T/X)", "duplicate of models[0]"}},
		{"unknown provider", `{"models": [{"id": "t/x", "provider": "nope", "sizes": ["64x64"], "formats": ["png"], "price": {"base": 1}}]}`, []string{`provider: "nope"`, "known: a1111"}},
		{"bad size", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64by64"], "formats": ["png"], "price": {"base": 1}}]}`, []string{"sizes[0]", "want WxH"}},
		{"ratio size of another ratio", `{"models": [{"id": "t/x", "provider": "preview", "ratios": [{"ratio": "16:9", "size": "1024x1024"}], "formats": ["png"], "price": {"base": 1}}]}`, []string{"ratios[0].size: 1024x1024 is not 16:9"}},
		{"ratio size not in sizes", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "ratios": [{"ratio": "1:1", "size": "128x128"}], "formats": ["png"], "price": {"base": 1}}]}`, []string{"ratios[0].size: 128x128 is not in sizes"}},
		{"no sizes at all", `{"models": [{"id": "t/x", "provider": "preview", "formats": ["png"], "price": {"base": 1}}]}`, []string{"needs sizes, free_size or ratios"}},
		{"unknown format", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["gif"], "price": {"base": 1}}]}`, []string{`formats[0]: "gif"`}},
		{"bad date", `{"models": [{"id": "t/x", "shutdown": "1 Dec 2026", ` + ok + `}]}`, []string{"shutdown", "YYYY-MM-DD"}},
		{"unknown replacement", `{"models": [{"id": "t/x", "shutdown": "2026-01-01", "replacement": "t/none", ` + ok + `}]}`, []string{`replacement: "t/none"`}},
		{"default quality not listed", `{"models": [{"id": "t/x", "qualities": ["low"], "default_quality": "high", ` + ok + `}]}`, []string{"default_quality"}},
		{"default size not accepted", `{"models": [{"id": "t/x", "default_size": "100x100", ` + ok + `}]}`, []string{"default_size: 100x100"}},
		{"free size inverted", `{"models": [{"id": "t/x", "provider": "preview", "free_size": {"min_edge": 512, "max_edge": 64}, "formats": ["png"], "price": {"base": 1}}]}`, []string{"free_size.min_edge"}},
		{"negative provider rpm", `{"providers": {"openai": {"rpm": -1}}}`, []string{"providers.openai", "rpm"}},
		{"schema", `{"schema": 2}`, []string{"schema: 2"}},
		{"several problems at once", `{"models": [{"id": "t/x", "provider": "preview", "sizes": ["64x64"], "formats": ["gif"], "price": {"base": -1}}]}`, []string{"formats[0]", "price.base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(defaultJSON, strings.NewReader(tt.file))
			if err == nil {
				t.Fatalf("Load succeeded, want an error containing %q", tt.wants)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "override 1") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadFileOverride(t *testing.T) {
	t.Parallel()
	c, err := LoadFile(filepath.Join("testdata", "override.json"))
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	def := mustDefault(t)

	// A field the override sets is replaced; the others keep their values.
	m, err := c.LookupAt("gpt-image-2", today)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := def.LookupAt("gpt-image-2", today)
	if m.MaxN != 4 {
		t.Errorf("overridden max_n = %d, want 4", m.MaxN)
	}
	if m.RemoteID != orig.RemoteID || !slices.Equal(m.Formats, orig.Formats) || m.Free == nil || m.Cost("high", 1024, 1024) != orig.Cost("high", 1024, 1024) {
		t.Errorf("fields the override did not set changed: %+v", m)
	}

	// Provider fields merge the same way.
	p, _ := c.Provider("openai")
	if p.RPM != 50 || p.Concurrency != 5 || p.BaseURL == "" {
		t.Errorf("openai provider after override = %+v, want rpm 50 and the rest unchanged", p)
	}

	// Disabled models disappear.
	if _, err := c.LookupAt("dall-e-2", today); err == nil {
		t.Error("disabled dall-e-2 still found")
	}
	for _, m := range c.Models() {
		if m.ID == "openai/dall-e-2" {
			t.Error("disabled dall-e-2 still listed")
		}
	}

	// A moved shutdown date un-retires a model.
	if _, err := c.LookupAt("gemini-2.5-flash-image", today); err != nil {
		t.Errorf("gemini-2.5-flash-image with shutdown moved to 2027: %v", err)
	}
	if _, err := def.LookupAt("gemini-2.5-flash-image", today); err == nil {
		t.Error("gemini-2.5-flash-image should be retired in the default catalogue")
	}

	// A new id adds a model, found by its alias.
	m, err = c.LookupAt("SDXL", today)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "mine/sdxl-local" || m.Provider != "comfyui" {
		t.Errorf("added model = %s (%s)", m.ID, m.Provider)
	}
	if len(c.Models()) != len(def.Models()) {
		t.Errorf("models: got %d, want %d (one added, one disabled)", len(c.Models()), len(def.Models()))
	}
	// Its default format is its first, since png is not offered.
	res, probs := c.Check(Spec{Model: "sdxl", Prompt: "x"}, today)
	if len(probs) > 0 || res.Format != "jpeg" {
		t.Errorf("Check(sdxl) format = %q, problems %v; want jpeg", res.Format, probs)
	}
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()
	_, err := LoadFile(filepath.Join(t.TempDir(), "none.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadFile(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestLoadFileNamesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mine.json")
	if err := os.WriteFile(path, []byte(`{"models": [{"id": "x", "bogus": 1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("LoadFile = %v, want an error naming %s", err, path)
	}
}

func TestAvailability(t *testing.T) {
	t.Parallel()
	c := mustDefault(t)
	env := map[string]string{
		"OPENAI_API_KEY":      "sk-test",
		"FAL_KEY_FILE":        "/run/secrets/fal",
		"GOOGLE_API_KEY":      "g",
		"BULKGEN_COMFYUI_URL": "http://gpu:8188",
	}
	got := c.Availability(func(k string) string { return env[k] })
	want := map[string]string{
		"openai":       "",
		"fal":          "",
		"gemini":       "",
		"comfyui":      "",
		"preview":      "",
		"stability":    "set STABILITY_API_KEY",
		"replicate":    "set REPLICATE_API_TOKEN",
		"bfl":          "set BFL_API_KEY",
		"a1111":        "set A1111_URL",
		"openaicompat": "set OPENAI_COMPAT_URL",
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("Availability[%s] = %q, want %q", p, got[p], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Availability has %d providers, want %d", len(got), len(want))
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	c := mustDefault(t)
	tests := []struct {
		model   string
		quality string
		w, h    int
		want    int64
	}{
		{"openai/gpt-image-1", "low", 1024, 1024, 11},
		{"openai/gpt-image-1", "high", 1536, 1024, 250},
		{"openai/gpt-image-1", "", 1024, 1024, 42}, // default quality medium
		{"openai/gpt-image-1", "auto", 1024, 1024, 167},
		{"openai/dall-e-2", "", 256, 256, 16},
		{"openai/dall-e-3", "hd", 1792, 1024, 120},
		{"gemini/gemini-3-pro-image", "", 1024, 1024, 134},
		{"gemini/gemini-3-pro-image", "", 4096, 4096, 240},
		{"stability/sd3.5-large", "", 1024, 1024, 65},
		{"stability/stable-image-ultra", "", 1024, 1024, 80},
		{"bfl/flux-2-pro", "", 2048, 2048, 75},
		{"bfl/flux-2-pro", "", 9000, 9000, 75}, // past the last tier: the last tier
		{"preview", "", 4096, 4096, 0},
	}
	for _, tt := range tests {
		m, err := c.LookupAt(tt.model, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Cost(tt.quality, tt.w, tt.h); got != tt.want {
			t.Errorf("%s.Cost(%q, %dx%d) = %d, want %d", tt.model, tt.quality, tt.w, tt.h, got, tt.want)
		}
	}
}

func TestRateBudgets(t *testing.T) {
	t.Parallel()
	c := mustOverride(t, `{"models": [{"id": "openai/gpt-image-2", "concurrency": 2, "rpm": 20}]}`)
	got := c.RateBudgets()
	if b := got["openai"]; b.Concurrency != 5 || b.RPM != 5 {
		t.Errorf("openai budget = %+v, want the provider default 5/5", b)
	}
	if b := got["openai/gpt-image-2"]; b.Concurrency != 2 || b.RPM != 20 {
		t.Errorf("openai/gpt-image-2 budget = %+v, want 2/20", b)
	}
	if _, ok := got["openai/gpt-image-1"]; ok {
		t.Error("a model without its own limits must not get a budget of its own")
	}
	if b := got["stability"]; b.RPM != 900 {
		t.Errorf("stability budget = %+v, want 900 rpm (150 per 10 s)", b)
	}
}
