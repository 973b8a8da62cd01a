package s3blob_test

import (
	"fmt"
	"sync/atomic"
	"testing"

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
		// Stores under prefixes of one bucket: each sees only its own.
		cfg := srv.Bucket(t)
		var n atomic.Int64
		blobtest.Run(t, func(t *testing.T) blob.Store {
			c := cfg
			c.Prefix = fmt.Sprintf("tenant-%d/images", n.Add(1))
			return newStore(t, c)
		})
	})
}
