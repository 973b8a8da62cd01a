// Package export writes batches out of bulkgen: a ZIP archive streamed
// straight to its destination (an HTTP response), entry by entry, with no
// temporary copy of the archive and memory that does not grow with the
// size of the images.
//
// Image bytes are stored, not deflated: PNG, JPEG and WebP are compressed
// already, and deflate runs at about 50 MB/s where storing runs at disk
// speed. Text (the manifests) is deflated.
package export

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/expand"
)

// bufferSize is the write buffer in front of the destination: large enough
// that an HTTP response is written in big chunks, small enough not to
// matter per request.
const bufferSize = 256 << 10

// copySize is the read size for an image: most images fit in one read.
const copySize = 256 << 10

// Zip streams a ZIP archive to a writer. Entries are written in the order
// they are added; nothing is kept per entry but its central-directory
// header (the ZIP format needs those at the end), a few dozen bytes plus
// the name.
type Zip struct {
	zw  *zip.Writer
	buf []byte // copy buffer, reused for every entry
}

// NewZip starts an archive on w. Call Close to write the central directory;
// an archive that is not closed is truncated and unreadable, which is what
// a client should see when an export fails half-way.
func NewZip(w io.Writer) *Zip {
	// zip.NewWriter adopts a *bufio.Writer of at least its default size
	// instead of adding its own, so this is the only buffer.
	return &Zip{zw: zip.NewWriter(bufio.NewWriterSize(w, bufferSize)), buf: make([]byte, copySize)}
}

// Store adds the entry name holding everything read from r, uncompressed,
// and returns the number of bytes copied. name must be a SafeName result.
func (z *Zip) Store(name string, modified time.Time, r io.Reader) (int64, error) {
	if err := CheckName(name); err != nil {
		return 0, err
	}
	fw, err := z.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: modified})
	if err != nil {
		return 0, fmt.Errorf("zip entry %s: %w", name, err)
	}
	// Hiding r's WriterTo makes the copy use z.buf: a whole small image in
	// one read, where *os.File.WriteTo would fall back to 32 KiB reads.
	n, err := io.CopyBuffer(fw, struct{ io.Reader }{r}, z.buf)
	if err != nil {
		return n, fmt.Errorf("zip entry %s: %w", name, err)
	}
	return n, nil
}

// Deflate adds the entry name and returns the writer for its content,
// compressed; it is valid until the next call on z.
func (z *Zip) Deflate(name string, modified time.Time) (io.Writer, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	fw, err := z.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified})
	if err != nil {
		return nil, fmt.Errorf("zip entry %s: %w", name, err)
	}
	return fw, nil
}

// Close writes the central directory and flushes everything to the
// destination.
func (z *Zip) Close() error {
	if err := z.zw.Close(); err != nil {
		return fmt.Errorf("close zip: %w", err)
	}
	return nil
}

// maxNameLen bounds an entry name; longer names are cut (before the
// extension) so that every unzip tool and file system accepts them.
const maxNameLen = 240

// SafeName turns a stored, user-influenced file name (relative, "/"
// between folders, no extension) and an extension ("png", ".jpg") into a
// ZIP entry name that cannot leave the folder it is extracted into: every
// segment is sanitised, empty, "." and ".." segments are dropped,
// backslashes count as separators, and the result passes CheckName. A name
// with nothing usable left becomes "image".
func SafeName(name, ext string) string {
	var segs []string
	for _, seg := range strings.Split(strings.ReplaceAll(name, `\`, "/"), "/") {
		seg = strings.TrimSpace(seg)
		if seg == "" || seg == "." || seg == ".." {
			continue
		}
		if s := expand.Sanitize(seg); s != "" && s != "." && s != ".." {
			segs = append(segs, s)
		}
	}
	base := strings.Join(segs, "/")
	if base == "" {
		base = "image"
	}
	ext = strings.TrimPrefix(ext, ".")
	if ext != "" {
		ext = "." + expand.Sanitize(ext)
	}
	if len(base)+len(ext) > maxNameLen {
		base = cutUTF8(base, maxNameLen-len(ext))
	}
	out := base + ext
	if CheckName(out) != nil {
		// Unreachable with the sanitiser above; kept so that a future change
		// there cannot produce an escaping name.
		return "image" + ext
	}
	return out
}

// CheckName reports whether name is a safe ZIP entry name: relative,
// slash-separated, with no "..", no backslash, no NUL and no empty
// segment, local by the rules os.Root applies when it is extracted.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("zip entry name is empty")
	case strings.Contains(name, ".."):
		return fmt.Errorf("zip entry name %q contains \"..\"", name)
	case strings.ContainsAny(name, "\\\x00:"):
		return fmt.Errorf("zip entry name %q contains a backslash, colon or NUL", name)
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return fmt.Errorf("zip entry name %q is absolute or has an empty segment", name)
	case !filepath.IsLocal(filepath.FromSlash(name)):
		return fmt.Errorf("zip entry name %q is not local", name)
	}
	return nil
}

// cutUTF8 shortens s to at most n bytes without splitting a character and
// without leaving a trailing separator, dot or space.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return strings.TrimRight(s[:n], "/. ")
}

// Namer hands out unique entry names within one archive: the second
// "cat.png" becomes "cat-2.png". It is deterministic, so two passes over
// the same rows in the same order give the same names (the manifests are
// written in passes after the images).
type Namer struct {
	used map[string]struct{}
}

// NewNamer returns a Namer with reserved names already taken (for example
// "manifest.csv").
func NewNamer(reserved ...string) *Namer {
	n := &Namer{used: make(map[string]struct{}, len(reserved))}
	for _, r := range reserved {
		n.used[strings.ToLower(r)] = struct{}{}
	}
	return n
}

// Name returns the SafeName of name and ext, made unique. Names are
// compared without case, because many file systems that the archive is
// extracted onto ignore it.
func (n *Namer) Name(name, ext string) string {
	safe := SafeName(name, ext)
	if n.claim(safe) {
		return safe
	}
	dot := strings.LastIndexByte(safe, '.')
	if dot <= strings.LastIndexByte(safe, '/') {
		dot = len(safe)
	}
	for i := 2; ; i++ {
		cand := safe[:dot] + "-" + strconv.Itoa(i) + safe[dot:]
		if n.claim(cand) {
			return cand
		}
	}
}

func (n *Namer) claim(name string) bool {
	key := strings.ToLower(name)
	if _, ok := n.used[key]; ok {
		return false
	}
	n.used[key] = struct{}{}
	return true
}
