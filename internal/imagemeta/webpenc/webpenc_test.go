package webpenc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"golang.org/x/image/webp"
)

// roundTrip encodes m, decodes it with x/image/webp and fails unless every
// pixel comes back identical.
func roundTrip(t testing.TB, m *image.NRGBA) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, m); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := webp.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("decode %dx%d: %v", m.Rect.Dx(), m.Rect.Dy(), err)
	}
	if !got.Bounds().Eq(m.Rect) {
		t.Fatalf("bounds = %v, want %v", got.Bounds(), m.Rect)
	}
	n, ok := got.(*image.NRGBA)
	if !ok {
		t.Fatalf("decoded %T, want *image.NRGBA", got)
	}
	if !bytes.Equal(n.Pix, m.Pix) {
		for i := range m.Pix {
			if n.Pix[i] != m.Pix[i] {
				p := i / 4
				t.Fatalf("%dx%d: pixel (%d,%d) channel %d = %d, want %d",
					m.Rect.Dx(), m.Rect.Dy(), p%m.Rect.Dx(), p/m.Rect.Dx(), i%4, n.Pix[i], m.Pix[i])
			}
		}
	}
	return buf.Bytes()
}

func randomImage(r *rand.Rand, w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = byte(r.Uint32())
	}
	return m
}

// gradientImage has smooth gradients, flat areas and stripes: what the
// preview engine draws and what exercises predictors and back-references.
func gradientImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{byte(x * 255 / w), byte(y * 255 / h), byte((x + y) / 3), 255}
			if x > w/2 && y > h/2 {
				c = color.NRGBA{10, 200, 30, 128}
			}
			if (y/5)%4 == 0 && x < w/3 {
				c = color.NRGBA{0, 0, 0, 0}
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

func TestRoundTripRandom(t *testing.T) {
	t.Parallel()
	sizes := []struct{ w, h int }{{1, 1}, {1, 9}, {9, 1}, {2, 2}, {3, 7}, {16, 16}, {17, 33}, {257, 129}}
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range sizes {
		roundTrip(t, randomImage(r, s.w, s.h))
	}
}

func TestRoundTripStructured(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    *image.NRGBA
	}{
		{"gradient", gradientImage(257, 129)},
		{"flat", image.NewNRGBA(image.Rect(0, 0, 300, 200))},
		{"tall-thin", gradientImage(1, 5000)},
		{"wide-thin", gradientImage(5000, 1)},
		{"few-colours", func() *image.NRGBA {
			m := image.NewNRGBA(image.Rect(0, 0, 40, 30))
			for i := range m.Pix {
				m.Pix[i] = byte(i%3) * 100
			}
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			roundTrip(t, tt.m)
		})
	}
}

func TestCompressesStructuredImages(t *testing.T) {
	t.Parallel()
	m := gradientImage(512, 512)
	data := roundTrip(t, m)
	// Raw pixels are 1 MiB; a working predictor + LZ77 + Huffman pipeline
	// should do far better than the 4 bytes a pixel it would take without.
	if raw := len(m.Pix); len(data) > raw/8 {
		t.Errorf("encoded %d bytes for %d raw bytes, want under %d", len(data), raw, raw/8)
	}
}

func TestEncodeRGBAAndOther(t *testing.T) {
	t.Parallel()
	rgba := image.NewRGBA(image.Rect(5, 5, 12, 10)) // non-zero origin
	for i := range rgba.Pix {
		rgba.Pix[i] = byte(i * 7)
	}
	for i := 3; i < len(rgba.Pix); i += 4 {
		rgba.Pix[i] = 255
		if i%3 == 0 {
			rgba.Pix[i-3], rgba.Pix[i-2], rgba.Pix[i-1], rgba.Pix[i] = 40, 20, 10, 80 // premultiplied
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 6, 4))
	for i := range gray.Pix {
		gray.Pix[i] = byte(i * 11)
	}
	for _, m := range []image.Image{rgba, gray} {
		var buf bytes.Buffer
		if err := Encode(&buf, m); err != nil {
			t.Fatalf("Encode %T: %v", m, err)
		}
		got, err := webp.Decode(&buf)
		if err != nil {
			t.Fatalf("decode %T: %v", m, err)
		}
		b := m.Bounds()
		if got.Bounds().Dx() != b.Dx() || got.Bounds().Dy() != b.Dy() {
			t.Fatalf("%T: size %v, want %v", m, got.Bounds().Size(), b.Size())
		}
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				want := color.NRGBAModel.Convert(m.At(b.Min.X+x, b.Min.Y+y))
				if g := got.At(x, y); g != want {
					t.Fatalf("%T: pixel (%d,%d) = %v, want %v", m, x, y, g, want)
				}
			}
		}
	}
}

func TestEncodeSizeLimits(t *testing.T) {
	t.Parallel()
	for _, r := range []image.Rectangle{image.Rect(0, 0, 0, 5), image.Rect(0, 0, MaxSize+1, 1)} {
		err := Encode(&bytes.Buffer{}, image.NewNRGBA(r))
		if !errors.Is(err, ErrSize) {
			t.Errorf("Encode %v: err = %v, want ErrSize", r, err)
		}
	}
}

func TestHuffmanLengthsLimited(t *testing.T) {
	t.Parallel()
	// Fibonacci counts give the deepest possible unrestricted tree.
	hist := make([]uint32, 40)
	a, b := uint32(1), uint32(1)
	for i := range hist {
		hist[i] = a
		a, b = b, a+b
	}
	lengths := huffmanLengths(hist, maxCodeLen)
	kraft := 0.0
	for s, l := range lengths {
		if l == 0 || l > maxCodeLen {
			t.Fatalf("symbol %d: length %d", s, l)
		}
		kraft += 1 / float64(uint(1)<<l)
	}
	if kraft != 1 {
		t.Errorf("Kraft sum = %v, want a complete code (1)", kraft)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add(uint16(1), uint16(1), []byte{1, 2, 3, 4})
	f.Add(uint16(3), uint16(7), []byte("some pixel bytes that repeat repeat repeat"))
	f.Add(uint16(40), uint16(2), []byte{0, 0, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, w, h uint16, seed []byte) {
		w, h = w%64+1, h%64+1
		m := image.NewNRGBA(image.Rect(0, 0, int(w), int(h)))
		if len(seed) > 0 {
			for i := range m.Pix {
				// Repeat the seed with a slow drift so that both
				// literals and back-references occur.
				m.Pix[i] = seed[i%len(seed)] + byte(i/len(seed)/7)
			}
		}
		roundTrip(t, m)
	})
}

func BenchmarkEncode1024(b *testing.B) {
	m := gradientImage(1024, 1024)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, m); err != nil {
			b.Fatal(err)
		}
	}
}
