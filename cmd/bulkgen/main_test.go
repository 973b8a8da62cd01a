package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"bulkgen/internal/imagemeta"
	"bulkgen/internal/manifest"
)

// binary is the bulkgen binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bulkgen-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "bulkgen")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build bulkgen: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// bulkgen runs the binary with a clean environment (no provider keys).
func bulkgen(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run bulkgen: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

func readManifest(t *testing.T, dir string) []manifest.Record {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "manifest.jsonl"))
	if err != nil {
		t.Fatalf("open manifest.jsonl: %v", err)
	}
	defer f.Close()
	var recs []manifest.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r manifest.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("manifest.jsonl line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunExampleCSV(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "../../examples/prompts.csv", filepath.Join(dir, "prompts.csv"))
	res := bulkgen(t, dir, "run", "prompts.csv", "-o", "out")
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	out := filepath.Join(dir, "out")
	recs := readManifest(t, out)
	// 2 lighthouse + 1 fox + 3 icons + 1 lake + 1 market.
	if len(recs) != 8 {
		t.Fatalf("manifest has %d records, want 8", len(recs))
	}
	names := map[string]bool{}
	for _, r := range recs {
		if r.Status != manifest.StatusSucceeded {
			t.Errorf("%s: status %s (%s)", r.ImageFile, r.Status, r.Error)
			continue
		}
		if names[strings.ToLower(r.ImageFile)] {
			t.Errorf("duplicate file name %s", r.ImageFile)
		}
		names[strings.ToLower(r.ImageFile)] = true
		data, err := os.ReadFile(filepath.Join(out, r.ImageFile))
		if err != nil {
			t.Fatalf("image %s: %v", r.ImageFile, err)
		}
		if int64(len(data)) != r.Bytes {
			t.Errorf("%s: %d bytes, manifest says %d", r.ImageFile, len(data), r.Bytes)
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s does not decode: %v", r.ImageFile, err)
		}
		if cfg.Width != r.Width || cfg.Height != r.Height {
			t.Errorf("%s: %dx%d, manifest says %dx%d", r.ImageFile, cfg.Width, cfg.Height, r.Width, r.Height)
		}
		params, recJSON, err := imagemeta.Read(data)
		if err != nil {
			t.Fatalf("%s: read metadata: %v", r.ImageFile, err)
		}
		if params.Prompt != r.Prompt || params.Seed != r.Seed {
			t.Errorf("%s: embedded prompt %q seed %d, manifest %q %d", r.ImageFile, params.Prompt, params.Seed, r.Prompt, r.Seed)
		}
		var emb manifest.Record
		if err := json.Unmarshal(recJSON, &emb); err != nil {
			t.Fatalf("%s: embedded record: %v", r.ImageFile, err)
		}
		if emb.Model != "preview" || !emb.Preview || emb.SourceLine != r.SourceLine {
			t.Errorf("%s: embedded record %+v", r.ImageFile, emb)
		}
	}
	// The fox row asked 1:1, the lighthouse 16:9.
	for _, r := range recs {
		if strings.HasPrefix(r.ImageFile, "lighthouse") && r.Width <= r.Height {
			t.Errorf("%s: %dx%d is not landscape", r.ImageFile, r.Width, r.Height)
		}
	}
	// manifest.csv has the same rows, with the documented header.
	f, err := os.Open(filepath.Join(out, "manifest.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("manifest.csv: %v", err)
	}
	if len(rows) != 9 || strings.Join(rows[0], ",") != strings.Join(manifest.Columns, ",") {
		t.Fatalf("manifest.csv: %d rows, header %v", len(rows), rows[0])
	}

	// A second run does no work.
	res = bulkgen(t, dir, "run", "prompts.csv", "-o", "out")
	if res.code != 0 || !strings.Contains(res.stdout, "8 succeeded (8 already done)") {
		t.Fatalf("second run: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	// A missing and a corrupted image are made again, and only those.
	victim1 := filepath.Join(out, recs[0].ImageFile)
	victim2 := filepath.Join(out, recs[3].ImageFile)
	if err := os.Remove(victim1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim2, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = bulkgen(t, dir, "run", "prompts.csv", "-o", "out")
	if res.code != 0 || !strings.Contains(res.stdout, "8 succeeded (6 already done)") {
		t.Fatalf("repair run: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	// Both are back, decodable and matching their new manifest hashes.
	repaired := readManifest(t, out)
	for _, i := range []int{0, 3} {
		data, err := os.ReadFile(filepath.Join(out, repaired[i].ImageFile))
		if err != nil {
			t.Fatalf("%s not regenerated: %v", repaired[i].ImageFile, err)
		}
		if _, _, err := image.DecodeConfig(bytes.NewReader(data)); err != nil {
			t.Errorf("%s does not decode after repair: %v", repaired[i].ImageFile, err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != repaired[i].SHA256 {
			t.Errorf("%s: hash does not match the manifest", repaired[i].ImageFile)
		}
	}
}

func TestRunBrokenInputReportsAndContinues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "testdata/broken.csv", filepath.Join(dir, "broken.csv"))
	res := bulkgen(t, dir, "run", "broken.csv", "-o", "out")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1 (some rows invalid)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"broken.csv:3:", "broken.csv:4:", "broken.csv:5:", "broken.csv:6:", "broken.csv:7:"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	if len(recs) != 3 { // the good row (1) + another good row (2)
		t.Fatalf("manifest has %d records, want 3: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Status != manifest.StatusSucceeded {
			t.Errorf("%s: %s", r.ImageFile, r.Status)
		}
	}
	if !strings.Contains(res.stdout, "5 rows skipped as invalid") {
		t.Errorf("summary does not count skipped rows:\n%s", res.stdout)
	}
}

func TestRunTXTWithOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "testdata/mixed.txt", filepath.Join(dir, "mixed.txt"))
	res := bulkgen(t, dir, "run", "mixed.txt", "-o", "out", "--format", "jpeg")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "mixed.txt:5:") || !strings.Contains(res.stderr, "mixed.txt:6:") {
		t.Errorf("bad option lines not reported:\n%s", res.stderr)
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	if len(recs) != 3 {
		t.Fatalf("got %d images, want 3", len(recs))
	}
	var seeds []int64
	for _, r := range recs {
		if r.Format != "jpeg" || !strings.HasSuffix(r.ImageFile, ".jpg") {
			t.Errorf("%s: format %s", r.ImageFile, r.Format)
		}
		if r.SourceLine == 4 {
			seeds = append(seeds, r.Seed)
		}
	}
	if len(seeds) != 2 || seeds[0] != 42 || seeds[1] != 43 {
		t.Errorf("line 4 seeds = %v, want [42 43]", seeds)
	}
}

func TestRunTemplateAndNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "../../examples/products.csv", filepath.Join(dir, "products.csv"))
	res := bulkgen(t, dir, "run", "products.csv", "-o", "out",
		"--template", "Studio photo of a {color} {product}, white background", "--name", "{sku}-{n}", "--n", "2")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	if len(recs) != 10 {
		t.Fatalf("%d images, want 10", len(recs))
	}
	if recs[0].ImageFile != "MUG-001-1.png" || recs[1].ImageFile != "MUG-001-2.png" {
		t.Errorf("names %s, %s", recs[0].ImageFile, recs[1].ImageFile)
	}
	if recs[0].Prompt != "Studio photo of a red ceramic mug, white background" {
		t.Errorf("prompt %q", recs[0].Prompt)
	}
	if recs[0].Seed == recs[1].Seed {
		t.Errorf("two images of one row share seed %d", recs[0].Seed)
	}
	if recs[0].Vars["sku"] != "MUG-001" {
		t.Errorf("vars %v", recs[0].Vars)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "testdata/broken.csv", filepath.Join(dir, "broken.csv"))
	res := bulkgen(t, dir, "run", "broken.csv", "-o", "out", "--dry-run")
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created the output folder (err=%v)", err)
	}
	for _, want := range []string{"images:  3", "preview", "broken.csv:3:", "first 3 images"} {
		if !strings.Contains(res.stdout+res.stderr, want) {
			t.Errorf("dry run output lacks %q:\n%s\n%s", want, res.stdout, res.stderr)
		}
	}
}

func TestManifestRerunRegeneratesOnlyChangedRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "../../examples/prompts.csv", filepath.Join(dir, "prompts.csv"))
	if res := bulkgen(t, dir, "run", "prompts.csv", "-o", "out"); res.code != 0 {
		t.Fatalf("first run: %d\n%s", res.code, res.stderr)
	}
	out := filepath.Join(dir, "out")
	// Edit one prompt in a copy of the manifest.
	b, err := os.ReadFile(filepath.Join(out, "manifest.csv"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "A red fox in fresh snow, morning light", "A red fox in fresh snow, evening light", 1)
	if edited == string(b) {
		t.Fatal("fox prompt not found in manifest")
	}
	if err := os.WriteFile(filepath.Join(dir, "edited.csv"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	foxBefore, _ := os.ReadFile(filepath.Join(out, "fox.png"))
	res := bulkgen(t, dir, "run", "edited.csv", "--input-format", "manifest", "-o", "out")
	if res.code != 0 || !strings.Contains(res.stdout, "8 succeeded (7 already done)") {
		t.Fatalf("manifest run: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	foxAfter, _ := os.ReadFile(filepath.Join(out, "fox.png"))
	if bytes.Equal(foxBefore, foxAfter) {
		t.Error("fox.png was not regenerated for its new prompt")
	}
	recs := readManifest(t, out)
	if len(recs) != 8 {
		t.Fatalf("%d records after manifest run, want 8", len(recs))
	}
}

func TestInterruptThenResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var sb strings.Builder
	for i := range 40 {
		sb.WriteString("interrupted prompt number ")
		sb.WriteString(strings.Repeat("x", i%5))
		sb.WriteString(" ")
		sb.WriteString(string(rune('a' + i%26)))
		sb.WriteString(" ")
		sb.WriteString(strings.Repeat("y", i))
		sb.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "p.txt"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "p.txt", "-o", "out", "--opt", "latency=300ms", "--concurrency", "2", "--json")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt after the third finished image.
	sc := bufio.NewScanner(stdout)
	seen := 0
	for sc.Scan() {
		var ev struct{ Event string }
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "image" {
			seen++
			if seen == 3 {
				_ = cmd.Process.Signal(syscall.SIGINT)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("interrupted run: %v, want exit 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "run the same command again") {
		t.Errorf("no resume hint:\n%s", stderr.String())
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	done := 0
	for _, r := range recs {
		if r.Status == manifest.StatusSucceeded {
			done++
		}
	}
	if done < 3 || done >= 40 {
		t.Fatalf("%d images done after interrupt, want between 3 and 39", done)
	}

	// The same command resumes: what was done is not made again.
	res := bulkgen(t, dir, "run", "p.txt", "-o", "out", "--opt", "latency=300ms", "--concurrency", "8", "--json")
	if res.code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if want := fmt.Sprintf("40 succeeded (%d already done)", done); !strings.Contains(res.stderr, want) {
		t.Errorf("resume summary lacks %q:\n%s", want, res.stderr)
	}
	recs = readManifest(t, filepath.Join(dir, "out"))
	files, _ := filepath.Glob(filepath.Join(dir, "out", "*.png"))
	if len(recs) != 40 || len(files) != 40 {
		t.Fatalf("after resume: %d records, %d files, want 40 each", len(recs), len(files))
	}
}

func TestFailureRateRetries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var sb strings.Builder
	for i := range 30 {
		sb.WriteString("retry prompt ")
		sb.WriteString(strings.Repeat("z", i+1))
		sb.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "p.txt"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := bulkgen(t, dir, "run", "p.txt", "-o", "out", "--opt", "failure_rate=0.3", "--retries", "20", "--retry-delay", "1ms")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	recs := readManifest(t, filepath.Join(dir, "out"))
	retried := 0
	for _, r := range recs {
		if r.Attempts > 1 {
			retried++
		}
	}
	if len(recs) != 30 || retried == 0 {
		t.Fatalf("%d records, %d retried; want 30 and some retried", len(recs), retried)
	}

	// A provider that always fails ends with every image failed, not stuck.
	res = bulkgen(t, dir, "run", "p.txt", "-o", "out2", "--opt", "failure_rate=1", "--retries", "2", "--retry-delay", "1ms")
	if res.code != 1 || !strings.Contains(res.stdout, "30 failed") {
		t.Fatalf("always-failing run: exit %d\n%s", res.code, res.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, "testdata/unterminated.csv", filepath.Join(dir, "u.csv"))
	if err := os.WriteFile(filepath.Join(dir, "p.csv"), []byte("prompt\na cat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no file", []string{"run", "-o", "out"}, 2, "no input file"},
		{"no output", []string{"run", "x.csv"}, 2, "-o DIR is required"},
		{"missing file", []string{"run", "nope.csv", "-o", "out"}, 1, "nope.csv"},
		{"unknown model", []string{"run", "p.csv", "-o", "out", "--model", "no-such-model"}, 2, "--model: unknown model"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bad template", []string{"run", "u.csv", "-o", "out", "--template", "{oops"}, 2, "--template"},
		{"zip slip name", []string{"run", "u.csv", "-o", "out", "--name", "../../{row}"}, 2, "--name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := bulkgen(t, dir, tt.args...)
			if res.code != tt.code || !strings.Contains(res.stderr+res.stdout, tt.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", res.code, tt.code, tt.want, res.stdout, res.stderr)
			}
		})
	}
}
