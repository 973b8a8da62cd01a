package imagemeta

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// APP1 identifiers of XMP and of Adobe's ExtendedXMP (XMP Specification
// Part 3, section 1.1.3.1), each NUL-terminated.
const (
	xmpID         = "http://ns.adobe.com/xap/1.0/\x00"
	extendedXMPID = "http://ns.adobe.com/xmp/extension/\x00"
	exifID        = "Exif\x00\x00"
)

const (
	maxSegment = 65535 - 2 // payload bytes of one JPEG marker segment
	// extendedChunk is the ExtendedXMP bytes per segment: the payload less
	// the identifier, 32-byte GUID, and full length and offset words.
	extendedChunk = maxSegment - len(extendedXMPID) - 32 - 4 - 4
)

// jpegSegment is one marker segment before the image scan.
type jpegSegment struct {
	marker  byte
	payload []byte // after the length word
	raw     []byte // from the first 0xFF to the end of the payload
}

// jpegSegments splits the header of a JPEG (after SOI, up to the first SOS
// or EOI) into segments and returns the offset where the rest begins.
func jpegSegments(data []byte) ([]jpegSegment, int, error) {
	if len(data) < 2 || data[0] != 0xff || data[1] != 0xd8 {
		return nil, 0, ErrUnknownFormat
	}
	var segs []jpegSegment
	pos := 2
	for {
		start := pos
		if pos >= len(data) || data[pos] != 0xff {
			return nil, 0, fmt.Errorf("jpeg: no marker at offset %d: %w", pos, ErrMalformed)
		}
		for pos < len(data) && data[pos] == 0xff { // fill bytes
			pos++
		}
		if pos >= len(data) {
			return nil, 0, fmt.Errorf("jpeg: truncated marker: %w", ErrMalformed)
		}
		marker := data[pos]
		pos++
		switch {
		case marker == 0xda || marker == 0xd9: // SOS, EOI: the rest is copied as is
			return segs, start, nil
		case marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8): // no length
			continue
		}
		if pos+2 > len(data) {
			return nil, 0, fmt.Errorf("jpeg: truncated segment length: %w", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(data[pos:]))
		if n < 2 || pos+n > len(data) {
			return nil, 0, fmt.Errorf("jpeg: segment length %d out of range: %w", n, ErrMalformed)
		}
		segs = append(segs, jpegSegment{marker: marker, payload: data[pos+2 : pos+n], raw: data[start : pos+n]})
		pos += n
	}
}

func isXMPSegment(s jpegSegment) bool {
	return s.marker == 0xe1 && (bytes.HasPrefix(s.payload, []byte(xmpID)) || bytes.HasPrefix(s.payload, []byte(extendedXMPID)))
}

func appendAPP1(dst []byte, payload ...[]byte) []byte {
	n := 2
	for _, p := range payload {
		n += len(p)
	}
	dst = append(dst, 0xff, 0xe1)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, p := range payload {
		dst = append(dst, p...)
	}
	return dst
}

// xmpSegments builds the APP1 segments for m: one standard XMP segment, and
// ExtendedXMP segments when the packet does not fit in one.
func xmpSegments(m xmpMeta) []byte {
	packet := buildXMP(m, true)
	if len(xmpID)+len(packet) <= maxSegment {
		return appendAPP1(nil, []byte(xmpID), packet)
	}
	ext := buildXMP(m, false)
	sum := md5.Sum(ext) // the GUID ExtendedXMP prescribes, not a security measure
	guid := strings.ToUpper(hex.EncodeToString(sum[:]))
	out := appendAPP1(nil, []byte(xmpID), buildXMP(xmpMeta{extendedGUID: guid}, true))
	var words [8]byte
	binary.BigEndian.PutUint32(words[0:4], uint32(len(ext)))
	for off := 0; off < len(ext); off += extendedChunk {
		binary.BigEndian.PutUint32(words[4:8], uint32(off))
		out = appendAPP1(out, []byte(extendedXMPID), []byte(guid), words[:], ext[off:min(off+extendedChunk, len(ext))])
	}
	return out
}

func embedJPEG(data []byte, params string, record []byte) ([]byte, error) {
	segs, rest, err := jpegSegments(data)
	if err != nil {
		return nil, err
	}
	xmp := xmpSegments(xmpMeta{parameters: params, hasParameters: true, record: record})
	out := make([]byte, 0, len(data)+len(xmp))
	out = append(out, 0xff, 0xd8)
	// JFIF (APP0) must stay first and Exif conventionally follows it; the
	// XMP segments go right after those.
	i := 0
	for ; i < len(segs); i++ {
		s := segs[i]
		if s.marker != 0xe0 && !(s.marker == 0xe1 && bytes.HasPrefix(s.payload, []byte(exifID))) {
			break
		}
		out = append(out, s.raw...)
	}
	out = append(out, xmp...)
	for _, s := range segs[i:] {
		if !isXMPSegment(s) {
			out = append(out, s.raw...)
		}
	}
	return append(out, data[rest:]...), nil
}

func readJPEG(data []byte) (params string, hasParams bool, record []byte, err error) {
	segs, _, err := jpegSegments(data)
	if err != nil {
		return "", false, nil, err
	}
	var (
		main xmpMeta
		ok   bool
	)
	for _, s := range segs {
		if s.marker == 0xe1 && bytes.HasPrefix(s.payload, []byte(xmpID)) {
			if m, err := parseXMP(s.payload[len(xmpID):]); err == nil {
				main, ok = m, true
				break
			}
		}
	}
	if !ok {
		return "", false, nil, nil
	}
	if main.extendedGUID != "" {
		if ext, err := extendedXMP(segs, main.extendedGUID, len(data)); err == nil {
			if m, err := parseXMP(ext); err == nil {
				if m.hasParameters {
					main.parameters, main.hasParameters = m.parameters, true
				}
				if m.record != nil {
					main.record = m.record
				}
			}
		}
	}
	return main.parameters, main.hasParameters, main.record, nil
}

// extendedXMP reassembles the ExtendedXMP packet with guid and checks its
// digest. The declared length is trusted only up to the file's size.
func extendedXMP(segs []jpegSegment, guid string, limit int) ([]byte, error) {
	var buf []byte
	got := 0
	for _, s := range segs {
		if s.marker != 0xe1 || !bytes.HasPrefix(s.payload, []byte(extendedXMPID)) {
			continue
		}
		p := s.payload[len(extendedXMPID):]
		if len(p) < 40 || string(p[:32]) != guid {
			continue
		}
		full := binary.BigEndian.Uint32(p[32:36])
		off := binary.BigEndian.Uint32(p[36:40])
		chunk := p[40:]
		if uint64(full) > uint64(limit) {
			return nil, fmt.Errorf("jpeg: extended XMP length %d: %w", full, ErrMalformed)
		}
		if buf == nil {
			buf = make([]byte, full)
		}
		if uint64(full) != uint64(len(buf)) || uint64(off)+uint64(len(chunk)) > uint64(len(buf)) {
			return nil, fmt.Errorf("jpeg: inconsistent extended XMP: %w", ErrMalformed)
		}
		copy(buf[off:], chunk)
		got += len(chunk)
	}
	if buf == nil || got < len(buf) {
		return nil, fmt.Errorf("jpeg: extended XMP incomplete: %w", ErrMalformed)
	}
	sum := md5.Sum(buf)
	if !strings.EqualFold(hex.EncodeToString(sum[:]), guid) {
		return nil, fmt.Errorf("jpeg: extended XMP digest mismatch: %w", ErrMalformed)
	}
	return buf, nil
}
