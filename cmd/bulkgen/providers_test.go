package main

import (
	"bytes"
	"errors"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"bulkgen/internal/manifest"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/openai/openaitest"
	"bulkgen/internal/provider/providertest"
	"bulkgen/internal/provider/stability/stabilitytest"
)

// bulkgenEnv is bulkgen with extra environment variables (provider keys
// and base URLs) on top of the clean environment.
func bulkgenEnv(t *testing.T, dir string, env map[string]string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run bulkgen: %v", err)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fastCatalog raises OpenAI's default budget (the lowest published tier,
// 5 images a minute) so that a test batch is not spread over a minute;
// the override file is the documented way to match one's own tier.
const fastCatalog = `{"providers": {"openai": {"rpm": 6000, "concurrency": 8}}}`

// TestRunTwoProviders runs one batch whose rows go to two providers, each
// a contract server in this process, and checks the manifest row by row.
func TestRunTwoProviders(t *testing.T) {
	t.Parallel()
	oa := openaitest.NewServer(t, openaitest.Options{})
	st := stabilitytest.NewServer(t, stabilitytest.Options{MaxSide: 512})
	// The first OpenAI call is throttled (429, Retry-After 1) and the first
	// Stability call refused by content moderation (403).
	oa.Inject(providertest.RateLimit, 1)
	st.Inject(providertest.ContentPolicy, 1)

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "catalog.json"), fastCatalog)
	writeFile(t, filepath.Join(dir, "rows.csv"), `name,prompt,model,aspect_ratio
oa-square,a lighthouse at dusk,openai/gpt-image-2,1:1
oa-wide,a harbour at noon,openai/gpt-image-2,3:2
oa-tall,a tower in fog,openai/gpt-image-2,2:3
st-wide,a fox in snow,stability/stable-image-core,16:9
st-square,a red mug,stability/stable-image-core,1:1
st-tall,a mountain lake,stability/stable-image-core,9:16
`)
	env := map[string]string{
		"OPENAI_API_KEY": oa.Key, "OPENAI_BASE_URL": oa.URL,
		"STABILITY_API_KEY": st.Key, "STABILITY_BASE_URL": st.URL,
	}
	res := bulkgenEnv(t, dir, env, "run", "rows.csv", "-o", "out", "--model", "openai/gpt-image-2",
		"--catalog", "catalog.json", "--retry-delay", "10ms", "--concurrency", "4", "--name", "{name}")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1 (one image rejected)\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	for _, key := range []string{oa.Key, st.Key} {
		if strings.Contains(res.stdout+res.stderr, key) {
			t.Errorf("output shows an API key:\n%s\n%s", res.stdout, res.stderr)
		}
	}

	out := filepath.Join(dir, "out")
	recs := readManifest(t, out)
	if len(recs) != 6 {
		t.Fatalf("manifest has %d records, want 6: %+v", len(recs), recs)
	}
	wantSize := map[string][2]int{"oa-square": {1024, 1024}, "oa-wide": {1536, 1024}, "oa-tall": {1024, 1536}}
	var rejected, retried []string
	for _, r := range recs {
		name := strings.TrimSuffix(r.ImageFile, ".png")
		wantProvider, wantModel := "openai", "openai/gpt-image-2"
		if strings.HasPrefix(name, "st-") {
			wantProvider, wantModel = "stability", "stability/stable-image-core"
		}
		if r.Model != wantModel {
			t.Errorf("%s: model %q, want %q", name, r.Model, wantModel)
		}
		if r.Status == manifest.StatusFailed {
			if r.ErrorClass == string(provider.Rejected) {
				rejected = append(rejected, name)
			} else {
				t.Errorf("%s: failed with %s: %s", name, r.ErrorClass, r.Error)
			}
			continue
		}
		if r.Status != manifest.StatusSucceeded {
			t.Errorf("%s: status %s", name, r.Status)
			continue
		}
		if r.Provider != wantProvider {
			t.Errorf("%s: provider %q, want %q", name, r.Provider, wantProvider)
		}
		if r.Attempts == 2 {
			retried = append(retried, name)
		} else if r.Attempts != 1 {
			t.Errorf("%s: %d attempts", name, r.Attempts)
		}
		if r.RequestID == "" || (wantProvider == "openai" && !strings.HasPrefix(r.RequestID, "req_")) {
			t.Errorf("%s: request id %q not recorded", name, r.RequestID)
		}
		data, err := os.ReadFile(filepath.Join(out, r.ImageFile))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil || format != "png" {
			t.Fatalf("%s does not decode as png: %v (%s)", r.ImageFile, err, format)
		}
		if cfg.Width != r.Width || cfg.Height != r.Height || int64(len(data)) != r.Bytes {
			t.Errorf("%s: file %dx%d %d bytes, manifest %dx%d %d bytes", name, cfg.Width, cfg.Height, len(data), r.Width, r.Height, r.Bytes)
		}
		// OpenAI takes pixel sizes (the catalogue maps the ratio onto its
		// size list); Stability takes the ratio and picks the pixels.
		if want, ok := wantSize[name]; ok && (r.Width != want[0] || r.Height != want[1]) {
			t.Errorf("%s: %dx%d, want %dx%d", name, r.Width, r.Height, want[0], want[1])
		}
		landscape, portrait := r.Width > r.Height, r.Height > r.Width
		if (strings.HasSuffix(name, "-wide") && !landscape) || (strings.HasSuffix(name, "-tall") && !portrait) ||
			(strings.HasSuffix(name, "-square") && r.Width != r.Height) {
			t.Errorf("%s: %dx%d does not have ratio %s", name, r.Width, r.Height, r.AspectRatio)
		}
	}
	// Which row met each fault depends on scheduling, not which provider.
	if len(rejected) != 1 || !strings.HasPrefix(rejected[0], "st-") {
		t.Errorf("rejected rows %v, want exactly one stability row", rejected)
	}
	if len(retried) != 1 || !strings.HasPrefix(retried[0], "oa-") {
		t.Errorf("rows with 2 attempts %v, want exactly one openai row (429 then success)", retried)
	}
	if oa.Calls() != 4 || st.Calls() != 3 {
		t.Errorf("server calls: openai %d (want 3 + 1 retry), stability %d (want 3)", oa.Calls(), st.Calls())
	}
	if !strings.Contains(res.stdout, "5 succeeded") || !strings.Contains(res.stdout, "1 failed") {
		t.Errorf("summary:\n%s", res.stdout)
	}
}

func TestModelsShowsConfiguredProviders(t *testing.T) {
	t.Parallel()
	const key = "sk-proj-models-test-0123456789abcdef"
	dir := t.TempDir()
	res := bulkgenEnv(t, dir, map[string]string{"OPENAI_API_KEY": key, "A1111_URL": "http://127.0.0.1:7860"}, "models")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout+res.stderr, key) {
		t.Errorf("models shows the API key in full:\n%s", res.stdout)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			if _, seen := lines[f[0]]; !seen {
				lines[f[0]] = l
			}
		}
	}
	for name, want := range map[string]string{
		"openai":    "configured (OPENAI_API_KEY=" + provider.MaskKey(key) + ")",
		"a1111":     "configured (A1111_URL=",
		"stability": "not configured: set STABILITY_API_KEY",
		"gemini":    "not configured: set GEMINI_API_KEY",
		"comfyui":   "not configured: set COMFYUI_URL",
		"preview":   "configured",
	} {
		if !strings.Contains(lines[name], want) {
			t.Errorf("provider line for %s = %q, want it to say %q", name, lines[name], want)
		}
	}
	if !strings.Contains(res.stdout, "openai/gpt-image-2 ") {
		t.Errorf("configured provider's models not listed:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "stability/stable-image-core") {
		t.Errorf("an unconfigured provider's model is listed without --all:\n%s", res.stdout)
	}

	all := bulkgenEnv(t, dir, nil, "models", "--all")
	for _, want := range []string{"stability/stable-image-core", "unavailable: set STABILITY_API_KEY",
		"retired 2026-05-12, use openai/gpt-image-2.6-sunburst"} {
		if !strings.Contains(all.stdout, want) {
			t.Errorf("models --all lacks %q:\n%s", want, all.stdout)
		}
	}
}

// runOpenAIOnly runs rows.csv (csv) with only OpenAI configured, pointed at
// a contract server, and returns the result, the server and the folder.
func runOpenAIOnly(t *testing.T, csv string) (result, *openaitest.Server, string) {
	t.Helper()
	oa := openaitest.NewServer(t, openaitest.Options{MaxEdge: 64})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "catalog.json"), fastCatalog)
	writeFile(t, filepath.Join(dir, "rows.csv"), csv)
	env := map[string]string{"OPENAI_API_KEY": oa.Key, "OPENAI_BASE_URL": oa.URL}
	res := bulkgenEnv(t, dir, env, "run", "rows.csv", "-o", "out", "--model", "openai/gpt-image-2",
		"--catalog", "catalog.json", "--retry-delay", "10ms")
	return res, oa, dir
}

func TestRetiredModelInRow(t *testing.T) {
	t.Parallel()
	res, oa, dir := runOpenAIOnly(t, "prompt,model\na lighthouse,openai/gpt-image-2\nan old favourite,openai/dall-e-3\n")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1 (an invalid row)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var line string
	for _, l := range strings.Split(res.stderr, "\n") {
		if strings.HasPrefix(l, "rows.csv:3:") {
			line = l
		}
	}
	if !strings.Contains(line, "openai/dall-e-3") || !strings.Contains(line, "openai/gpt-image-2.6-sunburst") {
		t.Errorf("want a rows.csv:3: error naming the retired model and its replacement, got %q\nstderr: %s", line, res.stderr)
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	if len(recs) != 1 || recs[0].Status != manifest.StatusSucceeded || recs[0].Provider != "openai" {
		t.Errorf("manifest %+v, want the one valid row made by openai", recs)
	}
	if oa.Calls() != 1 {
		t.Errorf("server saw %d calls, want 1: the retired row must not be sent", oa.Calls())
	}
}

// TestUnconfiguredProviderRow checks that a row for a provider without a
// key is refused at validation, with the variable to set, before anything
// is sent anywhere.
func TestUnconfiguredProviderRow(t *testing.T) {
	t.Parallel()
	res, oa, dir := runOpenAIOnly(t, "prompt,model\na lighthouse,openai/gpt-image-2\na fox,stability/stable-image-core\n")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var line string
	for _, l := range strings.Split(res.stderr, "\n") {
		if strings.HasPrefix(l, "rows.csv:3:") {
			line = l
		}
	}
	if !strings.Contains(line, "STABILITY_API_KEY") {
		t.Errorf("want a rows.csv:3: problem saying which variable to set, got %q\nstderr: %s", line, res.stderr)
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	if len(recs) != 1 || recs[0].Status != manifest.StatusSucceeded || recs[0].Provider != "openai" {
		t.Fatalf("manifest %+v, want only the openai row, succeeded", recs)
	}
	if oa.Calls() != 1 {
		t.Errorf("openai server saw %d calls, want 1: the stability row must not go elsewhere", oa.Calls())
	}
}
