package faltest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"math"
)

// encodeImage draws a small deterministic picture of w×h pixels and encodes
// it as format ("png", "jpeg" or "webp"), followed by pad bytes of padding
// that keep the file valid (for oversized-download tests). The picture only
// has to decode; its look is derived from tint so that images differ.
func encodeImage(format string, w, h int, tint uint32, pad int) []byte {
	if format == "webp" {
		return padWebP(solidWebP(w, h, tint), pad)
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r0, g0, b0 := uint8(tint), uint8(tint>>8), uint8(tint>>16)
	for y := range h {
		for x := range w {
			i := img.PixOffset(x, y)
			img.Pix[i] = r0 + uint8(x*255/max(w, 1))
			img.Pix[i+1] = g0 + uint8(y*255/max(h, 1))
			img.Pix[i+2] = b0
			img.Pix[i+3] = 0xff
		}
	}
	var buf bytes.Buffer
	if format == "jpeg" {
		_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 70})
		return padJPEG(buf.Bytes(), pad)
	}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	_ = enc.Encode(&buf, img)
	return padPNG(buf.Bytes(), pad)
}

// blurred is what a content-filtered image looks like: one flat grey.
func blurred(format string, w, h int) []byte {
	if format == "webp" {
		return solidWebP(w, h, 0x808080)
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	var buf bytes.Buffer
	if format == "jpeg" {
		_ = jpeg.Encode(&buf, img, nil)
	} else {
		_ = png.Encode(&buf, img)
	}
	return buf.Bytes()
}

// solidWebP encodes a one-colour lossless WebP (VP8L). The standard library
// has no WebP encoder, but a VP8L stream whose five prefix codes each hold
// a single symbol needs zero bits per pixel, so the whole file is a header.
func solidWebP(w, h int, rgb uint32) []byte {
	var bw bitWriter
	bw.write(0x2f, 8) // VP8L signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1) // alpha not used
	bw.write(0, 3) // version 0
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	// Green, red, blue, alpha and distance codes: simple, one 8-bit symbol.
	for _, sym := range []uint32{rgb >> 8 & 0xff, rgb & 0xff, rgb >> 16 & 0xff, 0xff, 0} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // 8-bit symbol
		bw.write(sym, 8)
	}
	payload := bw.bytes()
	var out bytes.Buffer
	out.WriteString("RIFF")
	size := 4 + 8 + len(payload) + len(payload)%2
	_ = binary.Write(&out, binary.LittleEndian, uint32(size))
	out.WriteString("WEBPVP8L")
	_ = binary.Write(&out, binary.LittleEndian, uint32(len(payload)))
	out.Write(payload)
	if len(payload)%2 == 1 {
		out.WriteByte(0)
	}
	return out.Bytes()
}

type bitWriter struct {
	buf   []byte
	acc   uint64
	nbits uint
}

// write appends the n low bits of v, least significant first (VP8L order).
func (b *bitWriter) write(v uint32, n uint) {
	b.acc |= uint64(v&(1<<n-1)) << b.nbits
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

// padPNG inserts a tEXt chunk of about pad bytes before IEND.
func padPNG(data []byte, pad int) []byte {
	if pad <= 0 || len(data) < 12 {
		return data
	}
	body := append([]byte("Comment\x00"), bytes.Repeat([]byte{'x'}, pad)...)
	var chunk bytes.Buffer
	_ = binary.Write(&chunk, binary.BigEndian, uint32(len(body)))
	typed := append([]byte("tEXt"), body...)
	chunk.Write(typed)
	_ = binary.Write(&chunk, binary.BigEndian, crc32.ChecksumIEEE(typed))
	iend := len(data) - 12
	out := append([]byte{}, data[:iend]...)
	out = append(out, chunk.Bytes()...)
	return append(out, data[iend:]...)
}

// padJPEG inserts COM segments totalling about pad bytes after SOI.
func padJPEG(data []byte, pad int) []byte {
	if pad <= 0 || len(data) < 2 {
		return data
	}
	out := append([]byte{}, data[:2]...)
	for pad > 0 {
		n := min(pad, math.MaxUint16-2)
		out = append(out, 0xff, 0xfe, byte((n+2)>>8), byte(n+2))
		out = append(out, bytes.Repeat([]byte{' '}, n)...)
		pad -= n
	}
	return append(out, data[2:]...)
}

// padWebP appends an unknown RIFF chunk, which decoders skip.
func padWebP(data []byte, pad int) []byte {
	if pad <= 0 {
		return data
	}
	pad += pad % 2
	out := append([]byte{}, data...)
	out = append(out, "PAD "...)
	out = binary.LittleEndian.AppendUint32(out, uint32(pad))
	out = append(out, make([]byte, pad)...)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}
