package providertest

import (
	"bytes"
	"image"
	"testing"

	"bulkgen/internal/imagemeta"
)

func TestTestImage(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"png", "jpeg", "webp"} {
		for _, size := range [][2]int{{1, 1}, {37, 21}, {300, 200}} {
			data, err := TestImage(size[0], size[1], format, 7)
			if err != nil {
				t.Fatalf("%s %v: %v", format, size, err)
			}
			if got := imagemeta.Format(data); got != format {
				t.Errorf("%s %v: bytes are %q", format, size, got)
			}
			cfg, got, err := image.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s %v: does not decode: %v", format, size, err)
			}
			if got != format || cfg.Width != size[0] || cfg.Height != size[1] {
				t.Errorf("%s %v: decoded %s %dx%d", format, size, got, cfg.Width, cfg.Height)
			}
			if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s %v: pixels do not decode: %v", format, size, err)
			}
		}
		a, _ := TestImage(64, 64, format, 1)
		again, _ := TestImage(64, 64, format, 1)
		b, _ := TestImage(64, 64, format, 2)
		if !bytes.Equal(a, again) {
			t.Errorf("%s: the same seed gave different bytes", format)
		}
		if bytes.Equal(a, b) {
			t.Errorf("%s: seeds 1 and 2 gave the same bytes", format)
		}
	}
}

func TestTestImageRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		w, h   int
		format string
	}{{0, 10, "png"}, {10, -1, "jpeg"}, {10, 10, "gif"}, {10, 10, ""}} {
		if _, err := TestImage(tc.w, tc.h, tc.format, 0); err == nil {
			t.Errorf("TestImage(%d, %d, %q) succeeded", tc.w, tc.h, tc.format)
		}
		if _, err := BlankImage(tc.w, tc.h, tc.format); err == nil {
			t.Errorf("BlankImage(%d, %d, %q) succeeded", tc.w, tc.h, tc.format)
		}
	}
}

func TestBlankImageIsFlat(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"png", "jpeg", "webp"} {
		data, err := BlankImage(40, 30, format)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if img.Bounds().Dx() != 40 || img.Bounds().Dy() != 30 {
			t.Errorf("%s: bounds %v", format, img.Bounds())
		}
		r0, g0, b0, _ := img.At(0, 0).RGBA()
		r1, g1, b1, _ := img.At(35, 25).RGBA()
		if r0 != r1 || g0 != g1 || b0 != b1 {
			t.Errorf("%s: not flat: %v vs %v", format, img.At(0, 0), img.At(35, 25))
		}
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ w, h, edge, ww, wh int }{
		{1024, 1024, 2048, 1024, 1024},
		{4096, 2048, 2048, 2048, 1024},
		{1000, 3000, 300, 100, 300},
		{5000, 1, 100, 100, 1},
		{300, 200, 0, 300, 200},
	} {
		w, h := Fit(tc.w, tc.h, tc.edge)
		if w != tc.ww || h != tc.wh {
			t.Errorf("Fit(%d, %d, %d) = %d, %d; want %d, %d", tc.w, tc.h, tc.edge, w, h, tc.ww, tc.wh)
		}
	}
}

func TestPadImage(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"png", "jpeg", "webp"} {
		for _, pad := range []int{0, 1, 1000, 200_000} {
			data, err := TestImage(37, 21, format, 3)
			if err != nil {
				t.Fatal(err)
			}
			padded, err := PadImage(data, format, pad)
			if err != nil {
				t.Fatalf("%s pad %d: %v", format, pad, err)
			}
			if len(padded) < len(data)+pad {
				t.Errorf("%s pad %d: %d bytes, want at least %d", format, pad, len(padded), len(data)+pad)
			}
			cfg, got, err := image.DecodeConfig(bytes.NewReader(padded))
			if err != nil || got != format || cfg.Width != 37 || cfg.Height != 21 {
				t.Errorf("%s pad %d: decodes as %s %dx%d, %v", format, pad, got, cfg.Width, cfg.Height, err)
			}
			if _, _, err := image.Decode(bytes.NewReader(padded)); err != nil {
				t.Errorf("%s pad %d: pixels do not decode: %v", format, pad, err)
			}
		}
	}
	if _, err := PadImage([]byte("x"), "png", 10); err == nil {
		t.Error("padding a 1-byte png succeeded")
	}
}

func TestImageCache(t *testing.T) {
	t.Parallel()
	var c ImageCache
	a, err := c.Get(100, 50, "png", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Get(100, 50, "png", 1)
	if &a[0] != &b[0] {
		t.Error("second Get encoded again instead of using the cache")
	}
	want, _ := TestImage(100, 50, "png", 1)
	if !bytes.Equal(a, want) {
		t.Error("cached bytes differ from TestImage")
	}
	if _, err := c.Get(100, 50, "bmp", 1); err == nil {
		t.Error("Get of an unknown format succeeded")
	}
}

func BenchmarkTestImage(b *testing.B) {
	for _, format := range []string{"png", "jpeg", "webp"} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				if _, err := TestImage(2048, 2048, format, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
