package expand

import (
	"crypto/sha256"
	"encoding/binary"
)

// MaxSeed is the largest seed bulkgen derives or accepts as an offset base:
// Stability's documented maximum, the smallest among the providers that take
// seeds, so one seed means the same thing everywhere.
const MaxSeed = 4294967294

// DeriveSeed returns a seed in [1, MaxSeed] that depends only on parts, so
// a re-run of the same input produces the same seeds. Parts are length
// prefixed before hashing, so ("ab","c") and ("a","bc") differ. Zero is
// never returned because several providers read seed 0 as "random".
func DeriveSeed(parts ...string) int64 {
	// Hash one buffer built on the stack: this runs once per input row, and
	// a streaming hash.Hash would allocate for every part.
	var arr [1024]byte
	b := arr[:0]
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return int64(binary.BigEndian.Uint64(sum[:8])%MaxSeed) + 1
}

// choose picks one of n options for the variant or wildcard numbered id
// under seed. It hashes with SHA-256 like DeriveSeed, so choices are spread
// evenly and independent between the variants of one template, and it works
// on a stack buffer so that it does not allocate.
func choose(seed int64, id uint32, n int) int {
	if n <= 1 {
		return 0
	}
	var b [13]byte
	b[0] = 'v' // domain separation from DeriveSeed's input
	binary.BigEndian.PutUint64(b[1:9], uint64(seed))
	binary.BigEndian.PutUint32(b[9:13], id)
	sum := sha256.Sum256(b[:])
	return int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
}
