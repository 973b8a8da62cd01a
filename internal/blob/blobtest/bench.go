package blobtest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"bulkgen/internal/blob"
)

// BenchSize is the object size of BenchPut and BenchGet: about a 1024×1024
// PNG from a provider.
const BenchSize = 200 << 10

// benchWorkers is how many goroutines per CPU the parallel benchmarks run,
// as many image jobs write at once.
const benchWorkers = 8

// BenchPut measures Put of BenchSize objects from a *bytes.Reader (what
// image jobs hand over), one at a time ("serial") and from benchWorkers
// goroutines per CPU at once ("parallel"). Each object gets a key of its
// own, so a backend cannot skip work for a key it has.
func BenchPut(b *testing.B, s blob.Store) {
	data := make([]byte, BenchSize)
	_, _ = io.ReadFull(rand.NewChaCha8([32]byte{1}), data)
	var n atomic.Int64
	put := func(b *testing.B) {
		key := fmt.Sprintf("bench/put/%08d.png", n.Add(1))
		if err := s.Put(b.Context(), key, bytes.NewReader(data)); err != nil {
			b.Fatalf("Put: %v", err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(BenchSize)
		for b.Loop() {
			put(b)
		}
		reportRate(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(BenchSize)
		b.SetParallelism(benchWorkers)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				put(b)
			}
		})
		reportRate(b)
	})
}

// BenchGet measures Open, reading the whole object and Close of BenchSize
// objects, serial and parallel as in BenchPut, over 64 objects put first.
func BenchGet(b *testing.B, s blob.Store) {
	const objects = 64
	data := make([]byte, BenchSize)
	_, _ = io.ReadFull(rand.NewChaCha8([32]byte{2}), data)
	keys := make([]string, objects)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/get/%02d.png", i)
		if err := s.Put(b.Context(), keys[i], bytes.NewReader(data)); err != nil {
			b.Fatalf("Put: %v", err)
		}
	}
	var n atomic.Int64
	get := func(b *testing.B, buf []byte) {
		key := keys[n.Add(1)%objects]
		obj, err := s.Open(b.Context(), key)
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		got, err := io.CopyBuffer(io.Discard, onlyReader{obj}, buf)
		if err != nil || got != BenchSize {
			b.Fatalf("read %d bytes, %v; want %d", got, err, BenchSize)
		}
		if err := obj.Close(); err != nil {
			b.Fatalf("Close: %v", err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(BenchSize)
		buf := make([]byte, 32<<10)
		for b.Loop() {
			get(b, buf)
		}
		reportRate(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(BenchSize)
		b.SetParallelism(benchWorkers)
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 32<<10)
			for pb.Next() {
				get(b, buf)
			}
		})
		reportRate(b)
	})
}

// reportRate adds objects per second to a benchmark's output.
func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "objects/s")
	}
}

// onlyReader hides WriterTo and the like, so the copy goes through Read
// in 32 KiB calls as http.ServeContent's does.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
