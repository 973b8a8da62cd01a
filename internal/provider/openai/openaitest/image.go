package openaitest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"sync"
)

// imageCache keeps encoded test images by size and format: a batch of
// tests asks for the same few sizes over and over, and encoding a 2048 px
// image on every call would make the tests slow for no gain.
type imageCache struct {
	mu   sync.Mutex
	imgs map[string][]byte
}

// get returns an image of w×h pixels in format ("png", "jpeg", "webp");
// quality applies to JPEG.
func (c *imageCache) get(w, h int, format string, quality int) []byte {
	key := fmt.Sprintf("%dx%d/%s/%d", w, h, format, quality)
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.imgs[key]; ok {
		return b
	}
	var b []byte
	switch format {
	case "jpeg":
		b = encodeJPEG(w, h, quality)
	case "webp":
		b = encodeWebP(w, h)
	default:
		b = encodePNG(w, h)
	}
	if c.imgs == nil {
		c.imgs = map[string][]byte{}
	}
	c.imgs[key] = b
	return b
}

// scaleDown fits w×h inside maxEdge on its longer side, keeping the ratio.
func scaleDown(w, h, maxEdge int) (int, int) {
	if maxEdge <= 0 || (w <= maxEdge && h <= maxEdge) {
		return w, h
	}
	if w >= h {
		return maxEdge, max(1, h*maxEdge/w)
	}
	return max(1, w*maxEdge/h), maxEdge
}

var stripes = color.Palette{
	color.RGBA{0x1f, 0x4e, 0x79, 0xff},
	color.RGBA{0xf2, 0xa9, 0x00, 0xff},
}

// encodePNG draws diagonal stripes in two colours: a real, visibly
// non-blank image that encodes fast at any size. The palette is padded to
// 256 entries so that the encoder writes 8-bit rows by copying Pix; with 16
// colours or fewer it packs bits pixel by pixel, which is slow under -race.
func encodePNG(w, h int) []byte {
	palette := make(color.Palette, 256)
	for i := range palette {
		palette[i] = stripes[i%2]
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), palette)
	// Row y is row 0 shifted by y pixels, so every row is a copy out of
	// one long pattern (the stripes repeat every 64 pixels).
	pattern := make([]uint8, w+64)
	for x := range pattern {
		pattern[x] = uint8((x / 32) % 2)
	}
	for y := range h {
		copy(img.Pix[y*img.Stride:y*img.Stride+w], pattern[y%64:])
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		panic(err) // cannot happen writing to memory
	}
	return buf.Bytes()
}

func encodeJPEG(w, h, quality int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := range w {
			c := stripes[((x+y)/32)%2].(color.RGBA)
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = c.R, c.G, c.B, c.A
		}
	}
	if quality <= 0 || quality > 100 {
		quality = 100
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// encodeWebP writes a solid-colour lossless WebP (VP8L). The standard
// library and x/image have no WebP encoder; a VP8L stream whose five prefix
// codes each hold a single symbol spends zero bits per pixel, so any size is
// a few dozen bytes and still a valid file every decoder accepts.
func encodeWebP(w, h int) []byte {
	var bw bitWriter
	bw.write(0x2f, 8) // VP8L signature
	bw.write(uint64(w-1), 14)
	bw.write(uint64(h-1), 14)
	bw.write(0, 1) // alpha not used
	bw.write(0, 3) // version 0
	bw.write(0, 1) // no transforms
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	c := stripes[0].(color.RGBA)
	// Prefix codes in order green, red, blue, alpha, distance.
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // symbol stored in 8 bits
		bw.write(uint64(sym), 8)
	}
	data := bw.bytes()
	pad := len(data) % 2
	var out bytes.Buffer
	out.WriteString("RIFF")
	_ = binary.Write(&out, binary.LittleEndian, uint32(4+8+len(data)+pad))
	out.WriteString("WEBPVP8L")
	_ = binary.Write(&out, binary.LittleEndian, uint32(len(data)))
	out.Write(data)
	if pad == 1 {
		out.WriteByte(0)
	}
	return out.Bytes()
}

// bitWriter packs bits least significant first, as VP8L reads them.
type bitWriter struct {
	buf   []byte
	acc   uint64
	nbits uint
}

func (b *bitWriter) write(v uint64, n uint) {
	b.acc |= v << b.nbits
	b.nbits += n
	for b.nbits >= 8 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
		b.nbits -= 8
	}
}

func (b *bitWriter) bytes() []byte {
	if b.nbits > 0 {
		return append(b.buf, byte(b.acc))
	}
	return b.buf
}
