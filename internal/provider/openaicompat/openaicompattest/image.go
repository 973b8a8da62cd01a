package openaicompattest

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"sync"
)

// imageCache keeps encoded test images by size and format: tests ask for
// the same few sizes over and over, and encoding a large image on every
// call would make them slow for no gain.
type imageCache struct {
	mu   sync.Mutex
	imgs map[[3]int][]byte
}

// get returns a w×h image, JPEG when jpg is set and PNG otherwise.
func (c *imageCache) get(w, h int, jpg bool) []byte {
	key := [3]int{w, h, 0}
	if jpg {
		key[2] = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.imgs[key]; ok {
		return b
	}
	b := encodePNG(w, h)
	if jpg {
		b = encodeJPEG(w, h)
	}
	if c.imgs == nil {
		c.imgs = map[[3]int][]byte{}
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

func encodeJPEG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := range w {
			c := stripes[((x+y)/32)%2].(color.RGBA)
			row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = c.R, c.G, c.B, c.A
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
