package imagemeta

import (
	"runtime"
	"testing"
)

// FuzzRead feeds Read hostile files. It must never panic, and its memory
// use must follow the input's size, not length fields inside it. The seed
// corpus in testdata/fuzz/FuzzRead holds files Embed wrote in each format
// (including a JPEG with ExtendedXMP) and damaged variants.
func FuzzRead(f *testing.F) {
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0atEXtparameters"))
	f.Add([]byte("\xff\xd8\xff\xe1\xff\xffhttp://ns.adobe.com/xap/1.0/\x00"))
	f.Add([]byte("RIFF\xff\xff\xff\xffWEBPXMP \xff\xff\xff\x7f<x/>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, _ = Read(data)
		runtime.ReadMemStats(&after)
		// Generous: parsing XML and text allocates several times the input,
		// and compressed PNG text may inflate up to maxInflated. What this
		// catches is an allocation sized by a forged 32-bit length.
		limit := uint64(64*len(data)) + 3*maxInflated + 1<<20
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Errorf("Read of %d bytes allocated %d bytes (limit %d)", len(data), got, limit)
		}
	})
}
