package blobgc_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"bulkgen/internal/blob"
	"bulkgen/internal/blob/s3blob"
	"bulkgen/internal/blob/s3blob/s3test"
	"bulkgen/internal/blobgc"
)

// TestSweepS3: the sweeper on an S3 store (versitygw) under a prefix
// removes old unreferenced image files and keeps the rest, as on a folder.
// Objects are aged through the server's posix folder, as S3 cannot
// backdate them.
func TestSweepS3(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	tests := []struct {
		name       string
		key        string
		age        time.Duration
		referenced bool
		putAgain   bool // put once more after ageing, as a new job would
		want       blobgc.Result
		wantKept   bool
	}{
		{name: "old orphan is removed", key: imageKey(1), age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1, Old: 1, Removed: 1, Bytes: int64(len(imageData(1)))}},
		{name: "old referenced file stays", key: imageKey(1), age: 2 * time.Hour, referenced: true,
			want: blobgc.Result{Scanned: 1, Old: 1}, wantKept: true},
		{name: "young orphan stays", key: imageKey(1), age: grace - time.Minute,
			want: blobgc.Result{Scanned: 1}, wantKept: true},
		{name: "old orphan put again stays", key: imageKey(1), age: 2 * time.Hour, putAgain: true,
			want: blobgc.Result{Scanned: 1}, wantKept: true},
		{name: "old object that is not an image stays", key: "exports/batch-1.zip", age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1}, wantKept: true},
		{name: "old orphan under the two-level layout is removed", key: twoLevel(imageKey(1)), age: 2 * time.Hour,
			want: blobgc.Result{Scanned: 1, Old: 1, Removed: 1, Bytes: int64(len(imageData(1)))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t) // the database; its folder store goes unused
			cfg := srv.Bucket(t)
			cfg.Prefix = "bulkgen/images"
			s, err := s3blob.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("s3blob.New: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if err := s.Put(t.Context(), tt.key, bytes.NewReader(imageData(1))); err != nil {
				t.Fatal(err)
			}
			srv.Age(t, cfg.Bucket, cfg.Prefix+"/"+tt.key, tt.age)
			if tt.putAgain {
				if err := s.Put(t.Context(), tt.key, bytes.NewReader(imageData(1))); err != nil {
					t.Fatal(err)
				}
			}
			if tt.referenced {
				b.reference(t, tt.key)
			}
			got, err := blobgc.Sweep(t.Context(), b.db, s, grace, nil)
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			if got != tt.want {
				t.Errorf("Sweep = %+v, want %+v", got, tt.want)
			}
			obj, err := s.Open(t.Context(), tt.key)
			if err == nil {
				_ = obj.Close()
			} else if !errors.Is(err, blob.ErrNotFound) {
				t.Fatal(err)
			}
			if kept := err == nil; kept != tt.wantKept {
				t.Errorf("object kept = %v, want %v", kept, tt.wantKept)
			}
		})
	}
}

// TestSweepS3AbortsDeadUploads: a multipart upload that a killed process
// left is aborted by the sweep (s3blob's CleanTemps) and counted in Temps.
func TestSweepS3AbortsDeadUploads(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	b := setup(t)
	cfg := srv.Bucket(t)
	cfg.Prefix = "images"
	s, err := s3blob.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3blob.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	key := cfg.Prefix + "/" + imageKey(1)
	if _, err := srv.Client().CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: &cfg.Bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	// Upload times have whole seconds; a grace of a millisecond then
	// makes the upload old.
	time.Sleep(1100 * time.Millisecond)
	got, err := blobgc.Sweep(t.Context(), b.db, s, time.Millisecond, nil)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if want := (blobgc.Result{Temps: 1}); got != want {
		t.Errorf("Sweep = %+v, want %+v", got, want)
	}
	out, err := srv.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &cfg.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d uploads left after the sweep, want none", len(out.Uploads))
	}
}
