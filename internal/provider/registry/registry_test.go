package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/catalog"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/a1111/a1111test"
	"bulkgen/internal/provider/bfl/bfltest"
	"bulkgen/internal/provider/comfyui/comfyuitest"
	"bulkgen/internal/provider/fal/faltest"
	"bulkgen/internal/provider/gemini/geminitest"
	"bulkgen/internal/provider/openai/openaitest"
	"bulkgen/internal/provider/openaicompat/openaicompattest"
	"bulkgen/internal/provider/replicate/replicatetest"
	"bulkgen/internal/provider/stability/stabilitytest"
	"bulkgen/internal/ratelimit"
)

// workflow is the ComfyUI workflow the comfyui adapter's own tests use.
var workflow = filepath.Join("..", "comfyui", "testdata", "sdxl_workflow.json")

// contract is a running contract server seen from the registry: the
// environment that points the registry at it and a request it accepts.
type contract struct {
	// env enables the provider: the enabling variable first (see
	// fixture.enable), then base URL and extras.
	env   map[string]string
	calls func() int
	req   provider.Request
}

// fixture is one provider: the variable that enables it (the first of its
// catalogue "env" list) and how to start its contract server.
type fixture struct {
	name   string
	enable string
	start  func(t *testing.T) contract
}

var fixtures = []fixture{
	{"openai", "OPENAI_API_KEY", func(t *testing.T) contract {
		s := openaitest.NewServer(t, openaitest.Options{MaxEdge: 64})
		return contract{map[string]string{"OPENAI_API_KEY": s.Key, "OPENAI_BASE_URL": s.URL}, s.Calls,
			provider.Request{Model: openaitest.DefaultModel, Prompt: "a lighthouse", Width: 1024, Height: 1024, Count: 1}}
	}},
	{"gemini", "GEMINI_API_KEY", func(t *testing.T) contract {
		s := geminitest.NewServer(t, geminitest.Options{MaxEdge: 64})
		return contract{map[string]string{"GEMINI_API_KEY": s.Key, "GEMINI_BASE_URL": s.URL}, s.Calls,
			provider.Request{Model: geminitest.DefaultModel, Prompt: "a lighthouse", Width: 1024, Height: 1024, AspectRatio: "1:1", Count: 1}}
	}},
	{"stability", "STABILITY_API_KEY", func(t *testing.T) contract {
		s := stabilitytest.NewServer(t, stabilitytest.Options{MaxSide: 64})
		return contract{map[string]string{"STABILITY_API_KEY": s.Key, "STABILITY_BASE_URL": s.URL}, s.Calls,
			provider.Request{Model: "core", Prompt: "a lighthouse", AspectRatio: "1:1", Format: "png", Count: 1}}
	}},
	{"replicate", "REPLICATE_API_TOKEN", func(t *testing.T) contract {
		s := replicatetest.NewServer(t, replicatetest.Options{MaxSide: 64})
		return contract{map[string]string{"REPLICATE_API_TOKEN": s.Key, "REPLICATE_BASE_URL": s.URL}, s.Calls,
			provider.Request{Model: "black-forest-labs/flux-schnell", Prompt: "a lighthouse", AspectRatio: "16:9", Format: "png", Count: 1}}
	}},
	{"fal", "FAL_KEY", func(t *testing.T) contract {
		s := faltest.NewServer(t, faltest.Options{MaxSide: 64})
		return contract{map[string]string{"FAL_KEY": s.Key, "FAL_BASE_URL": s.URL}, s.Calls,
			provider.Request{Model: "fal-ai/flux/schnell", Prompt: "a lighthouse", AspectRatio: "16:9", Format: "png", Count: 1}}
	}},
	{"bfl", "BFL_API_KEY", func(t *testing.T) contract {
		s := bfltest.NewServer(t, bfltest.Options{})
		return contract{map[string]string{"BFL_API_KEY": s.Key, "BFL_BASE_URL": s.URL}, s.Calls,
			provider.Request{Model: "flux-2-pro", Prompt: "a lighthouse", Width: 512, Height: 384, Format: "png", Count: 1}}
	}},
	{"comfyui", "COMFYUI_URL", func(t *testing.T) contract {
		s := comfyuitest.NewServer(t, comfyuitest.Options{})
		return contract{map[string]string{"COMFYUI_URL": s.URL, "COMFYUI_WORKFLOW": workflow}, s.Calls,
			provider.Request{Model: "sd_xl_base_1.0.safetensors", Prompt: "a lighthouse", Width: 512, Height: 384, Count: 1}}
	}},
	{"a1111", "A1111_URL", func(t *testing.T) contract {
		s := a1111test.NewServer(t, a1111test.Options{Username: "bulkgen", Password: "a1111-password-0123456789"})
		return contract{map[string]string{"A1111_URL": s.URL, "A1111_USERNAME": "bulkgen", "A1111_PASSWORD": "a1111-password-0123456789"}, s.Calls,
			provider.Request{Model: "sd_xl_base_1.0", Prompt: "a lighthouse", Width: 512, Height: 384, Count: 1}}
	}},
	{"openaicompat", "OPENAI_COMPAT_URL", func(t *testing.T) contract {
		s := openaicompattest.NewServer(t, openaicompattest.Options{MaxEdge: 64})
		return contract{map[string]string{"OPENAI_COMPAT_URL": s.URL, "OPENAI_COMPAT_API_KEY": s.Key}, s.Calls,
			provider.Request{Model: openaicompattest.DefaultModel, Prompt: "a lighthouse", Width: 512, Height: 512, Count: 1}}
	}},
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func build(t *testing.T, env map[string]string) *Registry {
	t.Helper()
	r, err := Build(Config{Getenv: getenv(env), Catalog: catalog.Default()})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return r
}

// generate makes one call through the registry's adapter for name and
// checks that it reached the contract server and returned an image.
func generate(t *testing.T, r *Registry, name string, c contract) {
	t.Helper()
	p, err := r.Get(name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	if p.Name() != name {
		t.Errorf("Get(%s) returned adapter %q", name, p.Name())
	}
	before := c.calls()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.Generate(ctx, c.req)
	if err != nil {
		t.Fatalf("Generate through the registry: %v", err)
	}
	if len(res.Images) == 0 || len(res.Images[0].Data) == 0 {
		t.Fatalf("Generate returned no image: %+v", res)
	}
	if _, _, _, err := provider.DecodeImage(res.Images[0].Data); err != nil {
		t.Errorf("returned image: %v", err)
	}
	if c.calls() <= before {
		t.Errorf("the contract server saw no call: the base URL override was not used")
	}
}

// TestProviderEnabled enables each provider by its variable, or by the
// variable's _FILE form naming a file that holds the value, points it at
// its contract server and makes one call through the registry.
func TestProviderEnabled(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures {
		for _, viaFile := range []bool{false, true} {
			name := f.name + "/" + f.enable
			if viaFile {
				name += "_FILE"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := f.start(t)
				env := maps.Clone(c.env)
				if viaFile {
					path := filepath.Join(t.TempDir(), "secret")
					// A trailing newline, as editors and `echo` leave it.
					if err := os.WriteFile(path, []byte(env[f.enable]+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					delete(env, f.enable)
					env[f.enable+"_FILE"] = path
				}
				r := build(t, env)
				if !slices.Contains(r.Configured(), f.name) {
					t.Fatalf("Configured() = %v, want %s in it (Missing: %v)", r.Configured(), f.name, r.Missing())
				}
				if why, ok := r.Missing()[f.name]; ok {
					t.Errorf("Missing()[%s] = %q for a configured provider", f.name, why)
				}
				generate(t, r, f.name, c)
			})
		}
	}
}

func TestProviderDisabledWithoutVariable(t *testing.T) {
	t.Parallel()
	// Base URLs and extras alone enable nothing.
	env := map[string]string{
		"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "GEMINI_BASE_URL": "http://127.0.0.1:1",
		"COMFYUI_WORKFLOW": workflow, "OPENAI_COMPAT_API_KEY": "sk-compat-0123456789abcdef",
		"A1111_USERNAME": "u",
	}
	r := build(t, env)
	if got := r.Configured(); len(got) != 0 {
		t.Errorf("Configured() = %v, want none", got)
	}
	if r.HasHosted() {
		t.Error("HasHosted() with nothing configured")
	}
	for _, f := range fixtures {
		want := "set " + f.enable
		if got := r.Missing()[f.name]; got != want {
			t.Errorf("Missing()[%s] = %q, want %q", f.name, got, want)
		}
		_, err := r.Get(f.name)
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Auth || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(%s) = %v, want an auth error saying %q", f.name, err, want)
		}
	}
	if p, err := r.Get("preview"); err != nil || p.Name() != "preview" {
		t.Errorf("Get(preview) = %v, %v; the preview engine is always there", p, err)
	}
	if _, err := r.Get("nonesuch"); provider.ClassOf(err) != provider.Invalid {
		t.Errorf("Get(nonesuch) = %v, want an invalid-class error", err)
	}
}

func TestEnvMatchesCatalog(t *testing.T) {
	t.Parallel()
	cat := catalog.Default()
	seen := map[string]bool{}
	for _, p := range cat.Providers() {
		if p.Name == "preview" {
			continue
		}
		seen[p.Name] = true
		b, ok := builders[p.Name]
		if !ok {
			t.Errorf("catalogue provider %s has no builder", p.Name)
			continue
		}
		if !slices.Equal(b.env, p.Env) {
			t.Errorf("%s: registry reads %v, catalogue says %v", p.Name, b.env, p.Env)
		}
	}
	for name := range builders {
		if !seen[name] {
			t.Errorf("builder %s is not in the catalogue", name)
		}
	}
	for _, f := range fixtures {
		if !seen[f.name] {
			t.Errorf("fixture %s is not a catalogue provider", f.name)
		}
	}
	if len(fixtures) != len(builders) {
		t.Errorf("%d fixtures for %d builders: every provider needs one", len(fixtures), len(builders))
	}
	// What `bulkgen models` says (catalogue) and what the registry does
	// agree on the same environments.
	for _, f := range fixtures {
		for _, env := range []map[string]string{{}, {f.enable: "http://127.0.0.1:9/key-or-url", "COMFYUI_WORKFLOW": workflow}} {
			r := build(t, env)
			avail := cat.Availability(getenv(env))
			if got, want := r.Missing()[f.name], avail[f.name]; got != want {
				t.Errorf("%s with %v: registry says %q, catalogue says %q", f.name, env, got, want)
			}
		}
	}
}

func TestBadURLRefused(t *testing.T) {
	t.Parallel()
	const key = "sk-secret-do-not-print-0123456789"
	tests := []struct {
		name, variable, value string
		env                   map[string]string
	}{
		{"no scheme", "OPENAI_BASE_URL", "api.openai.com/v1", map[string]string{"OPENAI_API_KEY": key}},
		{"ftp", "STABILITY_BASE_URL", "ftp://files.example.com", map[string]string{"STABILITY_API_KEY": key}},
		{"no host", "FAL_BASE_URL", "https://", map[string]string{"FAL_KEY": key}},
		{"query", "BFL_BASE_URL", "https://api.bfl.ai?region=eu", map[string]string{"BFL_API_KEY": key}},
		{"host and port only", "COMFYUI_URL", "localhost:8188", map[string]string{"COMFYUI_WORKFLOW": workflow}},
		{"key pasted as URL", "A1111_URL", key, nil},
		{"spaces", "OPENAI_COMPAT_URL", "http://local ai:8080/v1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{tt.variable: tt.value}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := Build(Config{Getenv: getenv(env), Catalog: catalog.Default()})
			if err == nil {
				t.Fatalf("Build accepted %s=%q", tt.variable, tt.value)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.variable) || !strings.Contains(msg, "http") {
				t.Errorf("error %q does not name %s and what it wants", msg, tt.variable)
			}
			if strings.Contains(msg, key) {
				t.Errorf("error shows the key: %q", msg)
			}
		})
	}
}

func TestComfyUINeedsWorkflow(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"COMFYUI_URL": "http://127.0.0.1:8188"},
		{"COMFYUI_URL": "http://127.0.0.1:8188", "COMFYUI_WORKFLOW": filepath.Join(t.TempDir(), "missing.json")},
	} {
		_, err := Build(Config{Getenv: getenv(env), Catalog: catalog.Default()})
		if err == nil || !strings.Contains(err.Error(), "COMFYUI_WORKFLOW") {
			t.Errorf("Build(%v) = %v, want an error naming COMFYUI_WORKFLOW", env, err)
		}
	}
}

func TestKeysNeverShown(t *testing.T) {
	t.Parallel()
	keys := map[string]string{
		"OPENAI_API_KEY":        "sk-proj-openai-SECRET-0123456789abcdef",
		"GEMINI_API_KEY":        "AIzaSy-gemini-SECRET-0123456789abcdef",
		"STABILITY_API_KEY":     "sk-stability-SECRET-0123456789abcdef",
		"REPLICATE_API_TOKEN":   "r8_replicate-SECRET-0123456789abcdef",
		"FAL_KEY":               "fal-id:fal-SECRET-0123456789abcdef",
		"BFL_API_KEY":           "bfl-SECRET-0123456789abcdef",
		"OPENAI_COMPAT_API_KEY": "compat-SECRET-0123456789abcdef",
		"A1111_PASSWORD":        "a1111-SECRET-0123456789abcdef",
	}
	check := func(t *testing.T, what, s string) {
		t.Helper()
		for name, k := range keys {
			if strings.Contains(s, k) || strings.Contains(s, "SECRET") {
				t.Errorf("%s shows %s: %q", what, name, s)
			}
		}
	}
	env := map[string]string{"OPENAI_COMPAT_URL": "http://127.0.0.1:9/v1", "A1111_URL": "http://127.0.0.1:9", "A1111_USERNAME": "u"}
	for k, v := range keys {
		env[k] = v
	}
	r := build(t, env)
	if len(r.Configured()) != 8 {
		t.Fatalf("Configured() = %v, want the 8 providers given keys or URLs", r.Configured())
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		check(t, "Sprintf("+verb+") of the registry", fmt.Sprintf(verb, r))
	}
	check(t, "Sprint of the registry", fmt.Sprint(r))
	check(t, "Sprint of the missing reasons", fmt.Sprint(r.Missing()))

	// Errors while building: a bad URL next to a key, an unreadable key file.
	bad := map[string]string{"OPENAI_API_KEY": keys["OPENAI_API_KEY"], "OPENAI_BASE_URL": keys["OPENAI_API_KEY"]}
	if _, err := Build(Config{Getenv: getenv(bad)}); err == nil {
		t.Error("a key as base URL was accepted")
	} else {
		check(t, "bad URL error", err.Error())
	}
	missing := map[string]string{"FAL_KEY_FILE": filepath.Join(t.TempDir(), "nope")}
	if _, err := Build(Config{Getenv: getenv(missing)}); err == nil {
		t.Error("an unreadable FAL_KEY_FILE was accepted")
	} else {
		check(t, "key file error", err.Error())
	}

	// A wrong key sent to servers that quote it back in full: the error
	// the registry's adapter returns has it masked.
	t.Run("refused key", func(t *testing.T) {
		t.Parallel()
		oa := openaitest.NewServer(t, openaitest.Options{EchoKey: true})
		st := stabilitytest.NewServer(t, stabilitytest.Options{EchoKey: true})
		rp := replicatetest.NewServer(t, replicatetest.Options{EchoKey: true})
		fl := faltest.NewServer(t, faltest.Options{EchoKey: true})
		oc := openaicompattest.NewServer(t, openaicompattest.Options{EchoKey: true})
		env := map[string]string{
			"OPENAI_API_KEY": keys["OPENAI_API_KEY"], "OPENAI_BASE_URL": oa.URL,
			"STABILITY_API_KEY": keys["STABILITY_API_KEY"], "STABILITY_BASE_URL": st.URL,
			"REPLICATE_API_TOKEN": keys["REPLICATE_API_TOKEN"], "REPLICATE_BASE_URL": rp.URL,
			"FAL_KEY": keys["FAL_KEY"], "FAL_BASE_URL": fl.URL,
			"OPENAI_COMPAT_URL": oc.URL, "OPENAI_COMPAT_API_KEY": keys["OPENAI_COMPAT_API_KEY"],
		}
		r := build(t, env)
		reqs := map[string]provider.Request{}
		for _, f := range fixtures {
			reqs[f.name] = f.start(t).req
		}
		for _, name := range []string{"openai", "stability", "replicate", "fal", "openaicompat"} {
			p, err := r.Get(name)
			if err != nil {
				t.Fatalf("Get(%s): %v", name, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err = p.Generate(ctx, reqs[name])
			cancel()
			if provider.ClassOf(err) != provider.Auth {
				t.Errorf("%s: err = %v, want an auth error", name, err)
				continue
			}
			check(t, name+" auth error", err.Error())
			check(t, name+" auth error (%+v)", fmt.Sprintf("%+v", err))
		}
	})
}

func TestLimits(t *testing.T) {
	t.Parallel()
	cat := catalog.Default()
	r, err := Build(Config{Catalog: cat, Limits: map[string]ratelimit.Limits{
		"openai": {Concurrency: 3, RPM: 120},
		"fal":    {}, // zero: no limit, overriding the catalogue's default
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Limits().For("openai", "gpt-image-2").Limits(); got != (ratelimit.Limits{Concurrency: 3, RPM: 120}) {
		t.Errorf("openai limits = %+v, want the override", got)
	}
	if got := r.Limits().For("fal", "fal-ai/flux/schnell").Limits(); got != (ratelimit.Limits{}) {
		t.Errorf("fal limits = %+v, want none", got)
	}
	info, _ := cat.Provider("stability")
	if got := r.Limits().For("stability", "core").Limits(); got.RPM != info.RPM || got.Concurrency != info.Concurrency {
		t.Errorf("stability limits = %+v, want the catalogue's %v/min, %d", got, info.RPM, info.Concurrency)
	}
}
