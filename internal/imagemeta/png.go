package imagemeta

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// Text chunk keywords bulkgen owns in a PNG.
const (
	keyParameters = "parameters" // A1111's keyword
	keyRecord     = "bulkgen"
)

// maxInflated caps decompressed zTXt/iTXt text: compressed chunks are the
// one place where a small file could ask for a lot of memory.
const maxInflated = 4 << 20

// pngChunk is one chunk of a PNG file, as slices of the original data.
type pngChunk struct {
	typ  string
	data []byte // the chunk's payload
	raw  []byte // the whole chunk, length to CRC
}

// pngChunks splits a PNG into chunks without copying. It stops after IEND
// and fails on a chunk that runs past the end of data.
func pngChunks(data []byte) ([]pngChunk, error) {
	if !bytes.HasPrefix(data, pngSignature) {
		return nil, ErrUnknownFormat
	}
	var chunks []pngChunk
	rest := data[len(pngSignature):]
	for len(rest) > 0 {
		if len(rest) < 12 {
			return nil, fmt.Errorf("png: truncated chunk header: %w", ErrMalformed)
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-12) {
			return nil, fmt.Errorf("png: chunk length %d past end: %w", n, ErrMalformed)
		}
		c := pngChunk{typ: string(rest[4:8]), data: rest[8 : 8+n], raw: rest[:12+n]}
		chunks = append(chunks, c)
		rest = rest[12+n:]
		if c.typ == "IEND" {
			break
		}
	}
	return chunks, nil
}

// appendPNGChunk appends a chunk with its length and CRC.
func appendPNGChunk(dst []byte, typ string, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	start := len(dst)
	dst = append(dst, typ...)
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

// latin1 converts s to ISO 8859-1 bytes, the encoding of tEXt chunks, and
// reports false if s has a character outside it (or a NUL, which would end
// the text early).
func latin1(s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return nil, false
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r == 0 || r > 0xff {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

// textPayload builds a tEXt payload when text is Latin-1, else an
// uncompressed iTXt one; the same choice PIL makes for A1111.
func textPayload(keyword, text string) (typ string, payload []byte) {
	if l1, ok := latin1(text); ok {
		payload = append([]byte(keyword), 0)
		return "tEXt", append(payload, l1...)
	}
	return "iTXt", itxtPayload(keyword, []byte(text))
}

// itxtPayload is keyword, NUL, compression flag 0, method 0, empty
// language tag and translated keyword (each NUL-terminated), then UTF-8.
func itxtPayload(keyword string, text []byte) []byte {
	p := append([]byte(keyword), 0, 0, 0, 0, 0)
	return append(p, text...)
}

func embedPNG(data []byte, params string, record []byte) ([]byte, error) {
	chunks, err := pngChunks(data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+len(params)+len(record)+64)
	out = append(out, pngSignature...)
	inserted := false
	for _, c := range chunks {
		if c.typ == "IDAT" && !inserted {
			typ, payload := textPayload(keyParameters, params)
			out = appendPNGChunk(out, typ, payload)
			if record != nil {
				out = appendPNGChunk(out, "iTXt", itxtPayload(keyRecord, record))
			}
			inserted = true
		}
		if k, _, _ := pngText(c); k == keyParameters || k == keyRecord {
			continue // replaced by ours
		}
		out = append(out, c.raw...)
	}
	if !inserted {
		return nil, fmt.Errorf("png: no IDAT chunk: %w", ErrMalformed)
	}
	return out, nil
}

// pngText decodes a tEXt, zTXt or iTXt chunk into keyword and UTF-8 text.
// It returns an empty keyword for other chunks and malformed ones.
func pngText(c pngChunk) (keyword string, text []byte, ok bool) {
	switch c.typ {
	case "tEXt", "zTXt", "iTXt":
	default:
		return "", nil, false
	}
	k, rest, found := bytes.Cut(c.data, []byte{0})
	if !found || len(k) == 0 || len(k) > 79 {
		return "", nil, false
	}
	keyword = string(k)
	switch c.typ {
	case "tEXt":
		return keyword, latin1ToUTF8(rest), true
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return keyword, nil, false
		}
		t, err := inflate(rest[1:])
		if err != nil {
			return keyword, nil, false
		}
		return keyword, latin1ToUTF8(t), true
	}
	// iTXt: compression flag, method, language\0, translated keyword\0.
	if len(rest) < 2 {
		return keyword, nil, false
	}
	compressed, method := rest[0], rest[1]
	rest = rest[2:]
	for range 2 {
		var found bool
		if _, rest, found = bytes.Cut(rest, []byte{0}); !found {
			return keyword, nil, false
		}
	}
	if compressed == 0 {
		return keyword, rest, true
	}
	if method != 0 {
		return keyword, nil, false
	}
	t, err := inflate(rest)
	if err != nil {
		return keyword, nil, false
	}
	return keyword, t, true
}

// latin1ToUTF8 widens ISO 8859-1 bytes; at most doubles the size.
func latin1ToUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}

// inflate decompresses zlib data, refusing output beyond maxInflated.
func inflate(b []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxInflated {
		return nil, fmt.Errorf("png: compressed text over %d bytes: %w", maxInflated, ErrMalformed)
	}
	return out, nil
}

func readPNG(data []byte) (params string, hasParams bool, record []byte, err error) {
	chunks, err := pngChunks(data)
	if err != nil {
		return "", false, nil, err
	}
	for _, c := range chunks {
		k, text, ok := pngText(c)
		if !ok {
			continue
		}
		switch k {
		case keyParameters:
			params, hasParams = string(text), true
		case keyRecord:
			record = bytes.Clone(text)
		}
	}
	return params, hasParams, record, nil
}
