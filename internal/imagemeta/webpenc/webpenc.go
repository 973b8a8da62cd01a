// Package webpenc is a small pure-Go encoder for lossless WebP (VP8L).
//
// Go's standard library and golang.org/x/image only decode WebP, and the
// project builds without cgo, so bulkgen carries its own encoder. It favours
// being obviously correct over compressing hard: it uses the subtract-green
// and predictor transforms, greedy LZ77 back-references to the previous pixel
// and the pixel above, and real Huffman codes built from histograms. It has no
// color cache, cross-color transform or meta Huffman codes.
//
// The bitstream format is described in "WebP Lossless Bitstream
// Specification" (RFC 9649, section 3 onwards); the container in RFC 9649
// section 2.
package webpenc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
)

// MaxSize is the largest width or height VP8L can describe (14 bits).
const MaxSize = 1 << 14

// ErrSize is returned for empty images and images wider or taller than
// MaxSize.
var ErrSize = errors.New("webpenc: image size out of range")

// Encode writes m to w as a lossless WebP file in the simple format (a RIFF
// container holding a single VP8L chunk). Decoding the result yields m's
// pixels exactly, as non-premultiplied RGBA.
func Encode(w io.Writer, m image.Image) error {
	data, err := AppendVP8L(nil, m)
	if err != nil {
		return err
	}
	var hdr [20]byte
	pad := len(data) & 1
	copy(hdr[0:4], "RIFF")
	binary.LittleEndian.PutUint32(hdr[4:8], uint32(4+8+len(data)+pad))
	copy(hdr[8:12], "WEBP")
	copy(hdr[12:16], "VP8L")
	binary.LittleEndian.PutUint32(hdr[16:20], uint32(len(data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("webpenc: write header: %w", err)
	}
	if pad == 1 {
		data = append(data, 0)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("webpenc: write data: %w", err)
	}
	return nil
}

// AppendVP8L appends the VP8L bitstream of m (the payload of a "VP8L" chunk,
// without chunk header or padding) to dst.
func AppendVP8L(dst []byte, m image.Image) ([]byte, error) {
	b := m.Bounds()
	width, height := b.Dx(), b.Dy()
	if width < 1 || height < 1 || width > MaxSize || height > MaxSize {
		return dst, fmt.Errorf("%w: %dx%d", ErrSize, width, height)
	}
	pix, hasAlpha := argbPixels(m)

	bw := &bitWriter{buf: dst}
	bw.write(0x2f, 8) // VP8L signature
	bw.write(uint32(width-1), 14)
	bw.write(uint32(height-1), 14)
	bw.write(b2u(hasAlpha), 1)
	bw.write(0, 3) // version

	// Transforms are listed in the order the encoder applies them; the
	// decoder undoes them in reverse.
	bw.write(1, 1)
	bw.write(transformSubtractGreen, 2)
	subtractGreen(pix)

	bw.write(1, 1)
	bw.write(transformPredictor, 2)
	bw.write(predictorBits-2, 3)
	modes, tilesW, tilesH := choosePredictors(pix, width, height)
	writeImage(bw, modes, tilesW, tilesH, false)
	pix = predictResiduals(pix, width, height, modes)

	bw.write(0, 1) // no more transforms
	writeImage(bw, pix, width, height, true)
	return bw.flush(), nil
}

const (
	transformPredictor     = 0
	transformSubtractGreen = 2
)

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// argbPixels returns m's pixels as non-premultiplied 0xAARRGGBB words in
// row-major order, and whether any pixel is not fully opaque.
func argbPixels(m image.Image) ([]uint32, bool) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	pix := make([]uint32, 0, w*h)
	alpha := false
	switch m := m.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for i := 0; i < len(row); i += 4 {
				pix = append(pix, uint32(row[i+3])<<24|uint32(row[i])<<16|uint32(row[i+1])<<8|uint32(row[i+2]))
				alpha = alpha || row[i+3] != 0xff
			}
		}
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:4*w]
			for i := 0; i < len(row); i += 4 {
				if row[i+3] == 0xff {
					pix = append(pix, 0xff000000|uint32(row[i])<<16|uint32(row[i+1])<<8|uint32(row[i+2]))
					continue
				}
				alpha = true
				c := color.NRGBAModel.Convert(color.RGBA{row[i], row[i+1], row[i+2], row[i+3]}).(color.NRGBA)
				pix = append(pix, uint32(c.A)<<24|uint32(c.R)<<16|uint32(c.G)<<8|uint32(c.B))
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(m.At(x, y)).(color.NRGBA)
				pix = append(pix, uint32(c.A)<<24|uint32(c.R)<<16|uint32(c.G)<<8|uint32(c.B))
				alpha = alpha || c.A != 0xff
			}
		}
	}
	return pix, alpha
}

// subtractGreen applies the subtract-green transform in place.
func subtractGreen(pix []uint32) {
	for i, p := range pix {
		g := (p >> 8) & 0xff
		rb := (p & 0x00ff00ff) | 0xff00ff00
		rb -= g<<16 | g
		pix[i] = p&0xff00ff00 | rb&0x00ff00ff
	}
}

// bitWriter packs values least significant bit first, as VP8L requires.
type bitWriter struct {
	buf  []byte
	acc  uint64
	nacc uint
}

// write appends the low n bits of v (n <= 32).
func (bw *bitWriter) write(v uint32, n uint) {
	bw.acc |= uint64(v) << bw.nacc
	bw.nacc += n
	for bw.nacc >= 32 {
		bw.buf = binary.LittleEndian.AppendUint32(bw.buf, uint32(bw.acc))
		bw.acc >>= 32
		bw.nacc -= 32
	}
}

// flush pads the last byte with zero bits and returns the buffer.
func (bw *bitWriter) flush() []byte {
	for bw.nacc > 0 {
		bw.buf = append(bw.buf, byte(bw.acc))
		bw.acc >>= 8
		bw.nacc -= min(bw.nacc, 8)
	}
	return bw.buf
}
