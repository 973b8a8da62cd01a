package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"bulkgen/internal/blob"
)

// skipLimit is the largest forward Seek that reads and drops bytes from
// the open response instead of sending a new ranged GET: below about a
// round trip's worth of transfer, reading on is cheaper.
const skipLimit = 256 << 10

// object is an open S3 object. Reads stream one ranged GetObject from the
// current offset to the end, reused for as long as reads follow each other;
// a Seek elsewhere only moves the offset, and the next Read opens a new
// range there. Every GET carries the ETag seen at Open (If-Match), so an
// object replaced in the meantime fails the read instead of mixing two
// versions. Not safe for concurrent use, like an *os.File's offset.
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
	bodyOff int64         // the offset body's next byte has
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
		o.dropBody()
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := o.position(); err != nil {
		return 0, err
	}
	if rest := o.size - o.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	o.bodyOff += int64(n)
	switch {
	case err == io.EOF && o.off < o.size:
		o.dropBody()
		return n, fmt.Errorf("read %s: response ended at byte %d of %d: %w", o.key, o.off, o.size, io.ErrUnexpectedEOF)
	case err == io.EOF:
		o.dropBody()
		return n, nil // the next Read reports io.EOF
	case err != nil:
		o.dropBody()
		return n, fmt.Errorf("read %s: %w", o.key, err)
	}
	return n, nil
}

// position makes body an open response whose next byte is at off.
func (o *object) position() error {
	if o.body != nil && o.bodyOff != o.off {
		if gap := o.off - o.bodyOff; gap > 0 && gap <= skipLimit {
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
	in := &s3.GetObjectInput{Bucket: &o.s.bucket, Key: &o.okey}
	if o.off > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(o.off, 10) + "-")
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
	o.body, o.bodyOff = out.Body, o.off
	return nil
}

func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
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
