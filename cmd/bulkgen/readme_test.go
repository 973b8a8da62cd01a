package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bulkgen/internal/manifest"
)

// TestREADME runs the README's shell commands as a new user would, so that a
// line of the manual that stops working fails the build.
//
// How it works. Every fenced ```sh block of README.md is read, in order, and
// split into commands (a line ending in \ continues). The commands run in
// one bash process, one after the other, in a fresh folder that links to
// the repository's files (so `make build` builds there and `out/`, `data/`
// and `batch.zip` are written there), with no provider keys and no
// BULKGEN_* variables in the environment. Each command must exit 0; the
// first that does not stops the script and fails the test with its README
// line and its output. The script is the README itself: there is no second
// copy of the commands to keep in step.
//
// Three things differ from a terminal, each because a test cannot do
// otherwise, and the directives for them are HTML comments on the line
// before a block, which GitHub does not show:
//
//   - <!-- readme-test: skip REASON --> leaves a block out (`make test` would
//     run this test again).
//   - <!-- readme-test: background --> runs the block's one command in the
//     background, as the README's "in another terminal" means, and waits
//     for it to print "listening on http://ADDR". It is `bulkgen serve`,
//     started with BULKGEN_ADDR=127.0.0.1:0 so that it binds a free port;
//     127.0.0.1:8080 in every later command is replaced by the address it
//     printed. At the end it gets SIGTERM, as Ctrl-C or kill would give it,
//     and must exit 0.
//   - curl runs with --fail-with-body added (a curl on PATH ahead of the
//     real one), so an HTTP error status fails the line as a person reading
//     the answer would judge it, while the body is still printed.
//
// knownFailures lists the commands expected to fail until another change
// lands; such a command must fail, and the test says so once it passes.
//
// After the script, the README's claims that a command's exit status does
// not show are checked: out/ holds the images with both manifests, serve
// printed an API token on first start, batch.zip is an archive with its
// manifest.
//
// To add a command, write it in a ```sh block of the README; nothing else.
// It runs in the folder described above after the commands before it, with
// bulkgen on PATH from the quick start's `make build`.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bulkgen and runs the README's commands (about 30 s)")
	}
	t.Parallel()
	for _, tool := range []string{"bash", "make", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's commands (scripts/test-deps.sh installs it): %v", tool, err)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}

	work := t.TempDir()
	linkRepo(t, repo, work)
	shim := t.TempDir()
	curlShim(t, shim)
	steps := filepath.Join(t.TempDir(), "steps")
	script, cmds := readmeScript(blocks, steps)
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in README.md; the quick start, run and service blocks have more", len(cmds))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = work
	cmd.Env = readmeEnv(shim)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On a timeout, end the whole group: bash, and the server it started.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if cmd.Process != nil {
		// Nothing the script started may outlive the test.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}

	results := readSteps(t, steps)
	ran := 0
	for i, c := range cmds {
		rc, ok := results[strconv.Itoa(i+1)]
		if !ok {
			break
		}
		ran++
		why, known := knownFailure(c.text)
		switch {
		case known && rc == "0":
			t.Errorf("README.md:%d now succeeds; remove it from knownFailures (%s):\n%s", c.line, why, c.text)
		case known:
			t.Logf("README.md:%d fails as expected until %s (exit %s)", c.line, why, rc)
		case rc != "0":
			t.Errorf("README.md:%d exited %s:\n%s", c.line, rc, stepOutput(out.String(), i+1))
		}
	}
	if ran < len(cmds) && !t.Failed() {
		t.Errorf("the README's commands stopped after %d of %d (%v); output:\n%s", ran, len(cmds), runErr, tail(out.String(), 4000))
	}
	if rc, ok := results["serve-exit"]; ok && rc != "0" {
		t.Errorf("bulkgen serve exited %s after SIGTERM, want 0:\n%s", rc, readFileOr(filepath.Join(work, ".readme-serve.err")))
	}
	if t.Failed() {
		return
	}

	// The claims around the commands.
	checkRunOutput(t, filepath.Join(work, "out"))
	if serveOut := readFileOr(filepath.Join(work, ".readme-serve.out")); !regexp.MustCompile(`bgk_\S+`).MatchString(serveOut) {
		t.Errorf("serve printed no API token on first start; stdout: %q", serveOut)
	}
	zr, err := zip.OpenReader(filepath.Join(work, "batch.zip"))
	if err != nil {
		t.Fatalf("batch.zip: %v", err)
	}
	defer zr.Close()
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
	}
	if !names["manifest.csv"] || !names["manifest.jsonl"] || len(names) < 3 {
		t.Errorf("batch.zip holds %v, want images and both manifests", names)
	}
}

// knownFailures are README commands that fail until a change outside this
// branch lands, by a part of their text, with that change, e.g.
//
//	"-F file=@examples/prompts.csv": "the batch service's default model (issue 11 #1)",
//
// (that upload answered no_valid_rows until the server used the CLI's
// default model). A listed command must fail; once it succeeds the test
// says to remove it.
var knownFailures = map[string]string{}

func knownFailure(cmd string) (string, bool) {
	for part, why := range knownFailures {
		if strings.Contains(cmd, part) {
			return why, true
		}
	}
	return "", false
}

// readmeBlock is one fenced sh block.
type readmeBlock struct {
	line      int    // of its first command line
	directive string // "", "skip" or "background"
	lines     []string
}

// readmeCmd is one command of a block, continuation lines joined.
type readmeCmd struct {
	line       int
	text       string
	background bool
}

var directiveRE = regexp.MustCompile(`^<!--\s*readme-test:\s*(\S+)(.*?)-->\s*$`)

// readmeBlocks returns the ```sh blocks of a Markdown text with their
// directives. An unknown directive or an unclosed block is an error, so a
// typo cannot quietly skip a block.
func readmeBlocks(md string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	var cur *readmeBlock
	pending, pendingLine := "", 0
	sc := bufio.NewScanner(strings.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		case strings.TrimSpace(line) == "```sh":
			cur = &readmeBlock{line: n + 1, directive: pending}
			pending = ""
		default:
			if m := directiveRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				if m[1] != "skip" && m[1] != "background" {
					return nil, fmt.Errorf("line %d: unknown readme-test directive %q (want skip or background)", n, m[1])
				}
				pending, pendingLine = m[1], n
				continue
			}
			if pending != "" && strings.TrimSpace(line) != "" {
				return nil, fmt.Errorf("line %d: the readme-test directive is not followed by a ```sh block", pendingLine)
			}
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: unclosed ```sh block", cur.line-1)
	}
	return blocks, nil
}

// commands splits a block into commands: comment and blank lines dropped,
// lines ending in \ joined with the next.
func (b readmeBlock) commands() []readmeCmd {
	var cmds []readmeCmd
	var text strings.Builder
	start := 0
	for i, l := range b.lines {
		if text.Len() == 0 {
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			start = b.line + i
		}
		text.WriteString(l)
		if strings.HasSuffix(l, `\`) {
			text.WriteString("\n")
			continue
		}
		cmds = append(cmds, readmeCmd{line: start, text: text.String(), background: b.directive == "background"})
		text.Reset()
	}
	return cmds
}

// readmeScript turns the blocks into one bash script that records each
// command's exit status in stepsFile ("N STATUS", N counting from 1) and
// stops at the first unexpected failure. It returns the script and its
// commands in order.
func readmeScript(blocks []readmeBlock, stepsFile string) (string, []readmeCmd) {
	var s strings.Builder
	fmt.Fprintf(&s, "set -u\nexec 3>%s\n", shellQuote([]string{stepsFile}))
	// The server started by a background block gets SIGTERM at the end, as
	// Ctrl-C or kill would give it, and its exit status is recorded.
	s.WriteString(`__bg=""
__stop() { if [ -n "$__bg" ]; then kill -TERM "$__bg" 2>/dev/null; wait "$__bg"; echo "serve-exit $?" >&3; fi; }
trap __stop EXIT
`)
	var cmds []readmeCmd
	addr := false
	for _, b := range blocks {
		if b.directive == "skip" {
			continue
		}
		for _, c := range b.commands() {
			cmds = append(cmds, c)
			n := len(cmds)
			text := c.text
			if addr {
				text = strings.ReplaceAll(text, "127.0.0.1:8080", "${__addr}")
			}
			fmt.Fprintf(&s, "printf '\\n### step %d\\n$ %%s\\n' %s\n", n, shellQuote([]string{c.text}))
			onFail := "exit 1"
			if _, known := knownFailure(c.text); known {
				onFail = ":"
			}
			if c.background {
				// Comments would swallow the redirection; the command
				// runs without them.
				text = strings.TrimSpace(strings.SplitN(text, " #", 2)[0])
				fmt.Fprintf(&s, `%s >.readme-serve.out 2>.readme-serve.err &
__bg=$!
__addr=""
for __i in $(seq 600); do
  __addr=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' .readme-serve.err | head -n 1)
  [ -n "$__addr" ] && break
  kill -0 "$__bg" 2>/dev/null || break
  sleep 0.1
done
cat .readme-serve.out .readme-serve.err
if [ -n "$__addr" ]; then echo "%d 0" >&3; else echo "%d 1" >&3; %s; fi
`, text, n, n, onFail)
				addr = true
				continue
			}
			fmt.Fprintf(&s, "%s\n__rc=$?; echo \"%d $__rc\" >&3; [ \"$__rc\" -eq 0 ] || %s\n", text, n, onFail)
		}
	}
	return s.String(), cmds
}

// readmeEnv is the test's environment without provider keys or bulkgen
// settings, as on a fresh machine, with the curl shim first on PATH and
// serve told to bind a free port.
func readmeEnv(shim string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BULKGEN_"), k == "PATH":
			continue
		}
		if providerVar(k) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"), "BULKGEN_ADDR=127.0.0.1:0")
}

// providerVar reports whether k configures an AI provider (a key, a URL).
func providerVar(k string) bool {
	for _, p := range []string{"OPENAI_", "GEMINI_", "STABILITY_", "REPLICATE_", "FAL_", "BFL_", "COMFYUI_", "A1111_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// linkRepo fills work with links to the repository's top-level files, so
// that the README's relative paths resolve while what its commands write
// stays in work.
func linkRepo(t *testing.T, repo, work string) {
	t.Helper()
	entries, err := os.ReadDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case ".git", "bin", "out", "data", "batch.zip", "bulkgen":
			continue // the README's commands make these
		}
		if err := os.Symlink(filepath.Join(repo, e.Name()), filepath.Join(work, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// curlShim writes a curl that calls the real one with --fail-with-body.
func curlShim(t *testing.T, dir string) {
	t.Helper()
	real, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nexec " + shellQuote([]string{real}) + " --fail-with-body \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "curl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// readSteps reads the "N STATUS" lines the script wrote.
func readSteps(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			out[k] = v
		}
	}
	return out
}

// stepOutput is what step n printed, from its marker to the next.
func stepOutput(all string, n int) string {
	marker := fmt.Sprintf("\n### step %d\n", n)
	i := strings.Index(all, marker)
	if i < 0 {
		return tail(all, 4000)
	}
	rest := all[i+len(marker):]
	if j := strings.Index(rest, "\n### step "); j >= 0 {
		rest = rest[:j]
	}
	return tail(rest, 4000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func readFileOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// checkRunOutput checks what the quick start says out/ holds: the images,
// each as its manifest.jsonl record describes it, and manifest.csv.
func checkRunOutput(t *testing.T, out string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(out, "manifest.csv")); err != nil {
		t.Errorf("out/manifest.csv: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.jsonl"))
	if err != nil {
		t.Fatalf("out/manifest.jsonl: %v", err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r manifest.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("out/manifest.jsonl: %v", err)
		}
		st, err := os.Stat(filepath.Join(out, r.ImageFile))
		if r.Status != manifest.StatusSucceeded || err != nil || st.Size() != r.Bytes {
			t.Errorf("out/%s: status %s, file %v, want succeeded and %d bytes", r.ImageFile, r.Status, err, r.Bytes)
		}
		n++
	}
	if n == 0 {
		t.Error("out/manifest.jsonl lists no image")
	}
}
