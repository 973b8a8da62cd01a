// Package s3test starts a real S3 server for tests: versitygw with its
// posix backend in a temporary folder, on a free loopback port, stopped
// when the test ends.
//
// scripts/test-deps.sh installs versitygw into $(go env GOPATH)/bin. When
// it is missing the tests that need it are skipped, unless
// BULKGEN_REQUIRE_S3 is set (as CI does), which makes them fail.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"bulkgen/internal/blob/s3blob"
)

// RequireEnv is the variable that turns a missing versitygw from a skip
// into a failure.
const RequireEnv = "BULKGEN_REQUIRE_S3"

// Server is a running versitygw.
type Server struct {
	// Endpoint is its base URL, http://127.0.0.1:port.
	Endpoint string
	// Root is the posix backend's folder: one sub-folder per bucket.
	Root string

	access, secret string
	client         *s3.Client
	buckets        atomic.Int64
}

// Start starts a server and returns the Config of a new, empty bucket on
// it, for a test that needs one store.
func Start(tb testing.TB) s3blob.Config {
	tb.Helper()
	return NewServer(tb).Bucket(tb)
}

// NewServer starts a versitygw for tb, stopped (and its folder removed)
// when tb ends. Subtests can share it, each with its own Bucket.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	bin := findBinary()
	if bin == "" {
		msg := "versitygw is not installed (scripts/test-deps.sh installs it)"
		if os.Getenv(RequireEnv) != "" {
			tb.Fatalf("%s, and %s is set", msg, RequireEnv)
		}
		tb.Skipf("%s; set %s=1 to make this a failure", msg, RequireEnv)
	}
	s := &Server{Root: tb.TempDir(), access: "bulkgen-test", secret: randomHex(20)}
	var lastErr error
	// A port found free can be taken by another process before versitygw
	// binds it; a few tries make that a non-issue.
	for range 3 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("find a free port: %v", err)
		}
		s.Endpoint = "http://127.0.0.1:" + port
		if lastErr = s.run(tb, bin, port); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("start versitygw: %v", lastErr)
	}
	s.client = s3.New(s3.Options{
		Region:       s3blob.DefaultRegion,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: s.access, SecretAccessKey: s.secret}, nil
		}),
	})
	return s
}

// run starts the binary on port and waits until it answers; the process is
// killed when tb ends.
func (s *Server) run(tb testing.TB, bin, port string) error {
	out := &lockedBuffer{}
	cmd := exec.Command(bin,
		"--access", s.access, "--secret", s.secret,
		"--port", "127.0.0.1:"+port,
		"--region", s3blob.DefaultRegion,
		"--health", "/healthz",
		"--quiet",
		"posix", s.Root)
	// Only PATH from the test's environment: VGW_* and ROOT_* variables
	// would change the server's settings.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = out, out
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get(s.Endpoint + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				tb.Cleanup(stop)
				return nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("versitygw did not answer on %s within 30s: %s", s.Endpoint, strings.TrimSpace(out.String()))
		}
	}
}

// Bucket creates a new, empty bucket and returns the Config of a store on
// it, with no prefix.
func (s *Server) Bucket(tb testing.TB) s3blob.Config {
	tb.Helper()
	name := fmt.Sprintf("test-%d", s.buckets.Add(1))
	if _, err := s.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
	return s3blob.Config{
		Bucket:          name,
		Endpoint:        s.Endpoint,
		Region:          s3blob.DefaultRegion,
		PathStyle:       true,
		AccessKeyID:     s.access,
		SecretAccessKey: s.secret,
	}
}

// Client is a plain S3 client with the server's root credentials, for a
// test to look behind a store's back.
func (s *Server) Client() *s3.Client { return s.client }

// findBinary returns the path of versitygw on PATH or in the Go bin
// folder, or "".
func findBinary() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// lockedBuffer collects a process's output, written from two goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // enough to say why it failed
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Age makes the object under key (the full S3 key) in bucket look last
// written age ago, by setting its file's time in the posix backend's
// folder, which is where versitygw takes LastModified from. S3 has no
// request that backdates an object; sweeper tests need old ones.
func (s *Server) Age(tb testing.TB, bucket, key string, age time.Duration) {
	tb.Helper()
	p := filepath.Join(s.Root, bucket, filepath.FromSlash(key))
	when := time.Now().Add(-age)
	if err := os.Chtimes(p, when, when); err != nil {
		tb.Fatalf("age %s/%s: %v", bucket, key, err)
	}
}
