package webpenc

import (
	"math/bits"
	"slices"
)

// Alphabet sizes of the five prefix codes of a VP8L Huffman group
// (RFC 9649 section 3.7.2.2), without a color cache.
const (
	numLiterals  = 256
	numLengths   = 24
	numDistances = 40
	maxCodeLen   = 15 // longest code a VP8L prefix code may use
	maxCLCodeLen = 7  // longest code of the code-length code
)

// codeLengthOrder is the order in which code-length code lengths are sent.
var codeLengthOrder = [19]int{17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// prefixCode is a canonical Huffman code ready for writing symbols.
type prefixCode struct {
	// lengths and codes (bit-reversed, so they can be written LSB first)
	// per symbol. A code with a single used symbol has all-zero lengths:
	// the decoder then reads no bits for it.
	lengths []uint8
	codes   []uint16
}

func (c *prefixCode) put(bw *bitWriter, sym int) {
	bw.write(uint32(c.codes[sym]), uint(c.lengths[sym]))
}

// huffmanLengths returns code lengths for a histogram, limited to maxLen
// bits. When the plain Huffman tree is too deep, small counts are raised
// and the tree rebuilt, which flattens it; with all counts equal the depth is
// ceil(log2(symbols)), so this ends.
func huffmanLengths(hist []uint32, maxLen int) []uint8 {
	lengths := make([]uint8, len(hist))
	type leaf struct {
		sym   int
		count uint64
	}
	var leaves []leaf
	for s, c := range hist {
		if c > 0 {
			leaves = append(leaves, leaf{s, uint64(c)})
		}
	}
	switch len(leaves) {
	case 0:
		return lengths
	case 1:
		lengths[leaves[0].sym] = 1
		return lengths
	}
	n := len(leaves)
	weight := make([]uint64, 2*n-1)
	parent := make([]int, 2*n-1)
	depth := make([]uint8, 2*n-1)
	for floor := uint64(1); ; floor *= 2 {
		cur := slices.Clone(leaves)
		for i := range cur {
			cur[i].count = max(cur[i].count, floor)
		}
		slices.SortFunc(cur, func(a, b leaf) int {
			if a.count != b.count {
				if a.count < b.count {
					return -1
				}
				return 1
			}
			return a.sym - b.sym
		})
		for i, l := range cur {
			weight[i] = l.count
		}
		// Two-queue construction: leaves sorted by weight, and internal
		// nodes, which are created in non-decreasing weight order.
		li, ni := 0, n
		pick := func(next int) int {
			if li < n && (ni >= next || weight[li] <= weight[ni]) {
				li++
				return li - 1
			}
			ni++
			return ni - 1
		}
		for next := n; next < 2*n-1; next++ {
			a := pick(next)
			b := pick(next)
			weight[next] = weight[a] + weight[b]
			parent[a], parent[b] = next, next
		}
		depth[2*n-2] = 0
		deepest := uint8(0)
		for i := 2*n - 3; i >= 0; i-- {
			depth[i] = depth[parent[i]] + 1
			deepest = max(deepest, depth[i])
		}
		if int(deepest) <= maxLen {
			for i, l := range cur {
				lengths[l.sym] = depth[i]
			}
			return lengths
		}
	}
}

// canonical assigns canonical codes to lengths, the same way the decoder
// does, and bit-reverses them for LSB-first writing.
func canonical(lengths []uint8) prefixCode {
	var count [maxCodeLen + 1]int
	used := 0
	for _, l := range lengths {
		count[l]++
		if l > 0 {
			used++
		}
	}
	pc := prefixCode{lengths: slices.Clone(lengths), codes: make([]uint16, len(lengths))}
	if used == 1 {
		clear(pc.lengths)
		return pc
	}
	count[0] = 0
	var next [maxCodeLen + 1]int
	code := 0
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for s, l := range lengths {
		if l > 0 {
			c := next[l]
			next[l]++
			pc.codes[s] = uint16(bits.Reverse16(uint16(c)) >> (16 - l))
		}
	}
	return pc
}

// writeCode writes the prefix code for hist (alphabet len(hist)) and returns
// it. One or two used symbols below 256 use the "simple" form.
func writeCode(bw *bitWriter, hist []uint32) prefixCode {
	var syms []int
	for s, c := range hist {
		if c > 0 {
			syms = append(syms, s)
			if len(syms) > 2 {
				break
			}
		}
	}
	if len(syms) == 0 {
		// An unused code still needs a valid tree: a single symbol 0.
		syms = []int{0}
	}
	if len(syms) <= 2 && syms[len(syms)-1] < 256 {
		bw.write(1, 1) // simple code
		bw.write(uint32(len(syms)-1), 1)
		if syms[0] < 2 {
			bw.write(0, 1)
			bw.write(uint32(syms[0]), 1)
		} else {
			bw.write(1, 1)
			bw.write(uint32(syms[0]), 8)
		}
		pc := prefixCode{lengths: make([]uint8, len(hist)), codes: make([]uint16, len(hist))}
		if len(syms) == 2 {
			bw.write(uint32(syms[1]), 8)
			pc.lengths[syms[0]], pc.lengths[syms[1]] = 1, 1
			pc.codes[syms[1]] = 1
		}
		return pc
	}

	lengths := huffmanLengths(hist, maxCodeLen)
	bw.write(0, 1) // normal code
	writeLengths(bw, lengths)
	return canonical(lengths)
}

// clToken is one symbol of the code-length code with its repeat argument.
type clToken struct {
	sym   uint8
	extra uint8
}

// writeLengths sends code lengths run-length coded with the code-length
// code (symbols 0-15 literal, 16 repeat previous, 17/18 runs of zeros).
func writeLengths(bw *bitWriter, lengths []uint8) {
	var tokens []clToken
	prev := uint8(8) // the decoder's initial "previous non-zero length"
	for i := 0; i < len(lengths); {
		v := lengths[i]
		run := 1
		for i+run < len(lengths) && lengths[i+run] == v {
			run++
		}
		i += run
		if v == 0 {
			for run >= 3 {
				if run >= 11 {
					r := min(run, 138)
					tokens = append(tokens, clToken{18, uint8(r - 11)})
					run -= r
				} else {
					r := min(run, 10)
					tokens = append(tokens, clToken{17, uint8(r - 3)})
					run -= r
				}
			}
		} else {
			if v != prev {
				tokens = append(tokens, clToken{v, 0})
				prev = v
				run--
			}
			for run >= 3 {
				r := min(run, 6)
				tokens = append(tokens, clToken{16, uint8(r - 3)})
				run -= r
			}
		}
		for ; run > 0; run-- {
			tokens = append(tokens, clToken{v, 0})
		}
	}

	var hist [19]uint32
	for _, t := range tokens {
		hist[t.sym]++
	}
	clLengths := huffmanLengths(hist[:], maxCLCodeLen)
	n := len(codeLengthOrder)
	for n > 4 && clLengths[codeLengthOrder[n-1]] == 0 {
		n--
	}
	bw.write(uint32(n-4), 4)
	for _, s := range codeLengthOrder[:n] {
		bw.write(uint32(clLengths[s]), 3)
	}
	bw.write(0, 1) // code lengths for the whole alphabet follow
	cl := canonical(clLengths)
	for _, t := range tokens {
		cl.put(bw, int(t.sym))
		switch t.sym {
		case 16:
			bw.write(uint32(t.extra), 2)
		case 17:
			bw.write(uint32(t.extra), 3)
		case 18:
			bw.write(uint32(t.extra), 7)
		}
	}
}
