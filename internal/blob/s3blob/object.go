package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"bulkgen/internal/blob"
)

// firstRange is how much of an object Open asks for. Most images are
// smaller, so opening and reading one whole costs one request; a caller
// that only wants the size, or a range further on, wastes at most this
// much transfer.
const firstRange = 1 << 20

// skipLimit is the largest forward Seek that reads and drops bytes from
// the open response instead of sending a new ranged GET: below about a
// round trip's worth of transfer, reading on is cheaper.
const skipLimit = 256 << 10

// Open implements blob.Store. It sends one GetObject for the first
// firstRange bytes, which tells the object's size, time and ETag, and
// keeps the response for the first reads.
func (s *Store) Open(ctx context.Context, key string) (blob.Object, error) {
	okey, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	o := &object{ctx: ctx, s: s, key: key, okey: okey}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket,
		Key:    &okey,
		Range:  aws.String("bytes=0-" + strconv.Itoa(firstRange-1)),
	})
	switch {
	case isNotFound(err):
		return nil, fmt.Errorf("open %s: %w", key, blob.ErrNotFound)
	case isInvalidRange(err):
		// S3 refuses any range of an empty object.
		head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &okey})
		if isNotFound(err) {
			return nil, fmt.Errorf("open %s: %w", key, blob.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", key, err)
		}
		o.size, o.modTime, o.etag = aws.ToInt64(head.ContentLength), aws.ToTime(head.LastModified), aws.ToString(head.ETag)
		return o, nil
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	o.modTime, o.etag = aws.ToTime(out.LastModified), aws.ToString(out.ETag)
	o.size = aws.ToInt64(out.ContentLength) // a server that ignored the range sent it all
	if cr := aws.ToString(out.ContentRange); cr != "" {
		start, end, total, ok := parseContentRange(cr)
		if !ok || start != 0 || end+1 != aws.ToInt64(out.ContentLength) {
			_ = out.Body.Close()
			return nil, fmt.Errorf("open %s: the server answered the first range with Content-Range %q", key, cr)
		}
		o.size = total
	}
	o.body, o.bodyOff, o.bodyEnd = out.Body, 0, aws.ToInt64(out.ContentLength)
	return o, nil
}

// parseContentRange reads "bytes START-END/TOTAL".
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || total <= end {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// object is an open S3 object. Reads go through one GET response for as
// long as they follow each other: Open's first range, then one range from
// wherever reading goes on to the end. A Seek only moves the offset; the
// next Read skips ahead in the response or opens a new range there. Every
// later GET carries the ETag seen at Open (If-Match), so an object
// replaced in the meantime fails the read instead of mixing two versions.
// Not safe for concurrent use, like an *os.File's offset.
type object struct {
	ctx     context.Context // Open's: reads belong to the same request
	s       *Store
	key     string // the store's key, for errors
	okey    string // the S3 key
	size    int64
	modTime time.Time
	etag    string

	off     int64         // where the next Read starts
	body    io.ReadCloser // an open GET response, or nil
	bodyOff int64         // the offset of body's next byte
	bodyEnd int64         // the offset where body ends
	closed  bool
}

func (o *object) Size() int64        { return o.size }
func (o *object) ModTime() time.Time { return o.modTime }

// Read implements io.Reader.
func (o *object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, fmt.Errorf("read %s: %w", o.key, fs.ErrClosed)
	}
	if o.off >= o.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := o.position(); err != nil {
		return 0, err
	}
	if rest := o.bodyEnd - o.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	o.bodyOff += int64(n)
	switch {
	case err == io.EOF && o.bodyOff < o.bodyEnd:
		o.dropBody()
		return n, fmt.Errorf("read %s: response ended at byte %d, want %d: %w", o.key, o.bodyOff, o.bodyEnd, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		o.dropBody()
		return n, fmt.Errorf("read %s: %w", o.key, err)
	case o.bodyOff == o.bodyEnd:
		o.dropBody() // read to its end: its connection goes back to the pool
	}
	return n, nil
}

// position makes body an open response whose next byte is at off.
func (o *object) position() error {
	if o.body != nil && o.off != o.bodyOff {
		if gap := o.off - o.bodyOff; gap > 0 && gap <= skipLimit && o.off < o.bodyEnd {
			if _, err := io.CopyN(io.Discard, o.body, gap); err == nil {
				o.bodyOff = o.off
				return nil
			}
		}
		o.dropBody()
	}
	if o.body != nil {
		return nil
	}
	in := &s3.GetObjectInput{
		Bucket: &o.s.bucket,
		Key:    &o.okey,
		Range:  aws.String("bytes=" + strconv.FormatInt(o.off, 10) + "-"),
	}
	if o.etag != "" {
		in.IfMatch = &o.etag
	}
	out, err := o.s.client.GetObject(o.ctx, in)
	switch {
	case isNotFound(err):
		return fmt.Errorf("read %s: deleted since it was opened: %w", o.key, blob.ErrNotFound)
	case isPreconditionFailed(err):
		return fmt.Errorf("read %s: the object was replaced since it was opened", o.key)
	case err != nil:
		return fmt.Errorf("read %s: %w", o.key, err)
	}
	// A server that ignored If-Match or Range would send something else
	// than the rest of the object seen at Open.
	if want := o.size - o.off; aws.ToInt64(out.ContentLength) != want {
		_ = out.Body.Close()
		return fmt.Errorf("read %s: the server sent %d bytes from offset %d, want %d", o.key, aws.ToInt64(out.ContentLength), o.off, want)
	}
	o.body, o.bodyOff, o.bodyEnd = out.Body, o.off, o.size
	return nil
}

func isPreconditionFailed(err error) bool {
	return hasCodeOrStatus(err, "PreconditionFailed", http.StatusPreconditionFailed)
}

func isInvalidRange(err error) bool {
	return hasCodeOrStatus(err, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
}

// hasCodeOrStatus reports whether err is S3's error code, or an answer
// with status (HEAD answers have no body to carry a code).
func hasCodeOrStatus(err error, code string, status int) bool {
	if err == nil {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == code {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == status
}

// dropBody closes the open response, if any.
func (o *object) dropBody() {
	if o.body != nil {
		_ = o.body.Close()
		o.body = nil
	}
}

// Seek implements io.Seeker. It sends nothing: the next Read does.
func (o *object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, fmt.Errorf("seek %s: %w", o.key, fs.ErrClosed)
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %s: negative position %d", o.key, abs)
	}
	o.off = abs
	return abs, nil
}

// Close implements io.Closer.
func (o *object) Close() error {
	if o.closed {
		return fmt.Errorf("close %s: %w", o.key, fs.ErrClosed)
	}
	o.closed = true
	o.dropBody()
	return nil
}
