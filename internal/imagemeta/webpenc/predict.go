package webpenc

// predictorBits is log2 of the predictor tile side (16 pixels): small enough
// to follow the picture, large enough that the mode image stays tiny.
const predictorBits = 4

// Predictor modes this encoder chooses between (RFC 9649 section 4.1). L and
// T win on flat areas and stripes, ClampAddSubtractFull on gradients.
const (
	modeL    = 1
	modeT    = 2
	modeFull = 12
)

var candidateModes = [...]uint32{modeL, modeT, modeFull}

// subPixels subtracts b from a per 8-bit channel, modulo 256.
func subPixels(a, b uint32) uint32 {
	ag := 0x00ff00ff + (a & 0xff00ff00) - (b & 0xff00ff00)
	rb := 0xff00ff00 + (a & 0x00ff00ff) - (b & 0x00ff00ff)
	return ag&0xff00ff00 | rb&0x00ff00ff
}

// clampAddSubtractFull is predictor mode 12: clamp(L + T - TL) per channel.
func clampAddSubtractFull(l, t, tl uint32) uint32 {
	var out uint32
	for shift := uint(0); shift < 32; shift += 8 {
		v := int32(l>>shift&0xff) + int32(t>>shift&0xff) - int32(tl>>shift&0xff)
		v = min(max(v, 0), 255)
		out |= uint32(v) << shift
	}
	return out
}

// predict returns the prediction for pixel i (not in the first row or
// column) under mode.
func predict(pix []uint32, i, width int, mode uint32) uint32 {
	switch mode {
	case modeL:
		return pix[i-1]
	case modeT:
		return pix[i-width]
	default:
		return clampAddSubtractFull(pix[i-1], pix[i-width], pix[i-width-1])
	}
}

// cost estimates how well a residual compresses: the sum of the channels'
// distances from zero, treating each as a signed byte.
func cost(r uint32) int {
	c := 0
	for shift := uint(0); shift < 32; shift += 8 {
		v := int(int8(r >> shift))
		if v < 0 {
			v = -v
		}
		c += v
	}
	return c
}

func nTiles(size int) int { return (size + 1<<predictorBits - 1) >> predictorBits }

// choosePredictors picks, per tile, the candidate mode with the smallest
// residual cost. It returns the mode image: one pixel per tile with the mode
// in the green channel, as the decoder reads it.
func choosePredictors(pix []uint32, width, height int) ([]uint32, int, int) {
	tw, th := nTiles(width), nTiles(height)
	modes := make([]uint32, tw*th)
	for ty := 0; ty < th; ty++ {
		for tx := 0; tx < tw; tx++ {
			best, bestCost := uint32(modeL), -1
			for _, mode := range candidateModes {
				c := 0
				for y := max(ty<<predictorBits, 1); y < min((ty+1)<<predictorBits, height); y++ {
					for x := max(tx<<predictorBits, 1); x < min((tx+1)<<predictorBits, width); x++ {
						i := y*width + x
						c += cost(subPixels(pix[i], predict(pix, i, width, mode)))
					}
				}
				if bestCost < 0 || c < bestCost {
					best, bestCost = mode, c
				}
			}
			modes[ty*tw+tx] = 0xff000000 | best<<8
		}
	}
	return modes, tw, th
}

// predictResiduals returns the residual image for the chosen modes. The
// first pixel is predicted as opaque black, the rest of the first row from
// the left and the first column from above, as the format fixes.
func predictResiduals(pix []uint32, width, height int, modes []uint32) []uint32 {
	out := make([]uint32, len(pix))
	out[0] = subPixels(pix[0], 0xff000000)
	for x := 1; x < width; x++ {
		out[x] = subPixels(pix[x], pix[x-1])
	}
	tw := nTiles(width)
	for y := 1; y < height; y++ {
		row := y * width
		out[row] = subPixels(pix[row], pix[row-width])
		tileRow := modes[(y>>predictorBits)*tw:]
		for x := 1; x < width; x++ {
			i := row + x
			mode := tileRow[x>>predictorBits] >> 8 & 0xff
			out[i] = subPixels(pix[i], predict(pix, i, width, mode))
		}
	}
	return out
}
