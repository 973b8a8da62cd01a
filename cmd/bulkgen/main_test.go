package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

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

// shell runs a command line with sh, with the binary first on PATH, as a
// user pasting it would.
func shell(t *testing.T, dir, line string) result {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sh -c %s: %v", line, err)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
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

// TestInterruptThenResume interrupts a run after three images and pastes
// the resume hint it prints into a shell: the same command, quoted so that
// a file name with a space survives, finishes the batch without remaking
// what was done. (The other end-to-end tests are scripts: TestScripts.)
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
	if err := os.WriteFile(filepath.Join(dir, "my prompts.txt"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "my prompts.txt", "-o", "out", "--opt", "latency=300ms", "--concurrency", "2", "--json")
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
	_, hint, ok := strings.Cut(stderr.String(), "run the same command again:\n")
	hint, _, _ = strings.Cut(strings.TrimSpace(hint), "\n")
	if want := `bulkgen run 'my prompts.txt' -o out --opt latency=300ms --concurrency 2 --json`; !ok || hint != want {
		t.Fatalf("resume hint %q, want %q\n%s", hint, want, stderr.String())
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

	// The hint, pasted into a shell, resumes: what was done is not made
	// again.
	res := shell(t, dir, hint)
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
