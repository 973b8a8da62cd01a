package s3test_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"bulkgen/internal/blob/s3blob/s3test"
)

// TestAge: the server reports the time Age sets, through HeadObject and
// ListObjectsV2 alike.
func TestAge(t *testing.T) {
	t.Parallel()
	srv := s3test.NewServer(t)
	cfg := srv.Bucket(t)
	c := srv.Client()
	key := "p/ab/x.png"
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &cfg.Bucket, Key: &key, Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	srv.Age(t, cfg.Bucket, key, 2*time.Hour)
	want := time.Now().Add(-2 * time.Hour)
	head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &cfg.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToTime(head.LastModified); got.Sub(want).Abs() > 2*time.Second {
		t.Errorf("HeadObject LastModified = %v, want about %v", got, want)
	}
	list, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &cfg.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || aws.ToTime(list.Contents[0].LastModified).Sub(want).Abs() > 2*time.Second {
		t.Errorf("ListObjectsV2 = %d objects, want one last modified about %v", len(list.Contents), want)
	}
}
