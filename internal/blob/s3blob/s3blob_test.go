package s3blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"bulkgen/internal/blob"
	"bulkgen/internal/blob/blobtest"
	"bulkgen/internal/blob/s3blob"
	"bulkgen/internal/blob/s3blob/s3test"
)

// newStore opens a store on cfg, closed when t ends.
func newStore(t testing.TB, cfg s3blob.Config) *s3blob.Store {
	t.Helper()
	s, err := s3blob.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	t.Run("bucket", func(t *testing.T) {
		t.Parallel()
		blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t, srv.Bucket(t)) })
	})
	t.Run("prefix", func(t *testing.T) {
		t.Parallel()
		// Stores under prefixes of one bucket: each must look empty to the
		// suite, so each sees only its own objects.
		cfg := srv.Bucket(t)
		var n atomic.Int64
		blobtest.Run(t, func(t *testing.T) blob.Store {
			c := cfg
			c.Prefix = fmt.Sprintf("tenant-%d/images", n.Add(1))
			return newStore(t, c)
		})
	})
}

// requests counts the HTTP requests a store sends, by kind.
type requests struct {
	mu    sync.Mutex
	kinds []string
}

// client returns an HTTP client that records each request's kind into r.
func (r *requests) client() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		kind := req.Method
		q := req.URL.Query()
		switch {
		case q.Has("list-type"):
			kind = "LIST"
		case q.Has("uploads"), q.Has("uploadId"):
			kind += " multipart"
		case req.Header.Get("Range") != "":
			kind += " range"
		}
		r.mu.Lock()
		r.kinds = append(r.kinds, kind)
		r.mu.Unlock()
		return http.DefaultTransport.RoundTrip(req)
	})}
}

// take returns the kinds of the requests sent since the last take or
// count, and forgets them.
func (r *requests) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kinds
	r.kinds = nil
	return k
}

// count returns how many requests of the kinds were sent since the last
// take or count, and forgets them all.
func (r *requests) count(kinds ...string) int {
	n := 0
	for _, k := range r.take() {
		if slices.Contains(kinds, k) {
			n++
		}
	}
	return n
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// pattern returns n bytes made from their offsets, so that a run of them
// read from a wrong offset does not match.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i ^ i>>8 ^ i>>16)
	}
	return b
}

// randomReader streams n pseudo-random bytes, never holding them all.
func randomReader(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
}

// hashOf reads the object under key and returns its SHA-256 and length.
func hashOf(t *testing.T, s blob.Store, key string) ([32]byte, int64) {
	t.Helper()
	obj, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer func() { _ = obj.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return [32]byte(h.Sum(nil)), n
}

// TestPutMultipart: objects around and above the part size go up whole
// and come back byte for byte, in the number of parts their size needs.
func TestPutMultipart(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	const part = s3blob.MinPartSize
	tests := []struct {
		name  string
		size  int64
		parts int // from a stream; 0: a single PutObject
	}{
		{"just under a part", part - 1, 0},
		{"exactly a part", part, 1},
		{"a part and a byte", part + 1, 2},
		{"exactly two parts", 2 * part, 2},
		{"three and a half parts", 3*part + part/2, 4},
	}
	for i, tt := range tests {
		for _, src := range []string{"stream", "bytes.Reader"} {
			t.Run(tt.name+"/"+src, func(t *testing.T) {
				t.Parallel()
				var reqs requests
				cfg := srv.Bucket(t)
				cfg.PartSize = part
				cfg.HTTPClient = reqs.client()
				s := newStore(t, cfg)
				reqs.count()
				data := make([]byte, tt.size)
				if _, err := io.ReadFull(randomReader(uint64(i), tt.size), data); err != nil {
					t.Fatal(err)
				}
				var r io.Reader = onlyReader{bytes.NewReader(data)}
				if src == "bytes.Reader" {
					// Put sends from where the reader is, not from its start.
					br := bytes.NewReader(append([]byte("skipped"), data...))
					if _, err := br.Seek(int64(len("skipped")), io.SeekStart); err != nil {
						t.Fatal(err)
					}
					r = br
				}
				if err := s.Put(t.Context(), "big/object.bin", r); err != nil {
					t.Fatalf("Put: %v", err)
				}
				wantParts := tt.parts
				if src == "bytes.Reader" && tt.size <= part {
					wantParts = 0 // its length is known: no need to try a part first
				}
				if got := reqs.count("PUT multipart"); got != wantParts {
					t.Errorf("Put sent %d parts, want %d", got, wantParts)
				}
				if sum, n := hashOf(t, s, "big/object.bin"); n != tt.size || sum != sha256.Sum256(data) {
					t.Errorf("read back %d bytes with another hash, want the %d put", n, tt.size)
				}
			})
		}
	}
}

// TestPutMemoryBounded: a Put from a stream holds one part in memory
// whatever the object's size, and a Put from a *bytes.Reader or an
// *os.File copies nothing. It measures the whole process's allocations, so
// it does not run in parallel with other tests.
func TestPutMemoryBounded(t *testing.T) {
	cfg := s3test.Start(t)
	cfg.PartSize = s3blob.MinPartSize
	s := newStore(t, cfg)
	const small, large = 16 << 20, 64 << 20
	data := make([]byte, large)
	if _, err := io.ReadFull(randomReader(3, large), data); err != nil {
		t.Fatal(err)
	}
	file, err := os.CreateTemp(t.TempDir(), "export-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = file.Close() }()
	if _, err := file.Write(data); err != nil {
		t.Fatal(err)
	}
	// put stores size bytes from the source and returns what it
	// allocated.
	put := func(key string, r io.Reader, size int) uint64 {
		t.Helper()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := s.Put(t.Context(), key, r); err != nil {
			t.Fatalf("Put: %v", err)
		}
		runtime.ReadMemStats(&after)
		if sum, n := hashOf(t, s, key); n != int64(size) || sum != sha256.Sum256(data[:size]) {
			t.Errorf("%s: read back %d bytes with another hash, want the %d put", key, n, size)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	const MiB = 1 << 20
	streamSmall := put("stream/small", onlyReader{bytes.NewReader(data[:small])}, small)
	streamLarge := put("stream/large", onlyReader{bytes.NewReader(data)}, large)
	t.Logf("from a stream: %.1f MiB allocated for %d MiB, %.1f MiB for %d MiB",
		float64(streamSmall)/MiB, small/MiB, float64(streamLarge)/MiB, large/MiB)
	// The part buffer grows to 5 MiB by doubling (about 16 MiB allocated
	// in all, twice that with -race); four times the object costs at most
	// a little more.
	if streamLarge > large/2+4*MiB || streamLarge > streamSmall+2*MiB {
		t.Errorf("a %d MiB stream allocated %d MiB, %d MiB %.1f MiB: memory grows with the object",
			large/MiB, streamLarge/MiB, small/MiB, float64(streamSmall)/MiB)
	}
	if got := put("bytes/large", bytes.NewReader(data), large); got > 2*MiB {
		t.Errorf("Put from a *bytes.Reader of %d MiB allocated %.1f MiB, want no copy", large/MiB, float64(got)/MiB)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if got := put("file/large", file, large); got > 2*MiB {
		t.Errorf("Put from an *os.File of %d MiB allocated %.1f MiB, want no copy", large/MiB, float64(got)/MiB)
	}
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// failAfter streams n bytes of r and then fails, or calls cancel and
// goes on.
type failAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

var errBroken = errors.New("upstream broke")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		if f.cancel != nil {
			f.cancel()
			return f.r.Read(p)
		}
		return 0, errBroken
	}
	p = p[:min(int64(len(p)), f.n)]
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// brokenFile is a source that Put reads at offsets, like an *os.File,
// whose reads past byte at fail, or call cancel and go on.
type brokenFile struct {
	*bytes.Reader
	at     int64
	cancel context.CancelFunc
}

func (b *brokenFile) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= b.at {
		return b.Reader.ReadAt(p, off)
	}
	if b.cancel != nil {
		b.cancel()
		return b.Reader.ReadAt(p, off)
	}
	n, _ := b.Reader.ReadAt(p[:max(0, b.at-off)], off)
	return n, errBroken
}

// TestFailedPutLeavesNothing: a Put that fails or is cancelled midway
// through a multipart upload leaves neither an object nor an upload with
// parts on the server, and an older object under the key stays.
func TestFailedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	const part = s3blob.MinPartSize
	tests := []struct {
		name    string
		after   int64 // bytes read before the failure
		cancel  bool  // the context is cancelled instead of the reader failing
		wantErr error
	}{
		{"reader fails in the second part", part + part/2, false, errBroken},
		{"reader fails after two whole parts", 2 * part, false, errBroken},
		{"reader fails in the first part", part / 2, false, errBroken},
		{"cancelled in the second part", part + 10, true, context.Canceled},
		{"cancelled in the last part", 2*part + 1, true, context.Canceled},
	}
	data := make([]byte, 3*part)
	if _, err := io.ReadFull(randomReader(1, 3*part), data); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		for _, src := range []string{"stream", "file"} {
			t.Run(tt.name+"/"+src, func(t *testing.T) {
				t.Parallel()
				cfg := srv.Bucket(t)
				cfg.PartSize = part
				s := newStore(t, cfg)
				if err := s.Put(t.Context(), "old/key", strings.NewReader("old")); err != nil {
					t.Fatal(err)
				}
				for _, key := range []string{"new/key", "old/key"} {
					ctx, cancel := context.WithCancel(t.Context())
					var r io.Reader
					if src == "stream" {
						fr := &failAfter{r: bytes.NewReader(data), n: tt.after}
						if tt.cancel {
							fr.cancel = cancel
						}
						r = fr
					} else {
						fr := &brokenFile{Reader: bytes.NewReader(data), at: tt.after}
						if tt.cancel {
							fr.cancel = cancel
						}
						r = fr
					}
					if err := s.Put(ctx, key, r); !errors.Is(err, tt.wantErr) {
						t.Errorf("Put(%s) error = %v, want %v", key, err, tt.wantErr)
					}
					cancel()
				}
				if _, err := s.Open(t.Context(), "new/key"); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("Open after the failed Put error = %v, want ErrNotFound", err)
				}
				if sum, n := hashOf(t, s, "old/key"); n != 3 || sum != sha256.Sum256([]byte("old")) {
					t.Errorf("the older object changed: %d bytes", n)
				}
				up, err := srv.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &cfg.Bucket})
				if err != nil {
					t.Fatal(err)
				}
				if len(up.Uploads) != 0 {
					t.Errorf("%d multipart uploads left on the server, want none", len(up.Uploads))
				}
			})
		}
	}
}

// TestServeContent: http.ServeContent over an s3blob object answers
// full, ranged and multi-range requests with the right bytes, without a
// GET per Read.
func TestServeContent(t *testing.T) {
	t.Parallel()
	var reqs requests
	cfg := s3test.Start(t)
	cfg.HTTPClient = reqs.client()
	s := newStore(t, cfg)
	data := pattern(1 << 20)
	if err := s.Put(t.Context(), "ab/image.png", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "ab/empty.png", bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj, err := s.Open(r.Context(), strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer func() { _ = obj.Close() }()
		http.ServeContent(w, r, r.URL.Path, obj.ModTime(), obj)
	}))
	t.Cleanup(web.Close)

	size := len(data)
	tests := []struct {
		name       string
		path       string
		rangeHdr   string
		wantStatus int
		wantParts  [][2]int // [start, end) of each part of the body
		wantGETs   int      // GETs of the object's bytes, Open's included
	}{
		// Open fetches the first MiB, this whole object.
		{"whole", "/ab/image.png", "", http.StatusOK, [][2]int{{0, size}}, 1},
		{"first bytes", "/ab/image.png", "bytes=0-99", http.StatusPartialContent, [][2]int{{0, 100}}, 1},
		// Further on than is worth reading through: a GET from there.
		{"middle", "/ab/image.png", "bytes=500000-600000", http.StatusPartialContent, [][2]int{{500000, 600001}}, 2},
		{"suffix", "/ab/image.png", "bytes=-50", http.StatusPartialContent, [][2]int{{size - 50, size}}, 2},
		{"open end", "/ab/image.png", "bytes=1048000-", http.StatusPartialContent, [][2]int{{1048000, size}}, 2},
		{"last byte", "/ab/image.png", fmt.Sprintf("bytes=%d-%d", size-1, size-1), http.StatusPartialContent, [][2]int{{size - 1, size}}, 2},
		// The second range is 90 bytes further on: read through, no new GET.
		{"two near ranges", "/ab/image.png", "bytes=0-9,100-109", http.StatusPartialContent, [][2]int{{0, 10}, {100, 110}}, 1},
		// Backwards after a GET from further on: another.
		{"two ranges backwards", "/ab/image.png", "bytes=900000-900009,10-19", http.StatusPartialContent, [][2]int{{900000, 900010}, {10, 20}}, 3},
		{"beyond the end", "/ab/image.png", "bytes=2000000-", http.StatusRequestedRangeNotSatisfiable, nil, 1},
		{"empty object", "/ab/empty.png", "", http.StatusOK, [][2]int{{0, 0}}, 1},
		{"missing", "/ab/missing.png", "", http.StatusNotFound, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sequential: the request counts are the store's, shared.
			reqs.count()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, web.URL+tt.path, nil)
			if tt.rangeHdr != "" {
				req.Header.Set("Range", tt.rangeHdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			if got := reqs.count("GET", "GET range"); got != tt.wantGETs {
				t.Errorf("the store sent %d GETs, want %d", got, tt.wantGETs)
			}
			if tt.wantParts == nil {
				return
			}
			var parts [][]byte
			if len(tt.wantParts) == 1 {
				parts = [][]byte{body}
			} else {
				parts = multipartBodies(t, resp, body)
			}
			if len(parts) != len(tt.wantParts) {
				t.Fatalf("%d parts in the body, want %d", len(parts), len(tt.wantParts))
			}
			for i, p := range tt.wantParts {
				if !bytes.Equal(parts[i], data[p[0]:p[1]]) {
					t.Errorf("part %d: %d bytes that differ from bytes %d–%d", i, len(parts[i]), p[0], p[1])
				}
			}
		})
	}
}

// multipartBodies splits a multipart/byteranges response.
func multipartBodies(t *testing.T, resp *http.Response, body []byte) [][]byte {
	t.Helper()
	ct := resp.Header.Get("Content-Type")
	_, boundary, ok := strings.Cut(ct, "boundary=")
	if !ok {
		t.Fatalf("Content-Type %q is not multipart", ct)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
}

// TestReadsReuseOneResponse: small sequential reads and short skips share
// one GET; a seek back or far ahead opens a new range where it lands.
func TestReadsReuseOneResponse(t *testing.T) {
	t.Parallel()
	var reqs requests
	cfg := s3test.Start(t)
	cfg.HTTPClient = reqs.client()
	s := newStore(t, cfg)
	data := pattern(2 << 20)
	if err := s.Put(t.Context(), "ab/big.png", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	reqs.count()
	obj, err := s.Open(t.Context(), "ab/big.png")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = obj.Close() }()
	if got := reqs.take(); !slices.Equal(got, []string{"GET range"}) {
		t.Errorf("Open sent %q, want one ranged GET", got)
	}
	const KiB = 1024
	steps := []struct {
		name     string
		seek     int64 // from the start; -1: no seek
		read     int
		wantGETs int
	}{
		{"1,000 reads of 1 KiB within Open's range", -1, 1000 * KiB, 0},
		{"on across the end of Open's range", -1, 100 * KiB, 1},
		{"on after a short skip", 1200 * KiB, KiB, 0},
		{"back to the start", 0, 4 * KiB, 1},
		{"on after a short skip in Open's range", 200 * KiB, KiB, 0},
		{"far ahead", 1500 * KiB, KiB, 1},
		{"to the end", -1, 2048*KiB - 1501*KiB, 0},
	}
	for _, st := range steps {
		if st.seek >= 0 {
			if _, err := obj.Seek(st.seek, io.SeekStart); err != nil {
				t.Fatalf("%s: Seek: %v", st.name, err)
			}
		}
		start, _ := obj.Seek(0, io.SeekCurrent)
		got := make([]byte, 0, st.read)
		buf := make([]byte, 1024)
		for len(got) < st.read {
			n, err := obj.Read(buf[:min(len(buf), st.read-len(got))])
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("%s: Read: %v", st.name, err)
			}
		}
		if !bytes.Equal(got, data[start:start+int64(st.read)]) {
			t.Errorf("%s: read bytes that differ from %d–%d", st.name, start, start+int64(st.read))
		}
		if n := reqs.count("GET", "GET range"); n != st.wantGETs {
			t.Errorf("%s: %d GETs, want %d", st.name, n, st.wantGETs)
		}
	}
	if n, err := obj.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if err := obj.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := obj.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after Close succeeded")
	}
}

// TestReplacedWhileOpen: an object replaced or deleted after Open fails
// the next GET instead of mixing two versions; one that Open fetched whole
// reads as it was.
func TestReplacedWhileOpen(t *testing.T) {
	t.Parallel()
	s := newStore(t, s3test.Start(t))
	large := pattern(1<<20 + 100) // more than Open fetches
	put := func(key string, data []byte) {
		t.Helper()
		if err := s.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	open := func(key string) blob.Object {
		t.Helper()
		obj, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = obj.Close() })
		return obj
	}

	put("x/small", []byte("first version"))
	obj := open("x/small")
	put("x/small", []byte("second version"))
	if got, err := io.ReadAll(obj); err != nil || string(got) != "first version" {
		t.Errorf("read %q, %v of a small object replaced after Open; want the version opened", got, err)
	}

	put("x/large", large)
	obj = open("x/large")
	put("x/large", bytes.ToUpper(large))
	if got, err := io.ReadAll(obj); err == nil {
		t.Errorf("read %d bytes of a replaced object, want an error", len(got))
	} else if !strings.Contains(err.Error(), "replaced") {
		t.Errorf("read of a replaced object error = %v, want one saying so", err)
	}

	put("x/large", large)
	obj = open("x/large")
	if err := s.Delete(t.Context(), "x/large"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(obj); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("read of a deleted object error = %v, want ErrNotFound", err)
	}
}

// TestFolderIsNoObject: on the posix backend "ab/x" makes a folder "ab";
// it is not an object.
func TestFolderIsNoObject(t *testing.T) {
	t.Parallel()
	s := newStore(t, s3test.Start(t))
	if err := s.Put(t.Context(), "ab/x.png", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if obj, err := s.Open(t.Context(), "ab"); !errors.Is(err, blob.ErrNotFound) {
		if obj != nil {
			_ = obj.Close()
		}
		t.Errorf("Open of a folder error = %v, want ErrNotFound", err)
	}
}

func TestPresignGet(t *testing.T) {
	t.Parallel()
	cfg := s3test.Start(t)
	s := newStore(t, cfg)
	data := pattern(300 << 10)
	if err := s.Put(t.Context(), "ab/shown.png", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, []byte, http.Header) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body, resp.Header
	}

	url, err := s.PresignGet(t.Context(), "ab/shown.png", time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if strings.Contains(url, cfg.SecretAccessKey) {
		t.Errorf("the URL holds a secret")
	}
	status, body, hdr := get(url)
	if status != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("GET of the presigned URL: %d with %d bytes, want 200 with the %d put", status, len(body), len(data))
	}
	if ct := hdr.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type %q, want image/png", ct)
	}
	// The signature covers the key: another key, or a longer expiry, is
	// refused.
	if status, _, _ := get(strings.Replace(url, "shown.png", "other.png", 1)); status != http.StatusForbidden {
		t.Errorf("GET with the key changed: %d, want 403", status)
	}
	if status, _, _ := get(strings.Replace(url, "X-Amz-Expires=60", "X-Amz-Expires=600", 1)); status != http.StatusForbidden {
		t.Errorf("GET with the expiry changed: %d, want 403", status)
	}

	// Expiry.
	short, err := s.PresignGet(t.Context(), "ab/shown.png", time.Second)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if status, _, _ := get(short); status != http.StatusForbidden {
		t.Errorf("GET of an expired URL: %d, want 403", status)
	}

	bad := []struct {
		key string
		ttl time.Duration
	}{
		{"../etc/passwd", time.Minute},
		{"ab/shown.png", 0},
		{"ab/shown.png", -time.Second},
		{"ab/shown.png", 8 * 24 * time.Hour},
	}
	for _, b := range bad {
		if url, err := s.PresignGet(t.Context(), b.key, b.ttl); err == nil {
			t.Errorf("PresignGet(%q, %v) = %s, want an error", b.key, b.ttl, url)
		}
	}
	if _, err := s.PresignGet(t.Context(), "../x", time.Minute); !errors.Is(err, blob.ErrInvalidKey) {
		t.Errorf("PresignGet of a hostile key error = %v, want ErrInvalidKey", err)
	}
}

// TestListPages: List walks every page of a listing longer than S3's
// largest page.
func TestListPages(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	cfg := srv.Bucket(t)
	cfg.Prefix = "images"
	const objects = 1100
	s := newStore(t, cfg)
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range keys {
				if err := s.Put(t.Context(), k, strings.NewReader(k)); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	want := make([]string, objects)
	for i := range want {
		want[i] = fmt.Sprintf("%02x/%04d.png", i%256, i)
		keys <- want[i]
	}
	close(keys)
	wg.Wait()
	// An object beside the prefix is not listed.
	other := cfg
	other.Prefix = "images2"
	if err := newStore(t, other).Put(t.Context(), "ab/x.png", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)

	for _, pageSize := range []int32{0, 100, 999} {
		t.Run(strconv.Itoa(int(pageSize)), func(t *testing.T) {
			t.Parallel()
			var reqs requests
			c := cfg
			c.ListPageSize = pageSize
			c.HTTPClient = reqs.client()
			ls := newStore(t, c)
			reqs.count()
			var got []string
			err := ls.List(t.Context(), func(key string, _ time.Time) error {
				got = append(got, key)
				return nil
			})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("List reported %d keys, want the %d put", len(got), len(want))
			}
			size := int(pageSize)
			if size == 0 {
				size = 1000
			}
			if n, want := reqs.count("LIST"), (objects+size-1)/size; n != want {
				t.Errorf("List sent %d requests, want %d pages", n, want)
			}
		})
	}
}

// TestPrefixesDoNotMix: stores under different prefixes of one bucket,
// "img" and "img2" included, never see or touch each other's objects; a
// store without a prefix sees them all under their full names.
func TestPrefixesDoNotMix(t *testing.T) {
	t.Parallel()
	cfg := s3test.Start(t)
	stores := map[string]*s3blob.Store{}
	for _, p := range []string{"img", "img2", "a/b"} {
		c := cfg
		c.Prefix = p
		stores[p] = newStore(t, c)
	}
	for p, s := range stores {
		if err := s.Put(t.Context(), "ab/x.png", strings.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := stores["img"].Delete(t.Context(), "ab/x.png"); err != nil {
		t.Fatal(err)
	}
	if err := stores["img"].Put(t.Context(), "ab/only-img.png", strings.NewReader("img")); err != nil {
		t.Fatal(err)
	}
	for p, s := range stores {
		obj, err := s.Open(t.Context(), "ab/x.png")
		if p == "img" {
			if !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%s: Open of its deleted object error = %v, want ErrNotFound", p, err)
			}
		} else if err != nil {
			t.Errorf("%s: Open after another prefix deleted the same key: %v", p, err)
		} else {
			got, _ := io.ReadAll(obj)
			_ = obj.Close()
			if string(got) != p {
				t.Errorf("%s: read %q, want its own %q", p, got, p)
			}
		}
		var keys []string
		if err := s.List(t.Context(), func(k string, _ time.Time) error { keys = append(keys, k); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []string{"ab/x.png"}
		if p == "img" {
			want = []string{"ab/only-img.png"}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("%s: List = %q, want %q", p, keys, want)
		}
	}
	var all []string
	if err := newStore(t, cfg).List(t.Context(), func(k string, _ time.Time) error { all = append(all, k); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	if want := []string{"a/b/ab/x.png", "img/ab/only-img.png", "img2/ab/x.png"}; !slices.Equal(all, want) {
		t.Errorf("List without a prefix = %q, want %q", all, want)
	}
}

// TestCleanTemps: multipart uploads that a dead process left are aborted
// once older than the cut-off; young ones, and those outside the store's
// prefix, stay.
func TestCleanTemps(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	cfg := srv.Bucket(t)
	cfg.Prefix = "images"
	s := newStore(t, cfg)
	raw := srv.Client()
	start := func(key string) {
		t.Helper()
		up, err := raw.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: &cfg.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: &cfg.Bucket, Key: &key, UploadId: up.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader(pattern(1000))}); err != nil {
			t.Fatal(err)
		}
	}
	start("images/ab/dead.png")
	start("images/cd/dead-too.png")
	start("others/ab/dead.png")
	uploads := func() []string {
		t.Helper()
		out, err := raw.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &cfg.Bucket})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		slices.Sort(keys)
		return keys
	}

	if n, err := s.CleanTemps(t.Context(), time.Hour); err != nil || n != 0 {
		t.Errorf("CleanTemps(1h) = %d, %v; want 0, nil (the uploads are young)", n, err)
	}
	if got := uploads(); len(got) != 3 {
		t.Errorf("uploads after CleanTemps(1h) = %q, want all three", got)
	}
	time.Sleep(1100 * time.Millisecond) // the server's times have whole seconds
	if n, err := s.CleanTemps(t.Context(), time.Millisecond); err != nil || n != 2 {
		t.Errorf("CleanTemps(1ms) = %d, %v; want 2, nil", n, err)
	}
	if got, want := uploads(), []string{"others/ab/dead.png"}; !slices.Equal(got, want) {
		t.Errorf("uploads left = %q, want %q", got, want)
	}
}

// TestNewExplainsFailures: New checks the bucket and says what is wrong,
// without repeating the secret.
func TestNewExplainsFailures(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	good := srv.Bucket(t)
	tests := []struct {
		name    string
		change  func(c *s3blob.Config)
		wantErr string
	}{
		{"missing bucket", func(c *s3blob.Config) { c.Bucket = "no-such-bucket" }, `bucket "no-such-bucket" does not exist`},
		{"wrong secret", func(c *s3blob.Config) { c.SecretAccessKey = "not-the-secret-" + testSecret }, "denied"},
		{"unknown key", func(c *s3blob.Config) { c.AccessKeyID = "nobody" }, "denied"},
		{"nothing listening", func(c *s3blob.Config) { c.Endpoint = "http://127.0.0.1:1" }, "cannot reach"},
		{"invalid config", func(c *s3blob.Config) { c.Prefix = "../x" }, "prefix"},
		{"part too small", func(c *s3blob.Config) { c.PartSize = 1 << 20 }, "part size"},
		{"page too large", func(c *s3blob.Config) { c.ListPageSize = 5000 }, "page size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := good
			tt.change(&c)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			s, err := s3blob.New(ctx, c)
			if err == nil {
				_ = s.Close()
				t.Fatalf("New succeeded, want an error with %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %q, want it to contain %q", err, tt.wantErr)
			}
			for _, secret := range []string{c.SecretAccessKey, good.SecretAccessKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("New error %q repeats the secret", err)
				}
			}
		})
	}
}
