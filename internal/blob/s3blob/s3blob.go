// Package s3blob is the blob.Store on an S3-compatible bucket (AWS S3,
// versitygw, MinIO, Ceph, …), for several machines sharing one store.
//
// Put sends an object of up to one part (Config.PartSize, 8 MiB by
// default) with a single PutObject and anything larger as a multipart
// upload, one part in memory at a time; S3 makes either visible whole or
// not at all, and a failed multipart upload is aborted. Open is one
// ranged GetObject of the first MiB, which gives the size and time and,
// for most images, every byte; later reads stream one ranged GetObject for
// as long as they go forward, so http.ServeContent gets random access
// without a request per Read. List pages through ListObjectsV2,
// PresignGet signs GET URLs, and CleanTemps aborts multipart uploads that
// a dead process left behind.
//
// The package talks to S3 with only the SDK's s3 client and static
// credentials; the AWS shared config files, profiles and instance roles
// are not read (see ParseURL for what is).
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"bulkgen/internal/blob"
)

// MaxPresignTTL is the longest a presigned URL can stay valid (SigV4).
const MaxPresignTTL = 7 * 24 * time.Hour

// maxParts is S3's limit on the parts of one multipart upload.
const maxParts = 10000

// Store is a blob.Store on one bucket, under an optional prefix.
type Store struct {
	client    *s3.Client
	presign   *s3.PresignClient
	bucket    string
	prefix    string // "" or Config.Prefix + "/"
	partSize  int64
	pageSize  int32
	transport *http.Transport // ours to close; nil when Config.HTTPClient was given
}

// New checks cfg and makes sure the bucket is there and the credentials
// may use it, so that a wrong setting shows at start-up rather than at the
// first image. Call Close when done.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	s := &Store{bucket: cfg.Bucket, partSize: cfg.PartSize, pageSize: cfg.ListPageSize}
	if cfg.Prefix != "" {
		s.prefix = cfg.Prefix + "/"
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.pageSize == 0 {
		s.pageSize = 1000
	}
	var httpClient s3.HTTPClient = cfg.HTTPClient
	if cfg.HTTPClient == nil {
		// Go's default keeps two idle connections per host, and the SDK's
		// ten; a server runs dozens of image jobs at once against one
		// endpoint, and each would otherwise dial anew.
		s.transport = http.DefaultTransport.(*http.Transport).Clone()
		s.transport.MaxIdleConns = 256
		s.transport.MaxIdleConnsPerHost = 256
		httpClient = &http.Client{Transport: s.transport}
	}
	creds := aws.Credentials{
		AccessKeyID:     cfg.AccessKeyID,
		SecretAccessKey: cfg.SecretAccessKey,
		SessionToken:    cfg.SessionToken,
		Source:          "s3blob.Config",
	}
	opts := s3.Options{
		Region:       cfg.Region,
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		UsePathStyle: cfg.PathStyle,
		HTTPClient:   httpClient,
		// The SDK's default adds CRC32 checksums to every upload, which
		// not every S3-compatible server accepts. Integrity does not
		// depend on them: over HTTP the SigV4 signature covers the body's
		// SHA-256, over HTTPS TLS does, and keys are content hashes that
		// callers check.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimSuffix(cfg.Endpoint, "/"))
	}
	s.client = s3.New(opts)
	s.presign = s3.NewPresignClient(s.client)

	// A ListObjectsV2 of one key, not a HeadBucket: both need the same
	// permission (s3:ListBucket, which List needs too), but the answer to
	// a HEAD has no body, so it cannot say why it failed; versitygw, for
	// one, answers an unknown access key with the 404 of a missing bucket.
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)}
	if s.prefix != "" {
		in.Prefix = &s.prefix
	}
	if _, err := s.client.ListObjectsV2(ctx, in); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("s3 blob store: %w", bucketError(cfg, err))
	}
	return s, nil
}

// bucketError says in words why the first request to the bucket failed.
func bucketError(cfg Config, err error) error {
	where := "AWS S3"
	if cfg.Endpoint != "" {
		where = cfg.Endpoint
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot reach %s for bucket %q: %w", where, cfg.Bucket, err)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("bucket %q at %s: %w", cfg.Bucket, where, err)
	}
	switch ae.ErrorCode() {
	case "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist at %s", cfg.Bucket, where)
	case "InvalidAccessKeyId", "XAdminUserNotFound":
		return fmt.Errorf("access to bucket %q at %s denied: %s does not know the access key ID in AWS_ACCESS_KEY_ID", cfg.Bucket, where, where)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("access to bucket %q at %s denied: AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID", cfg.Bucket, where)
	case "AccessDenied":
		return fmt.Errorf("access to bucket %q at %s denied: the key may not list the bucket (s3:ListBucket)", cfg.Bucket, where)
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.Response != nil {
			if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
				return fmt.Errorf("bucket %q is in region %s, not %s: set region=%s", cfg.Bucket, r, cfg.Region, r)
			}
		}
		return fmt.Errorf("bucket %q at %s is in another region than %s: set region=…: %w", cfg.Bucket, where, cfg.Region, err)
	}
	return fmt.Errorf("bucket %q at %s: %w", cfg.Bucket, where, err)
}

// Close releases the store's idle connections; call it once nothing uses
// the store any more. It does nothing to an HTTPClient given in Config.
func (s *Store) Close() error {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// objectKey returns the S3 key of a store key, after checking it.
func (s *Store) objectKey(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put implements blob.Store. A body of up to one part goes up in one
// PutObject, a longer one as a multipart upload. A body that can tell its
// length and be read at offsets (*bytes.Reader, *os.File: what image jobs
// and exports hand over) is sent from where it is, part by part, with no
// copy; any other is read one part at a time into memory.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	okey, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	ra, base, size, err := sized(r)
	switch {
	case err != nil:
		err = fmt.Errorf("read: %w", err)
	case ra != nil && size <= s.partSize:
		err = s.putObject(ctx, okey, io.NewSectionReader(ra, base, size), size)
	case ra != nil:
		err = s.putMultipart(ctx, okey, sectionParts(ra, base, size, s.partSize))
	default:
		err = s.putStream(ctx, okey, ctxReader{ctx, r})
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// sized returns r as an io.ReaderAt with the offset it is at and the
// number of bytes left, or a nil ReaderAt when r cannot tell them.
func sized(r io.Reader) (ra io.ReaderAt, base, size int64, err error) {
	ra, ok := r.(io.ReaderAt)
	sk, ok2 := r.(io.Seeker)
	if !ok || !ok2 {
		return nil, 0, 0, nil
	}
	base, err = sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, 0, nil // a pipe or the like: stream it
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, 0, nil
	}
	if _, err := sk.Seek(base, io.SeekStart); err != nil {
		return nil, 0, 0, err
	}
	if end < base {
		return nil, 0, 0, nil
	}
	return ra, base, end - base, nil
}

// putStream sends what r yields: the first part is read into memory, and
// if r ends within it the object goes up with one PutObject.
func (s *Store) putStream(ctx context.Context, okey string, r io.Reader) error {
	var first bytes.Buffer
	if _, err := first.ReadFrom(io.LimitReader(r, s.partSize)); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if int64(first.Len()) < s.partSize {
		return s.putObject(ctx, okey, bytes.NewReader(first.Bytes()), int64(first.Len()))
	}
	return s.putMultipart(ctx, okey, streamParts(first.Bytes(), r))
}

// putObject sends body, of size bytes, with one PutObject.
func (s *Store) putObject(ctx context.Context, okey string, body io.ReadSeeker, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &okey,
		Body:          body,
		ContentLength: &size,
		ContentType:   contentType(okey),
	})
	return err
}

// contentType is the media type S3 serves the object with (presigned
// URLs hand it straight to browsers), from the key's extension.
func contentType(key string) *string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return &t
	}
	return nil
}

// partFunc returns the next part of an upload and its length, or a nil
// body when there is no more. A body is read only until the next call.
type partFunc func() (body io.ReadSeeker, n int64, err error)

// sectionParts cuts size bytes of ra from base into parts of partSize.
func sectionParts(ra io.ReaderAt, base, size, partSize int64) partFunc {
	var off int64
	return func() (io.ReadSeeker, int64, error) {
		if off >= size {
			return nil, 0, nil
		}
		n := min(partSize, size-off)
		part := io.NewSectionReader(ra, base+off, n)
		off += n
		return part, n, nil
	}
}

// streamParts returns first, a full part, and then fills the same memory
// from r for each next part.
func streamParts(first []byte, r io.Reader) partFunc {
	pending, ended := true, false
	return func() (io.ReadSeeker, int64, error) {
		if pending {
			pending = false
			return bytes.NewReader(first), int64(len(first)), nil
		}
		if ended {
			return nil, 0, nil
		}
		n, err := io.ReadFull(r, first)
		switch err {
		case nil:
		case io.EOF:
			return nil, 0, nil
		case io.ErrUnexpectedEOF:
			ended = true // a short part is the last
		default:
			return nil, 0, fmt.Errorf("read: %w", err)
		}
		return bytes.NewReader(first[:n]), int64(n), nil
	}
}

// putMultipart uploads the parts next yields as one multipart upload. Any
// failure, a done ctx included, aborts the upload, so the server keeps no
// parts.
func (s *Store) putMultipart(ctx context.Context, okey string, next partFunc) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      &s.bucket,
		Key:         &okey,
		ContentType: contentType(okey),
	})
	if err != nil {
		return fmt.Errorf("start multipart upload: %w", err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// The abort must happen even when ctx is what stopped the upload.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &okey, UploadId: uploadID,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart upload (CleanTemps will retry): %w", aerr))
		}
	}()

	var parts []types.CompletedPart
	for {
		body, n, err := next()
		if err != nil {
			return err
		}
		if body == nil {
			break
		}
		if len(parts) == maxParts {
			return fmt.Errorf("more than %d parts of %d bytes", maxParts, s.partSize)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		num := int32(len(parts) + 1)
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        &s.bucket,
			Key:           &okey,
			UploadId:      uploadID,
			PartNumber:    &num,
			Body:          body,
			ContentLength: &n,
		})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", num, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: &num})
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &okey,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// isNotFound reports whether err is S3's answer for a missing key.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// Delete implements blob.Store. S3 answers a missing key with success too.
func (s *Store) Delete(ctx context.Context, key string) error {
	okey, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &okey})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List implements blob.Lister with ListObjectsV2 under the store's prefix,
// one page (Config.ListPageSize keys) in memory at a time. Keys that
// blob.ValidateKey refuses (folder markers "a/", objects put by other
// tools) are skipped.
func (s *Store) List(ctx context.Context, fn func(key string, modTime time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: &s.pageSize}
	if s.prefix != "" {
		in.Prefix = &s.prefix
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, obj := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), s.prefix)
			if !ok || blob.ValidateKey(key) != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list blobs: %w", err)
			}
			if err := fn(key, aws.ToTime(obj.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

// PresignGet implements blob.Presigner: a GET URL signed with the store's
// credentials, valid for ttl (at most MaxPresignTTL; SigV4 counts whole
// seconds, so ttl is rounded up to one). Signing is local: the object is
// not checked.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	okey, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxPresignTTL {
		return "", fmt.Errorf("presign %s: ttl %v, want more than 0 and at most %v", key, ttl, MaxPresignTTL)
	}
	ttl = max(ttl.Round(time.Second), time.Second)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &okey},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return req.URL, nil
}

// CleanTemps implements blob.TempCleaner. S3 keeps the parts of a
// multipart upload that was neither completed nor aborted (a process
// killed mid-Put) until someone aborts it, and bills for them; AWS can do
// that with a lifecycle rule, self-hosted servers (versitygw keeps them
// in a hidden folder) cannot. CleanTemps aborts the uploads under the
// store's prefix that were started and last added to more than olderThan
// ago, so a long upload still in progress is left alone.
func (s *Store) CleanTemps(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	aborted := 0
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket}
	if s.prefix != "" {
		in.Prefix = &s.prefix
	}
	pages := s3.NewListMultipartUploadsPaginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return aborted, fmt.Errorf("clean multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			key, ok := strings.CutPrefix(aws.ToString(u.Key), s.prefix)
			if !ok || blob.ValidateKey(key) != nil || !aws.ToTime(u.Initiated).Before(cutoff) {
				continue
			}
			stale, err := s.uploadIdleSince(ctx, u, cutoff)
			if err != nil {
				return aborted, fmt.Errorf("clean multipart uploads: %w", err)
			}
			if !stale {
				continue
			}
			_, err = s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: &s.bucket, Key: u.Key, UploadId: u.UploadId,
			})
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
				continue // completed or aborted meanwhile
			}
			if err != nil {
				return aborted, fmt.Errorf("clean multipart uploads: abort %s: %w", key, err)
			}
			aborted++
		}
	}
	return aborted, nil
}

// uploadIdleSince reports whether no part of u was uploaded after cutoff.
func (s *Store) uploadIdleSince(ctx context.Context, u types.MultipartUpload, cutoff time.Time) (bool, error) {
	parts := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: &s.bucket, Key: u.Key, UploadId: u.UploadId})
	for parts.HasMorePages() {
		page, err := parts.NextPage(ctx)
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, p := range page.Parts {
			if !aws.ToTime(p.LastModified).Before(cutoff) {
				return false, nil
			}
		}
	}
	return true, nil
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Interface guards.
var (
	_ blob.Store       = (*Store)(nil)
	_ blob.Lister      = (*Store)(nil)
	_ blob.Presigner   = (*Store)(nil)
	_ blob.TempCleaner = (*Store)(nil)
	_ blob.Object      = (*object)(nil)
)
