package input

import (
	"bytes"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	// bufSize is the read buffer. Records longer than it are assembled in a
	// separate, bounded record buffer.
	bufSize = 64 << 10
	// sniffSize is how much of the start of the input is looked at to detect
	// the encoding, binary data, the format and the CSV delimiter.
	sniffSize = 8 << 10
)

// source is a buffered byte reader that counts physical lines. LF, CRLF and
// a lone CR each end one line. We use our own instead of bufio.Reader so the
// CSV scanner can run tight loops over the buffer and so line counting and
// the lone-CR rule live in one place.
type source struct {
	rd   io.Reader
	buf  []byte
	r, w int
	err  error // first error from rd (io.EOF at the end); sticky
	line int   // 1-based physical line of buf[r]
	// skipLF is set after a CR ended a line: an LF right after it belongs to
	// the same line break. It is resolved lazily so that a record ending in
	// CR is delivered without waiting for the next byte.
	skipLF bool
}

func newSource(rd io.Reader) *source {
	return &source{rd: rd, buf: make([]byte, bufSize), line: 1}
}

// fill reads more bytes after the unread ones, compacting the buffer first.
// After it returns, either more bytes are buffered or s.err is set.
func (s *source) fill() {
	if s.err != nil {
		return
	}
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:s.w])
		s.r, s.w = 0, n
	}
	if s.w == len(s.buf) {
		return
	}
	// A reader may return 0, nil a few times; more than that is a broken
	// reader and would make us spin.
	for range 100 {
		n, err := s.rd.Read(s.buf[s.w:])
		s.w += n
		if err != nil {
			s.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	s.err = io.ErrNoProgress
}

// more makes at least one unread byte available; false means end of input
// or a read error (see readErr).
func (s *source) more() bool {
	if s.r < s.w {
		return true
	}
	s.fill()
	return s.r < s.w
}

// readErr is the error that stopped reading, nil at a clean end of input.
func (s *source) readErr() error {
	if s.err == io.EOF {
		return nil
	}
	return s.err
}

// peek returns up to n unread bytes without consuming them, reading until n
// are buffered or the input ends. n must not exceed bufSize.
func (s *source) peek(n int) []byte {
	for s.w-s.r < n && s.err == nil {
		s.fill()
	}
	return s.buf[s.r:min(s.w, s.r+n)]
}

// eatLF consumes the LF of a CRLF whose CR ended the previous line.
func (s *source) eatLF() {
	if !s.skipLF {
		return
	}
	s.skipLF = false
	if s.more() && s.buf[s.r] == '\n' {
		s.r++
	}
}

// Read lets a decoder sit on top of a source whose start was already
// inspected (the UTF-16 case).
func (s *source) Read(p []byte) (int, error) {
	if !s.more() {
		if s.err == nil {
			return 0, io.EOF
		}
		return 0, s.err
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += n
	return n, nil
}

// readLine returns the next physical line without its terminator, appended
// to dst[:0], and the line number it starts on. A line longer than limit bytes
// is consumed to its end but only reported (long), never buffered whole.
// ok is false at the end of input (check readErr).
func (s *source) readLine(dst []byte, limit int) (line []byte, start int, long, ok bool) {
	s.eatLF()
	if !s.more() {
		return dst[:0], 0, false, false
	}
	start = s.line
	dst = dst[:0]
	n := 0
	for {
		seg := s.buf[s.r:s.w]
		i := indexEOL(seg)
		part := seg
		if i >= 0 {
			part = seg[:i]
		}
		n += len(part)
		if !long {
			if n > limit {
				long = true
			} else {
				dst = appendBounded(dst, part, limit)
			}
		}
		if i >= 0 {
			s.skipLF = seg[i] == '\r'
			s.r += i + 1
			s.line++
			return dst, start, long, true
		}
		s.r = s.w
		if !s.more() {
			return dst, start, long, true
		}
	}
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if j := bytes.IndexByte(b[:i], '\r'); j >= 0 {
		return j
	}
	return i
}

// utf16Reader converts UTF-16 (either byte order) to UTF-8 while streaming.
// Unpaired surrogates and a dangling odd byte at the end become U+FFFD: they
// cannot be reported against a UTF-8 position, and the row they land in is
// still visible to the user in the preview.
type utf16Reader struct {
	rd      io.Reader
	big     bool
	in      []byte
	nin     int    // raw bytes buffered in in[:nin]
	out     []byte // decoded bytes not yet returned
	high    rune   // pending high surrogate, 0 if none
	err     error
	flushed bool
}

func newUTF16Reader(rd io.Reader, bigEndian bool) *utf16Reader {
	return &utf16Reader{rd: rd, big: bigEndian, in: make([]byte, 16<<10)}
}

func (u *utf16Reader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil {
			if !u.flushed {
				u.flushed = true
				if u.high != 0 || u.nin > 0 {
					u.high, u.nin = 0, 0
					u.out = utf8.AppendRune(u.out, utf8.RuneError)
					continue
				}
			}
			return 0, u.err
		}
		n, err := u.rd.Read(u.in[u.nin:])
		u.nin += n
		u.err = err
		u.decode()
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// decode converts the complete code units in u.in, keeping an odd trailing
// byte for the next read.
func (u *utf16Reader) decode() {
	out := u.out[:0]
	i := 0
	for ; i+1 < u.nin; i += 2 {
		var c rune
		if u.big {
			c = rune(u.in[i])<<8 | rune(u.in[i+1])
		} else {
			c = rune(u.in[i+1])<<8 | rune(u.in[i])
		}
		switch {
		case u.high != 0:
			r := utf16.DecodeRune(u.high, c)
			u.high = 0
			if r == utf8.RuneError && utf16.IsSurrogate(c) && c < 0xdc00 {
				// A second high surrogate: the first was unpaired.
				out = utf8.AppendRune(out, utf8.RuneError)
				u.high = c
				continue
			}
			if r == utf8.RuneError {
				out = utf8.AppendRune(out, utf8.RuneError)
				if !utf16.IsSurrogate(c) {
					out = utf8.AppendRune(out, c)
				}
				continue
			}
			out = utf8.AppendRune(out, r)
		case c >= 0xd800 && c < 0xdc00:
			u.high = c
		case c >= 0xdc00 && c < 0xe000:
			out = utf8.AppendRune(out, utf8.RuneError)
		default:
			out = utf8.AppendRune(out, c)
		}
	}
	u.nin = copy(u.in, u.in[i:u.nin])
	u.out = out
}

// looksUTF16 guesses the byte order of UTF-16 text written without a BOM.
// Text that is mostly ASCII has a zero in every other byte; we require that
// pattern in at least 3/4 of the code units and zeros almost never in the
// other position, so UTF-8 text (which has no NUL bytes) never matches.
func looksUTF16(sample []byte) (bigEndian, ok bool) {
	n := len(sample) / 2
	if n < 2 {
		return false, false
	}
	var evenZero, oddZero int
	for i := 0; i+1 < len(sample); i += 2 {
		if sample[i] == 0 {
			evenZero++
		}
		if sample[i+1] == 0 {
			oddZero++
		}
	}
	switch {
	case oddZero*4 >= n*3 && evenZero*10 <= n:
		return false, true
	case evenZero*4 >= n*3 && oddZero*10 <= n:
		return true, true
	}
	return false, false
}

// appendBounded appends p to dst, growing by doubling but never beyond limit
// bytes of capacity when the result fits in limit. Plain append grows large
// slices by 1.25x, which for a 1 MiB record allocates several MiB in total.
func appendBounded(dst, p []byte, limit int) []byte {
	if need := len(dst) + len(p); need > cap(dst) {
		c := max(2*cap(dst), need, 512)
		if need <= limit {
			c = min(c, limit)
		}
		nb := make([]byte, len(dst), c)
		copy(nb, dst)
		dst = nb
	}
	return append(dst, p...)
}
