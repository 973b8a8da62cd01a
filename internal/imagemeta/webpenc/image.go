package webpenc

import "math/bits"

const (
	minMatch = 3    // shorter repeats are cheaper as literals
	maxMatch = 4096 // longest back-reference VP8L can express
)

// token is a literal pixel (length 0) or a back-reference of length pixels
// to distance pixels back.
type token struct {
	argb     uint32
	length   uint16
	distCode uint16
}

// matchLen counts how many pixels from i repeat those dist pixels earlier.
func matchLen(pix []uint32, i, dist int) int {
	limit := min(len(pix)-i, maxMatch)
	n := 0
	for n < limit && pix[i+n] == pix[i+n-dist] {
		n++
	}
	return n
}

// tokenize turns pixels into literals and greedy back-references to the
// previous pixel or the pixel above, the two repeats that flat areas,
// stripes and predictor residuals produce most.
func tokenize(pix []uint32, width int) []token {
	toks := make([]token, 0, len(pix)/4+16)
	for i := 0; i < len(pix); {
		best, code := 0, 0
		if i >= 1 {
			// Distance code 2 is the plane code for (dx=1, dy=0).
			best, code = matchLen(pix, i, 1), 2
		}
		if i >= width && width > 1 {
			// Distance code 1 is the plane code for (dx=0, dy=1).
			if n := matchLen(pix, i, width); n > best {
				best, code = n, 1
			}
		}
		if best >= minMatch {
			toks = append(toks, token{length: uint16(best), distCode: uint16(code)})
			i += best
			continue
		}
		toks = append(toks, token{argb: pix[i]})
		i++
	}
	return toks
}

// prefixValue splits a length or distance code v >= 1 into its prefix
// symbol and extra bits (RFC 9649 section 3.6.2).
func prefixValue(v int) (sym int, nExtra uint, extra uint32) {
	x := v - 1
	if x < 4 {
		return x, 0, 0
	}
	hb := bits.Len(uint(x)) - 1
	second := (x >> (hb - 1)) & 1
	nExtra = uint(hb - 1)
	return 2*hb + second, nExtra, uint32(x) & (1<<nExtra - 1)
}

// writeImage writes an entropy-coded image: the main image when topLevel,
// else a transform's sub-image. It uses one Huffman group and no color cache.
func writeImage(bw *bitWriter, pix []uint32, width, height int, topLevel bool) {
	_ = height // implied by len(pix)
	toks := tokenize(pix, width)

	green := make([]uint32, numLiterals+numLengths)
	red := make([]uint32, numLiterals)
	blue := make([]uint32, numLiterals)
	alpha := make([]uint32, numLiterals)
	dist := make([]uint32, numDistances)
	for _, t := range toks {
		if t.length == 0 {
			alpha[t.argb>>24]++
			red[t.argb>>16&0xff]++
			green[t.argb>>8&0xff]++
			blue[t.argb&0xff]++
			continue
		}
		ls, _, _ := prefixValue(int(t.length))
		green[numLiterals+ls]++
		ds, _, _ := prefixValue(int(t.distCode))
		dist[ds]++
	}

	bw.write(0, 1) // no color cache
	if topLevel {
		bw.write(0, 1) // no meta prefix codes: one group for the image
	}
	gc := writeCode(bw, green)
	rc := writeCode(bw, red)
	bc := writeCode(bw, blue)
	ac := writeCode(bw, alpha)
	dc := writeCode(bw, dist)

	for _, t := range toks {
		if t.length == 0 {
			gc.put(bw, int(t.argb>>8&0xff))
			rc.put(bw, int(t.argb>>16&0xff))
			bc.put(bw, int(t.argb&0xff))
			ac.put(bw, int(t.argb>>24))
			continue
		}
		ls, ln, lx := prefixValue(int(t.length))
		gc.put(bw, numLiterals+ls)
		bw.write(lx, ln)
		ds, dn, dx := prefixValue(int(t.distCode))
		dc.put(bw, ds)
		bw.write(dx, dn)
	}
}
