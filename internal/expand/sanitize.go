package expand

import (
	"strings"
	"unicode/utf8"
)

// maxSegment caps each path segment in bytes. Common filesystems allow 255;
// the margin leaves room for the extension and a "-N" uniqueness suffix that
// callers add afterwards.
const maxSegment = 150

// Sanitize makes name safe as a single file name on Windows, macOS and
// Linux: invalid UTF-8, control and bidi-override characters and
// < > : " / \ | ? * become '_'; runs of dots collapse to one; leading dots
// and spaces and trailing dots and spaces are trimmed; the result is cut to
// 150 bytes on a UTF-8 boundary; Windows device names (CON, PRN, AUX, NUL,
// COM0-9, LPT0-9, also with an extension) get a '_' prefix. Slashes are
// replaced, never kept, so the result cannot name a folder.
//
// The result is empty for input such as "", ".." or "  "; callers must then
// use a fallback name of their own.
func Sanitize(name string) string {
	var arr [maxSegment + 8]byte
	return string(appendSegment(arr[:0], []byte(name)))
}

// appendSegment appends the sanitised form of seg to dst; see Sanitize.
func appendSegment(dst, seg []byte) []byte {
	start := len(dst)
	for i := 0; i < len(seg); {
		r, size := rune(seg[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(seg[i:])
		}
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = append(dst, '_')
		case badRune(r):
			dst = append(dst, '_')
		case (r == ' ' || r == '.') && len(dst) == start:
			// Leading dots would hide the file or climb out of the folder;
			// leading spaces are trimmed by some tools and not others.
		case r == '.' && dst[len(dst)-1] == '.':
			// Collapsing ".." keeps any path from ever containing it.
		default:
			dst = append(dst, seg[i:i+size]...)
		}
		i += size
	}
	dst = cutSegment(dst, start)
	if reservedName(dst[start:]) {
		dst = append(dst, 0)
		copy(dst[start+1:], dst[start:])
		dst[start] = '_'
		// The prefix can push a long "CON.…" name one byte over.
		dst = cutSegment(dst, start)
	}
	return dst
}

// cutSegment shortens dst[start:] to maxSegment bytes on a rune boundary,
// then trims trailing dots and spaces: Windows silently drops them, which
// would make two of our names the same file.
func cutSegment(dst []byte, start int) []byte {
	if len(dst)-start > maxSegment {
		cut := start + maxSegment
		for cut > start && !utf8.RuneStart(dst[cut]) {
			cut--
		}
		dst = dst[:cut]
	}
	for len(dst) > start && (dst[len(dst)-1] == ' ' || dst[len(dst)-1] == '.') {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// badRune reports characters that are invalid or treacherous in a file name.
func badRune(r rune) bool {
	switch {
	case r < 0x80:
		return r < 0x20 || r == 0x7f || badASCII[r]
	case r <= 0x9f:
		return true // C1 controls
	case r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		// Bidi controls let "photo\u202egnp.exe" display as "photoexe.png".
		return true
	}
	return false
}

// badASCII marks the printable characters Windows forbids in names; '/'
// and '\' are among them because a value must never add a folder.
var badASCII = [128]bool{'<': true, '>': true, ':': true, '"': true, '/': true, '\\': true, '|': true, '?': true, '*': true}

// reservedNames are the Windows device names, which are reserved with any
// extension and in any case. Windows also treats the superscript digits as
// digits here.
var reservedNames = [...]string{
	"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
	"COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³",
	"LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
}

func reservedName(seg []byte) bool {
	base := seg
	for i, c := range seg {
		if c == '.' {
			base = seg[:i]
			break
		}
	}
	for len(base) > 0 && base[len(base)-1] == ' ' {
		base = base[:len(base)-1]
	}
	// Every reserved name starts with C, P, A, N or L: a cheap first test,
	// since this runs for every segment of every file name.
	if len(base) < 3 || len(base) > 7 || !strings.ContainsRune("cpanl", rune(base[0]|0x20)) {
		return false
	}
	b := string(base)
	for _, r := range reservedNames {
		if strings.EqualFold(b, r) {
			return true
		}
	}
	return false
}
