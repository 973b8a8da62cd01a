package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"bulkgen/internal/batchcheck"
)

// syncBuffer is a bytes.Buffer safe for a server goroutine writing and a
// test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd calls run in-process with a fixed environment.
func runCmd(ctx context.Context, environ map[string]string, stdout, stderr io.Writer, args ...string) error {
	getenv := func(k string) string { return environ[k] }
	return run(ctx, append([]string{"bulkgen"}, args...), getenv, strings.NewReader(""), stdout, stderr)
}

var listeningRE = regexp.MustCompile(`listening on (http://[0-9.:]+)`)

// testServer is a `bulkgen serve` running in-process on a free port.
type testServer struct {
	base   string
	data   string
	stdout *syncBuffer
	stderr *syncBuffer
	stop   func() error // cancels the server and returns what run returned
}

func startServer(t *testing.T, environ map[string]string) *testServer {
	t.Helper()
	s := &testServer{data: t.TempDir(), stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runCmd(ctx, environ, s.stdout, s.stderr, "serve", "--data", s.data, "--addr", "127.0.0.1:0",
			"--log-level", "warn", "--shutdown-timeout", "10s")
	}()
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("serve did not return 30s after its context ended")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = s.stop() })

	deadline := time.Now().Add(30 * time.Second) // a guard against a hang
	for {
		if m := listeningRE.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = m[1]
			if resp, err := http.Get(s.base + "/healthz"); err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s
				}
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before answering; stderr:\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not healthy after 30s; stderr:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *testServer) do(t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)

	// First start: an admin and a one-time token on stdout.
	first := regexp.MustCompile(`admin API token: (bgk_\S+)`).FindStringSubmatch(s.stdout.String())
	if first == nil {
		t.Fatalf("no first-start token on stdout: %q", s.stdout.String())
	}
	if code, _ := s.do(t, first[1], "GET", "/api/v1/batches", ""); code != http.StatusOK {
		t.Errorf("first-start token: GET /api/v1/batches = %d", code)
	}

	// A token made by the admin command is alone on stdout.
	var out, errOut syncBuffer
	if err := runCmd(t.Context(), nil, &out, &errOut, "admin", "create-token", "--name", "test", "--data", s.data); err != nil {
		t.Fatalf("admin create-token: %v\n%s", err, errOut.String())
	}
	token := strings.TrimSuffix(out.String(), "\n")
	if !strings.HasPrefix(token, "bgk_") || strings.ContainsAny(token, " \n") {
		t.Fatalf("create-token stdout = %q, want the token alone", out.String())
	}

	code, created := s.do(t, token, "POST", "/api/v1/batches",
		`{"prompts": ["a red fox", "a blue whale"], "defaults": {"model": "preview", "size": "32x32", "n": 2, "options": {"latency": "5ms"}}}`)
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("POST /api/v1/batches = %d %v", code, created)
	}
	id := int64(created["id"].(float64))
	deadline := time.Now().Add(30 * time.Second) // a guard against a hang
	var got map[string]any
	for {
		_, got = s.do(t, token, "GET", fmt.Sprintf("/api/v1/batches/%d", id), "")
		if got["status"] == "succeeded" {
			break
		}
		if st, _ := got["status"].(string); st == "failed" || st == "partial" || st == "canceled" {
			t.Fatalf("batch ended %s: %v", st, got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not done after 30s: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if counts := got["counts"].(map[string]any); counts["succeeded"] != float64(4) {
		t.Errorf("counts %v, want 4 succeeded", counts)
	}

	// The consistency check the crash test relies on agrees.
	out, errOut = syncBuffer{}, syncBuffer{}
	if err := runCmd(t.Context(), nil, &out, &errOut, "admin", "check-batch", fmt.Sprint(id), "--data", s.data); err != nil {
		t.Fatalf("check-batch: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	var report batchcheck.Report
	if err := json.Unmarshal([]byte(out.String()), &report); err != nil {
		t.Fatalf("check-batch output: %v\n%s", err, out.String())
	}
	if report.Images != 4 || report.Files != 4 || report.Charges != 4 || len(report.Problems) != 0 {
		t.Errorf("report %+v", report)
	}

	// Graceful shutdown: run returns nil.
	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v after shutdown, want nil", err)
	}
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		// River's leader election and notifier give up after 1 s when the
		// single SQLite connection is busy (a loaded machine, shutdown);
		// the lease expires and polling takes over, so those lines are not
		// failures of ours.
		if strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, "leadership.Elector") && !strings.Contains(strings.ToLower(line), "notifier") {
			t.Errorf("error logged: %s", line)
		}
	}
}

func TestServeSecondStartPrintsNoToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runCmd(ctx, nil, &out, &errOut, "serve", "--data", s.data, "--addr", "127.0.0.1:0", "--log-level", "warn")
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !listeningRE.MatchString(errOut.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("second start not listening:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("second serve: %v", err)
	}
	if strings.Contains(out.String(), "token") {
		t.Errorf("second start printed %q, want no new token", out.String())
	}
}

func TestMigrateAndAdminCommands(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		wantErr    bool
		wantStdout string // substring ("" for none)
		wantStderr string
	}{
		{name: "migrate applies", args: []string{"migrate", "--data", data}, wantStdout: "applied bulkgen migration 1 0001_init.sql"},
		{name: "migrate again is a no-op", args: []string{"migrate", "--data", data}, wantStdout: "nothing applied"},
		{name: "token before any admin", args: []string{"admin", "create-token", "--name", "x", "--data", data}, wantErr: true},
		{name: "create admin", args: []string{"admin", "create-admin", "--email", "ops@example.com", "--data", data}, wantStderr: "admin ops@example.com"},
		{name: "token for that admin", args: []string{"admin", "create-token", "--name", "ci", "--email", "ops@example.com", "--data", data}, wantStdout: "bgk_"},
		{name: "token needs a name", args: []string{"admin", "create-token", "--data", data}, wantErr: true},
		{name: "resume unknown provider", args: []string{"admin", "resume-provider", "nope", "--data", data}, wantErr: true, wantStderr: ""},
		{name: "unknown admin command", args: []string{"admin", "frobnicate"}, wantErr: true, wantStderr: "unknown command"},
		{name: "bad configuration", args: []string{"migrate", "--data", data, "--log-level", "loud"}, wantErr: true},
	}
	// The steps share a database, so they run in order.
	for _, tt := range tests {
		var out, errOut syncBuffer
		err := runCmd(t.Context(), nil, &out, &errOut, tt.args...)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err %v, want error %v\nstderr: %s", tt.name, err, tt.wantErr, errOut.String())
		}
		// A command prints its result, not log lines (a JSON "No
		// migrations to apply" used to come with every admin command, and
		// migrate logged each migration it also printed).
		if strings.Contains(errOut.String(), `{"time"`) {
			t.Errorf("%s: log lines on stderr:\n%s", tt.name, errOut.String())
		}
		if tt.wantStdout != "" && !strings.Contains(out.String(), tt.wantStdout) {
			t.Errorf("%s: stdout %q lacks %q", tt.name, out.String(), tt.wantStdout)
		}
		if tt.wantStderr != "" && !strings.Contains(errOut.String(), tt.wantStderr) {
			t.Errorf("%s: stderr %q lacks %q", tt.name, errOut.String(), tt.wantStderr)
		}
	}
	if _, err := filepath.Glob(filepath.Join(data, "bulkgen.db")); err != nil {
		t.Fatal(err)
	}
}

// TestServeStartLogs: a first start logs one line for all its migrations,
// not one per migration around the token; a later start logs none.
func TestServeStartLogs(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	start := func() (stdout, stderr string) {
		t.Helper()
		var out, errOut syncBuffer
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- runCmd(ctx, nil, &out, &errOut, "serve", "--data", data, "--addr", "127.0.0.1:0")
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !listeningRE.MatchString(errOut.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("serve not listening:\n%s", errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		return out.String(), errOut.String()
	}
	migrationLines := func(stderr string) []string {
		var lines []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(strings.ToLower(l), "migrat") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	_, stderr := start()
	if lines := migrationLines(stderr); len(lines) != 1 || !strings.Contains(lines[0], `"msg":"database migrated"`) {
		t.Errorf("first start logged %d migration lines, want one summary:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	_, stderr = start()
	if lines := migrationLines(stderr); len(lines) != 0 {
		t.Errorf("second start logged migration lines:\n%s", strings.Join(lines, "\n"))
	}
}

// TestHelpListsEveryAdminCommand: the top-level help names each command
// that admin's own help documents (sweep-files was missing).
func TestHelpListsEveryAdminCommand(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := runCmd(t.Context(), nil, &out, &errOut, "help"); err != nil {
		t.Fatalf("help: %v", err)
	}
	var adminLine string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "bulkgen admin COMMAND") {
			adminLine = l
		}
	}
	cmds := regexp.MustCompile(`(?m)^  ([a-z-]+) `).FindAllStringSubmatch(adminUsage, -1)
	if adminLine == "" || len(cmds) < 4 {
		t.Fatalf("admin line %q, admin commands %v", adminLine, cmds)
	}
	for _, c := range cmds {
		if !strings.Contains(adminLine, c[1]) {
			t.Errorf("bulkgen help's admin line lacks %s: %q", c[1], adminLine)
		}
	}
}

func TestServeHelpDocumentsEveryFlag(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := runCmd(t.Context(), nil, &out, &errOut, "serve", "--help"); err != nil {
		t.Fatalf("serve --help: %v", err)
	}
	help := errOut.String()
	for _, want := range []string{"--data DIR", "BULKGEN_DATA", "--addr HOST:PORT", "BULKGEN_ADDR", "--db URL", "BULKGEN_DB_FILE",
		"--workers N", "BULKGEN_WORKERS", "--config FILE", "--no-migrate", "--shutdown-timeout", "BULKGEN_ADMIN_EMAIL",
		"--blob-sweep-interval DURATION", "BULKGEN_BLOB_SWEEP_INTERVAL", "merged over the built-in one"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

func TestServeSweepsOrphanedImages(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"BULKGEN_BLOB_SWEEP_INTERVAL": "20ms"})
	// Files a crashed job left between writing and recording them: only the
	// one older than the grace period (an hour at least) may go.
	plant := func(content string, age time.Duration) string {
		t.Helper()
		sum := sha256.Sum256([]byte(content))
		hexSum := hex.EncodeToString(sum[:])
		p := filepath.Join(s.data, "images", hexSum[:2], hexSum[2:4], hexSum+".png")
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := plant("orphan from a crash", 3*time.Hour)
	young := plant("a job is about to record me", time.Minute)

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old orphan not swept after 30s; stderr:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young file: %v, want it kept", err)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v after shutdown, want nil", err)
	}
}

// TestAdminSweepFiles: `admin sweep-files` removes the unreferenced files
// older than --older-than and keeps the younger ones.
func TestAdminSweepFiles(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	plant := func(content string, age time.Duration) string {
		t.Helper()
		sum := sha256.Sum256([]byte(content))
		name := hex.EncodeToString(sum[:])
		path := filepath.Join(data, "images", name[:2], name+".png")
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(path, when, when); err != nil {
			t.Fatal(err)
		}
		return path
	}
	old, young := plant("old orphan", 3*time.Hour), plant("young orphan", time.Minute)

	var out, errOut syncBuffer
	if err := runCmd(t.Context(), nil, &out, &errOut, "admin", "sweep-files", "--older-than", "0s", "--data", data); err == nil {
		t.Error("sweep-files --older-than 0s: no error")
	}
	out, errOut = syncBuffer{}, syncBuffer{}
	if err := runCmd(t.Context(), nil, &out, &errOut, "admin", "sweep-files", "--older-than", "1h", "--data", data); err != nil {
		t.Fatalf("sweep-files: %v\nstderr: %s", err, errOut.String())
	}
	var got struct {
		Scanned, Older, Removed int
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("stdout %q: %v", out.String(), err)
	}
	if got.Scanned != 2 || got.Older != 1 || got.Removed != 1 {
		t.Errorf("sweep-files printed %+v, want 2 scanned, 1 older, 1 removed", got)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old orphan: stat %v, want it removed", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young orphan: %v, want it kept", err)
	}
}
