package imagemeta

import (
	"encoding/binary"
	"fmt"
)

// riffChunk is one chunk of a WebP file.
type riffChunk struct {
	id      string
	payload []byte
}

// VP8X flag bits (RFC 9649 section 2.7).
const (
	vp8xAlpha = 1 << 4
	vp8xXMP   = 1 << 2
)

// webpChunks splits a WebP file into its chunks, trusting the RIFF size
// only as far as the data goes.
func webpChunks(data []byte) ([]riffChunk, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil, ErrUnknownFormat
	}
	end := len(data)
	if n := uint64(binary.LittleEndian.Uint32(data[4:8])) + 8; n < uint64(end) {
		end = int(n)
	}
	var chunks []riffChunk
	for pos := 12; pos < end; {
		if end-pos < 8 {
			return nil, fmt.Errorf("webp: truncated chunk header: %w", ErrMalformed)
		}
		n := uint64(binary.LittleEndian.Uint32(data[pos+4:]))
		if n > uint64(end-pos-8) {
			return nil, fmt.Errorf("webp: chunk length %d past end: %w", n, ErrMalformed)
		}
		chunks = append(chunks, riffChunk{id: string(data[pos : pos+4]), payload: data[pos+8 : pos+8+int(n)]})
		pos += 8 + int(n) + int(n&1)
	}
	return chunks, nil
}

// canvas returns the image size and alpha use from a VP8L or VP8 chunk, for
// building a VP8X header for a file in the simple format.
func canvas(chunks []riffChunk) (w, h int, alpha bool, err error) {
	for _, c := range chunks {
		p := c.payload
		switch c.id {
		case "VP8L":
			if len(p) < 5 || p[0] != 0x2f {
				return 0, 0, false, fmt.Errorf("webp: bad VP8L header: %w", ErrMalformed)
			}
			bits := binary.LittleEndian.Uint32(p[1:5])
			return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, bits>>28&1 == 1, nil
		case "VP8 ":
			if len(p) < 10 || p[3] != 0x9d || p[4] != 0x01 || p[5] != 0x2a {
				return 0, 0, false, fmt.Errorf("webp: bad VP8 header: %w", ErrMalformed)
			}
			return int(binary.LittleEndian.Uint16(p[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(p[8:]) & 0x3fff), false, nil
		}
	}
	return 0, 0, false, fmt.Errorf("webp: no image chunk: %w", ErrMalformed)
}

func appendRIFFChunk(dst []byte, id string, payload []byte) []byte {
	dst = append(dst, id...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, payload...)
	if len(payload)&1 == 1 {
		dst = append(dst, 0)
	}
	return dst
}

func embedWebP(data []byte, params string, record []byte) ([]byte, error) {
	chunks, err := webpChunks(data)
	if err != nil {
		return nil, err
	}
	var vp8x []byte
	for _, c := range chunks {
		if c.id == "VP8X" {
			if len(c.payload) < 10 {
				return nil, fmt.Errorf("webp: short VP8X chunk: %w", ErrMalformed)
			}
			vp8x = append([]byte(nil), c.payload...)
		}
	}
	if vp8x == nil {
		w, h, alpha, err := canvas(chunks)
		if err != nil {
			return nil, err
		}
		vp8x = make([]byte, 10)
		if alpha {
			vp8x[0] |= vp8xAlpha
		}
		putUint24(vp8x[4:], uint32(w-1))
		putUint24(vp8x[7:], uint32(h-1))
	}
	vp8x[0] |= vp8xXMP

	xmp := buildXMP(xmpMeta{parameters: params, hasParameters: true, record: record}, true)
	out := make([]byte, 12, len(data)+len(xmp)+32)
	copy(out, "RIFF\x00\x00\x00\x00WEBP")
	out = appendRIFFChunk(out, "VP8X", vp8x)
	// The XMP chunk belongs after the image data (RFC 9649 section 2.7),
	// so it goes last.
	for _, c := range chunks {
		if c.id != "VP8X" && c.id != "XMP " {
			out = appendRIFFChunk(out, c.id, c.payload)
		}
	}
	out = appendRIFFChunk(out, "XMP ", xmp)
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(out)-8))
	return out, nil
}

func putUint24(b []byte, v uint32) {
	b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16)
}

func readWebP(data []byte) (params string, hasParams bool, record []byte, err error) {
	chunks, err := webpChunks(data)
	if err != nil {
		return "", false, nil, err
	}
	for _, c := range chunks {
		if c.id != "XMP " {
			continue
		}
		if m, err := parseXMP(c.payload); err == nil {
			return m.parameters, m.hasParameters, m.record, nil
		}
	}
	return "", false, nil, nil
}
