package imagemeta

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/image/webp"
)

// testImage is a small picture with a gradient, so that decoding checks
// have pixels to compare.
func testImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 4), uint8(y * 4), 90, 255})
		}
	}
	return m
}

func encoded(t testing.TB, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, testImage(37, 21), format, 0); err != nil {
		t.Fatalf("Encode %s: %v", format, err)
	}
	return buf.Bytes()
}

func decode(t testing.TB, format string, data []byte) image.Image {
	t.Helper()
	var (
		m   image.Image
		err error
	)
	switch format {
	case "png":
		m, err = png.Decode(bytes.NewReader(data))
	case "jpeg":
		m, err = jpeg.Decode(bytes.NewReader(data))
	case "webp":
		m, err = webp.Decode(bytes.NewReader(data))
	}
	if err != nil {
		t.Fatalf("decode %s after embedding: %v", format, err)
	}
	return m
}

func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}

var formats = []string{"png", "jpeg", "webp"}

func TestEmbedReadRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		p      Parameters
		record []byte
	}{
		{
			name:   "ascii",
			p:      Parameters{Prompt: "a cat", NegativePrompt: "blurry", Steps: 20, Seed: 42, Width: 37, Height: 21, Model: "preview"},
			record: []byte(`{"prompt":"a cat","seed":42}`),
		},
		{
			name: "latin-1",
			p:    Parameters{Prompt: "café crème, naïve", Seed: 3, Steps: 1, Model: "m"},
		},
		{
			name: "chinese quotes newlines",
			p: Parameters{Prompt: "一只在月光下的猫，\"水墨\"风格\n第二行 <b>&amp;</b>", NegativePrompt: "模糊\n低质量",
				Steps: 4, Seed: 1234567890123, Width: 1024, Height: 1024, Model: "flux-schnell",
				Extra: [][2]string{{"Provider", "replicate"}, {"Style", "a, \"b\""}}},
			record: []byte(`{"prompt":"一只在月光下的猫，\"水墨\"风格\n第二行","x":"]]></bulkgen:record><?xpacket end='w'?>","tab":"a\tb\r\n"}`),
		},
	}
	for _, format := range formats {
		for _, c := range cases {
			t.Run(format+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				orig := encoded(t, format)
				out, err := Embed(orig, format, c.p, c.record)
				if err != nil {
					t.Fatalf("Embed: %v", err)
				}
				p, record, err := Read(out)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if !reflect.DeepEqual(p, c.p) {
					t.Errorf("parameters =\n%#v\nwant\n%#v", p, c.p)
				}
				if !bytes.Equal(record, c.record) {
					t.Errorf("record = %q, want %q", record, c.record)
				}
				if !samePixels(decode(t, format, out), decode(t, format, orig)) {
					t.Errorf("pixels changed by embedding")
				}
			})
		}
	}
}

func TestEmbedTwiceKeepsOneCopy(t *testing.T) {
	t.Parallel()
	for _, format := range formats {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			first, err := Embed(encoded(t, format), format, Parameters{Prompt: "first", Steps: 1, Seed: 1, Model: "a"}, []byte(`{"n":1}`))
			if err != nil {
				t.Fatalf("Embed: %v", err)
			}
			second, err := Embed(first, format, Parameters{Prompt: "again", Steps: 2, Seed: 2, Model: "b"}, []byte(`{"n":2}`))
			if err != nil {
				t.Fatalf("Embed again: %v", err)
			}
			p, record, err := Read(second)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if p.Prompt != "again" || string(record) != `{"n":2}` {
				t.Errorf("Read = %q, %s; want the second embedding", p.Prompt, record)
			}
			if n := bytes.Count(second, []byte("first")); n != 0 {
				t.Errorf("old metadata still present %d times", n)
			}
			if got, want := len(second), len(first); got != want {
				t.Errorf("size after re-embedding = %d, want %d (same-length metadata)", got, want)
			}
			decode(t, format, second)
		})
	}
}

func TestPNGChunkChoice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prompt string
		want   string
	}{
		{"plain ascii", "tEXt"},
		{"déjà vu", "tEXt"},
		{"猫", "iTXt"},
	}
	for _, tt := range tests {
		out, err := Embed(encoded(t, "png"), "png", Parameters{Prompt: tt.prompt, Seed: -1}, []byte("{}"))
		if err != nil {
			t.Fatalf("Embed: %v", err)
		}
		chunks, err := pngChunks(out)
		if err != nil {
			t.Fatalf("pngChunks: %v", err)
		}
		var order []string
		for _, c := range chunks {
			order = append(order, c.typ)
			if k, _, _ := pngText(c); k == keyParameters && c.typ != tt.want {
				t.Errorf("%q: parameters chunk is %s, want %s", tt.prompt, c.typ, tt.want)
			}
		}
		// Text chunks must come before the image data.
		joined := strings.Join(order, " ")
		if !strings.Contains(joined, tt.want+" iTXt IDAT") {
			t.Errorf("%q: chunk order %s", tt.prompt, joined)
		}
	}
}

func TestJPEGExtendedXMP(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("一只猫, ", 12000) // ~120 kB of prompt
	p := Parameters{Prompt: long, Steps: 1, Seed: 9, Model: "m"}
	record := []byte(`{"prompt":"` + strings.Repeat("x", 150000) + `"}`)
	out, err := Embed(encoded(t, "jpeg"), "jpeg", p, record)
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	segs, _, err := jpegSegments(out)
	if err != nil {
		t.Fatalf("jpegSegments: %v", err)
	}
	ext := 0
	for _, s := range segs {
		if bytes.HasPrefix(s.payload, []byte(extendedXMPID)) {
			ext++
		}
	}
	if ext < 5 {
		t.Errorf("%d ExtendedXMP segments, want the packet split over several", ext)
	}
	got, gotRecord, err := Read(out)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got.Prompt != strings.TrimSpace(long) || !bytes.Equal(gotRecord, record) {
		t.Errorf("large metadata did not round-trip (prompt %d bytes, record %d bytes)", len(got.Prompt), len(gotRecord))
	}
	decode(t, "jpeg", out)

	// A damaged extension must not be trusted: the digest catches it.
	i := bytes.LastIndex(out, []byte("xxxx"))
	bad := bytes.Clone(out)
	bad[i] = 'y'
	if _, rec, err := Read(bad); err == nil && rec != nil {
		t.Errorf("Read accepted a corrupted ExtendedXMP record")
	}
}

// vp8Stub is a WebP in the simple lossy format with a frame header only;
// enough for Embed, which never decodes pixels.
func vp8Stub(w, h int) []byte {
	payload := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(payload[6:], uint16(w))
	binary.LittleEndian.PutUint16(payload[8:], uint16(h))
	out := []byte("RIFF\x00\x00\x00\x00WEBP")
	out = appendRIFFChunk(out, "VP8 ", payload)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

func TestWebPVP8X(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		data      []byte
		w, h      int
		wantAlpha bool
	}{
		{"lossless", encoded(t, "webp"), 37, 21, false},
		{"lossy", vp8Stub(300, 200), 300, 200, false},
		{"lossless with alpha", func() []byte {
			m := testImage(5, 5)
			m.Pix[3] = 10
			var buf bytes.Buffer
			if err := Encode(&buf, m, "webp", 0); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}(), 5, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := Embed(tt.data, "webp", Parameters{Prompt: "p", Seed: 1, Steps: 1, Model: "m"}, []byte("{}"))
			if err != nil {
				t.Fatalf("Embed: %v", err)
			}
			chunks, err := webpChunks(out)
			if err != nil {
				t.Fatalf("webpChunks: %v", err)
			}
			if chunks[0].id != "VP8X" || chunks[len(chunks)-1].id != "XMP " {
				t.Fatalf("first/last chunks = %s/%s, want VP8X/XMP", chunks[0].id, chunks[len(chunks)-1].id)
			}
			x := chunks[0].payload
			if x[0]&vp8xXMP == 0 {
				t.Errorf("VP8X flags %08b lack XMP", x[0])
			}
			if got := x[0]&vp8xAlpha != 0; got != tt.wantAlpha {
				t.Errorf("alpha flag = %v, want %v", got, tt.wantAlpha)
			}
			w := int(x[4]) | int(x[5])<<8 | int(x[6])<<16
			h := int(x[7]) | int(x[8])<<8 | int(x[9])<<16
			if w+1 != tt.w || h+1 != tt.h {
				t.Errorf("canvas %dx%d, want %dx%d", w+1, h+1, tt.w, tt.h)
			}
			if got := binary.LittleEndian.Uint32(out[4:]); int(got) != len(out)-8 {
				t.Errorf("RIFF size %d, want %d", got, len(out)-8)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"plain png", encoded(t, "png"), ErrNoMetadata},
		{"plain jpeg", encoded(t, "jpeg"), ErrNoMetadata},
		{"plain webp", encoded(t, "webp"), ErrNoMetadata},
		{"garbage", []byte("GIF89a..."), ErrUnknownFormat},
		{"empty", nil, ErrUnknownFormat},
		{"truncated png", encoded(t, "png")[:40], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := Read(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("Read: err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEmbedErrors(t *testing.T) {
	t.Parallel()
	png := encoded(t, "png")
	if _, err := Embed(png, "jpeg", Parameters{}, nil); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("wrong format: err = %v, want ErrUnknownFormat", err)
	}
	if _, err := Embed([]byte("hello"), "", Parameters{}, nil); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("garbage: err = %v, want ErrUnknownFormat", err)
	}
	noIDAT := append(bytes.Clone(pngSignature), appendPNGChunk(nil, "IEND", nil)...)
	if _, err := Embed(noIDAT, "png", Parameters{}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("no IDAT: err = %v, want ErrMalformed", err)
	}
}

func TestEncodeFormats(t *testing.T) {
	t.Parallel()
	src := testImage(19, 11)
	for _, format := range formats {
		var buf bytes.Buffer
		if err := Encode(&buf, src, format, 80); err != nil {
			t.Fatalf("Encode %s: %v", format, err)
		}
		cfg, got, err := image.DecodeConfig(bytes.NewReader(buf.Bytes()))
		if err != nil || got != format || cfg.Width != 19 || cfg.Height != 11 {
			t.Errorf("%s: DecodeConfig = %v %q %v", format, cfg, got, err)
		}
		if Format(buf.Bytes()) != format {
			t.Errorf("Format = %q, want %q", Format(buf.Bytes()), format)
		}
	}
	if err := Encode(&bytes.Buffer{}, src, "gif", 0); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("gif: err = %v, want ErrUnknownFormat", err)
	}
}

func TestReadCompressedPNGText(t *testing.T) {
	t.Parallel()
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	if _, err := zw.Write([]byte("a cat\nSteps: 20, Seed: 42, Size: 37x21")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	orig := encoded(t, "png")
	// zTXt: keyword, NUL, method 0, compressed Latin-1 text.
	chunk := appendPNGChunk(nil, "zTXt", append([]byte("parameters\x00\x00"), z.Bytes()...))
	data := append(bytes.Clone(orig[:33]), chunk...) // after the signature and IHDR
	data = append(data, orig[33:]...)
	p, record, err := Read(data)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := Parameters{Prompt: "a cat", Steps: 20, Seed: 42, Width: 37, Height: 21}
	if !reflect.DeepEqual(p, want) || record != nil {
		t.Errorf("Read = %#v, %q; want %#v, nil", p, record, want)
	}
	decode(t, "png", data)
}

func TestEncodePNGFastPath(t *testing.T) {
	t.Parallel()
	full := image.NewRGBA(image.Rect(0, 0, 70, 40))
	for y := 0; y < 40; y++ {
		for x := 0; x < 70; x++ {
			full.SetRGBA(x, y, color.RGBA{uint8(x * 3), uint8(y*5 + x%3), uint8((x * y) % 251), 255})
		}
	}
	for _, m := range []*image.RGBA{full, full.SubImage(image.Rect(5, 7, 38, 29)).(*image.RGBA)} {
		var buf bytes.Buffer
		if err := Encode(&buf, m, "png", 0); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		got, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		b := m.Bounds()
		if got.Bounds().Dx() != b.Dx() || got.Bounds().Dy() != b.Dy() {
			t.Fatalf("size %v, want %v", got.Bounds().Size(), b.Size())
		}
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				r1, g1, b1, a1 := got.At(x, y).RGBA()
				r2, g2, b2, a2 := m.At(b.Min.X+x, b.Min.Y+y).RGBA()
				if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
					t.Fatalf("pixel (%d,%d) differs", x, y)
				}
			}
		}
	}
}
