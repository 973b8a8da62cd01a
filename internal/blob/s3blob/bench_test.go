package s3blob_test

import (
	"testing"

	"bulkgen/internal/blob/blobtest"
	"bulkgen/internal/blob/s3blob/s3test"
)

// The same benchmarks as fileblob's, against versitygw on loopback (its
// posix backend on the same disk), for the README's comparison.

func BenchmarkPut(b *testing.B) { blobtest.BenchPut(b, newStore(b, s3test.Start(b))) }
func BenchmarkGet(b *testing.B) { blobtest.BenchGet(b, newStore(b, s3test.Start(b))) }
