package providertest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"math"
	"sync"

	"bulkgen/internal/imagemeta"
)

// TestImage returns a valid image file of w×h pixels in format ("png",
// "jpeg" or "webp") for contract servers to answer with. The picture is
// diagonal stripes in two colours chosen by seed, so that images of
// different seeds differ while the same seed always gives the same bytes.
//
// Stripes are drawn as copies of one row pattern into a 256-colour
// paletted image: PNG then stores one byte per pixel without packing bits
// pixel by pixel, which keeps large answers fast under the race detector.
func TestImage(w, h int, format string, seed int64) ([]byte, error) {
	a, b := seedColors(seed)
	data, err := encodeStripes(w, h, format, a, b)
	if err != nil {
		return nil, fmt.Errorf("test image: %w", err)
	}
	return data, nil
}

// PaddedImage is TestImage with about pad bytes of padding inside the file
// (see PadImage): an output file for size-limit tests, or a plain test
// image when pad is zero.
func PaddedImage(w, h int, format string, seed int64, pad int) ([]byte, error) {
	data, err := TestImage(w, h, format, seed)
	if err != nil {
		return nil, err
	}
	return PadImage(data, format, pad)
}

// BlankImage returns a w×h file in format that is one flat mid-grey: what
// a provider's safety filter sends in place of a withheld image.
func BlankImage(w, h int, format string) ([]byte, error) {
	grey := color.RGBA{0x80, 0x80, 0x80, 0xff}
	data, err := encodeStripes(w, h, format, grey, grey)
	if err != nil {
		return nil, fmt.Errorf("blank image: %w", err)
	}
	return data, nil
}

// encodeStripes draws stripes of colours a and b and encodes them.
func encodeStripes(w, h int, format string, a, b color.RGBA) ([]byte, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("size %dx%d must be positive", w, h)
	}
	var img image.Image
	switch format {
	case "png":
		img = stripesPaletted(w, h, a, b)
	case "jpeg", "webp":
		img = stripesRGBA(w, h, a, b)
	default:
		return nil, fmt.Errorf("format %q: want png, jpeg or webp", format)
	}
	var buf bytes.Buffer
	if err := imagemeta.Encode(&buf, img, format, 85); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Fit scales w×h down so that its longer side is at most maxEdge, keeping
// the ratio. Servers use it to answer big sizes with small files; a
// maxEdge of zero or less leaves the size as it is.
func Fit(w, h, maxEdge int) (int, int) {
	if maxEdge <= 0 || (w <= maxEdge && h <= maxEdge) {
		return w, h
	}
	if w >= h {
		return maxEdge, max(1, h*maxEdge/w)
	}
	return max(1, w*maxEdge/h), maxEdge
}

// PadImage returns data with about pad bytes added inside the file in a
// way every decoder skips (a PNG tEXt chunk, JPEG comment segments, an
// unknown RIFF chunk in WebP), for tests of download size limits.
func PadImage(data []byte, format string, pad int) ([]byte, error) {
	if pad <= 0 {
		return data, nil
	}
	switch format {
	case "png":
		if len(data) < 12 {
			return nil, fmt.Errorf("pad png: %d bytes is too short", len(data))
		}
		body := append([]byte("tEXtComment\x00"), bytes.Repeat([]byte{'x'}, pad)...)
		iend := len(data) - 12 // IEND is the last chunk
		out := append([]byte{}, data[:iend]...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(body)-4))
		out = append(out, body...)
		out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
		return append(out, data[iend:]...), nil
	case "jpeg":
		if len(data) < 2 {
			return nil, fmt.Errorf("pad jpeg: %d bytes is too short", len(data))
		}
		out := append([]byte{}, data[:2]...) // SOI
		for pad > 0 {
			n := min(pad, math.MaxUint16-2)
			out = append(out, 0xff, 0xfe, byte((n+2)>>8), byte(n+2))
			out = append(out, bytes.Repeat([]byte{' '}, n)...)
			pad -= n
		}
		return append(out, data[2:]...), nil
	case "webp":
		if len(data) < 12 {
			return nil, fmt.Errorf("pad webp: %d bytes is too short", len(data))
		}
		pad += pad % 2 // RIFF chunks have even sizes
		out := append([]byte{}, data...)
		out = append(out, "PAD "...)
		out = binary.LittleEndian.AppendUint32(out, uint32(pad))
		out = append(out, make([]byte, pad)...)
		binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
		return out, nil
	}
	return nil, fmt.Errorf("pad format %q: want png, jpeg or webp", format)
}

// ImageCache keeps encoded test images by size, format and seed: servers
// answer the same few sizes over and over, and encoding a 2048-pixel image
// on every call would make the tests slow for no gain. The zero value is
// ready to use and safe for concurrent use.
type ImageCache struct {
	mu   sync.Mutex
	imgs map[imageKey][]byte
}

type imageKey struct {
	w, h   int
	format string
	seed   int64
}

// Get returns TestImage(w, h, format, seed), encoding it on first use. The
// returned slice is shared: callers must not modify it.
func (c *ImageCache) Get(w, h int, format string, seed int64) ([]byte, error) {
	k := imageKey{w, h, format, seed}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.imgs[k]; ok {
		return b, nil
	}
	b, err := TestImage(w, h, format, seed)
	if err != nil {
		return nil, err
	}
	if c.imgs == nil {
		c.imgs = map[imageKey][]byte{}
	}
	c.imgs[k] = b
	return b, nil
}

// seedColors picks the two stripe colours for seed.
func seedColors(seed int64) (color.RGBA, color.RGBA) {
	x := uint64(seed)*0x9e3779b97f4a7c15 + 0x1f4e79f2a900
	return color.RGBA{uint8(x), uint8(x >> 8), uint8(x >> 16), 0xff},
		color.RGBA{uint8(x >> 24), uint8(x >> 32), uint8(x >> 40), 0xff}
}

// stripePattern is one long row of colour indexes (0 or 1) in 32-pixel
// bands; row y of the picture is the pattern shifted by y, which draws
// diagonal stripes repeating every 64 rows.
func stripePattern(w int) []uint8 {
	p := make([]uint8, w+64)
	for x := range p {
		p[x] = uint8((x / 32) % 2)
	}
	return p
}

func stripesPaletted(w, h int, a, b color.RGBA) *image.Paletted {
	// 256 entries so that the PNG encoder writes 8-bit rows by copying Pix.
	pal := make(color.Palette, 256)
	for i := range pal {
		pal[i] = a
		if i%2 == 1 {
			pal[i] = b
		}
	}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	pattern := stripePattern(w)
	for y := range h {
		copy(img.Pix[y*img.Stride:y*img.Stride+w], pattern[y%64:])
	}
	return img
}

func stripesRGBA(w, h int, a, b color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cols := [2][4]uint8{{a.R, a.G, a.B, a.A}, {b.R, b.G, b.B, b.A}}
	long := make([]uint8, 4*(w+64))
	for x, idx := range stripePattern(w) {
		copy(long[4*x:], cols[idx][:])
	}
	for y := range h {
		off := 4 * (y % 64)
		copy(img.Pix[y*img.Stride:y*img.Stride+4*w], long[off:])
	}
	return img
}
