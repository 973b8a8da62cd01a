package fileblob_test

import (
	"testing"

	"bulkgen/internal/blob/blobtest"
	"bulkgen/internal/blob/fileblob"
)

// The same benchmarks as s3blob's, for the README's comparison.

func BenchmarkPut(b *testing.B) { blobtest.BenchPut(b, benchStore(b)) }
func BenchmarkGet(b *testing.B) { blobtest.BenchGet(b, benchStore(b)) }

func benchStore(b *testing.B) *fileblob.Store {
	s, err := fileblob.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}
