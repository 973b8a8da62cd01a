package expand

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// DefaultNameTemplate is the file name template used when the user gives
// none: row number and 1-based image index.
const DefaultNameTemplate = "{row}-{n}"

// maxPad bounds {row:N} zero padding; 20 digits hold any int64.
const maxPad = 20

type nameKind uint8

const (
	nameText nameKind = iota
	nameRow
	nameN
	nameSeed
	nameModel
	nameDate
	nameColumn
)

var nameFieldKinds = map[string]nameKind{
	"row": nameRow, "n": nameN, "seed": nameSeed, "model": nameModel, "date": nameDate,
}

type namePart struct {
	kind nameKind
	// text is literal text for nameText and the trimmed column name for
	// nameColumn, key its lower-case form.
	text string
	key  string
	// pad is the zero-padded width of a numeric field, 0 for none.
	pad int
}

// NameFields are the built-in values a file name template can use.
type NameFields struct {
	// Row is the row number as the caller counts it (shown as {row}).
	Row int
	// N is the 1-based image index within the row ({n}).
	N int
	// Seed is the image's seed ({seed}).
	Seed int64
	// Model is the model name ({model}); a '/' in it becomes '_'.
	Model string
	// Date is the batch date as YYYY-MM-DD ({date}).
	Date string
}

// NameTemplate is a parsed file name template. It is immutable and safe
// for concurrent use.
type NameTemplate struct {
	src   string
	parts []namePart
	vars  []string
}

// ParseName parses a file name template: literal text with {row}, {n},
// {seed}, {model}, {date} or any {column}, using the prompt template's brace
// and escape syntax. Numeric fields may be zero padded as {row:4}. A '/'
// written in the template makes sub-folders; the template may not be
// absolute, end with '/', or have a "." or ".." segment. Variants and
// nested braces are refused. Built-in field names win over columns of the
// same name. Errors are *SyntaxError.
func ParseName(src string) (*NameTemplate, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &SyntaxError{Offset: 0, Msg: "empty file name template"}
	}
	nt := &NameTemplate{src: src}
	// shape is the template with every field replaced by "x", to check the
	// folder structure that the literal text alone creates.
	var text, shape strings.Builder
	flush := func() {
		if text.Len() > 0 {
			nt.parts = append(nt.parts, namePart{kind: nameText, text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '\\':
			if i+1 < len(src) && isEscapable(src[i+1]) {
				i++
				c = src[i]
			}
			text.WriteByte(c)
			shape.WriteByte(c)
		case '}':
			return nil, &SyntaxError{Offset: i, Msg: "unexpected '}' without a matching '{' (write \\} for a literal brace)"}
		case '{':
			end, err := nameField(src, i)
			if err != nil {
				return nil, err
			}
			flush()
			p, err := parseNameField(src[i+1:end], i)
			if err != nil {
				return nil, err
			}
			nt.parts = append(nt.parts, p)
			if p.kind == nameColumn && !containsFold(nt.vars, p.text) {
				nt.vars = append(nt.vars, p.text)
			}
			shape.WriteByte('x')
			i = end
		default:
			text.WriteByte(c)
			shape.WriteByte(c)
		}
	}
	flush()
	if err := checkShape(shape.String()); err != nil {
		return nil, err
	}
	return nt, nil
}

// nameField returns the offset of the '}' closing the field at src[open].
func nameField(src string, open int) (int, error) {
	for i := open + 1; i < len(src); i++ {
		switch src[i] {
		case '\\':
			if i+1 < len(src) && isEscapable(src[i+1]) {
				i++
			}
		case '{':
			return 0, &SyntaxError{Offset: i, Msg: "'{' inside a file name field"}
		case '|':
			return 0, &SyntaxError{Offset: i, Msg: "variants {a|b} are not allowed in file name templates"}
		case '}':
			return i, nil
		}
	}
	return 0, &SyntaxError{Offset: open, Msg: "unclosed '{' (write \\{ for a literal brace)"}
}

func parseNameField(raw string, off int) (namePart, error) {
	name := strings.TrimSpace(unescape(raw))
	if name == "" {
		return namePart{}, &SyntaxError{Offset: off, Msg: "empty braces {}: write a field such as {row} or a column name"}
	}
	if k, ok := nameFieldKinds[strings.ToLower(name)]; ok {
		return namePart{kind: k}, nil
	}
	if base, width, ok := strings.Cut(name, ":"); ok {
		k, known := nameFieldKinds[strings.ToLower(strings.TrimSpace(base))]
		if known && (k == nameRow || k == nameN || k == nameSeed) {
			w, err := strconv.Atoi(strings.TrimSpace(width))
			if err != nil || w < 1 || w > maxPad {
				return namePart{}, &SyntaxError{Offset: off, Msg: fmt.Sprintf("bad padding in {%s}: want a width from 1 to %d", name, maxPad)}
			}
			return namePart{kind: k, pad: w}, nil
		}
	}
	return namePart{kind: nameColumn, text: name, key: strings.ToLower(name)}, nil
}

// checkShape refuses folder structure that could leave the output folder.
// Substituted values cannot add structure (their slashes are replaced), so
// checking the literal skeleton is enough.
func checkShape(shape string) error {
	if strings.HasPrefix(shape, "/") {
		return &SyntaxError{Offset: 0, Msg: "file name template must be relative, not start with '/'"}
	}
	if strings.HasSuffix(shape, "/") {
		return &SyntaxError{Offset: len(shape) - 1, Msg: "file name template must not end with '/'"}
	}
	for _, seg := range strings.Split(shape, "/") {
		if s := strings.TrimSpace(seg); s == "." || s == ".." {
			return &SyntaxError{Offset: 0, Msg: fmt.Sprintf("file name template must not contain a %q folder", s)}
		}
	}
	return nil
}

// String returns the template source as given to ParseName.
func (nt *NameTemplate) String() string { return nt.src }

// Vars returns the distinct column names the template references, built-in
// fields excluded.
func (nt *NameTemplate) Vars() []string { return append([]string(nil), nt.vars...) }

// Render returns the file name for one image: a sanitised relative path
// with '/' between folders and no extension (the caller adds it). Every
// segment passes through the rules of Sanitize; empty folder segments are
// dropped and an empty file name becomes "image-{row}-{n}". The result
// never is absolute, never contains "..", a backslash or NUL, and is never
// empty. An unknown column is an *UnknownVarError.
func (nt *NameTemplate) Render(f NameFields, vars map[string]string) (string, error) {
	var rawArr, outArr [256]byte
	raw := rawArr[:0]
	for i := range nt.parts {
		p := &nt.parts[i]
		switch p.kind {
		case nameText:
			raw = append(raw, p.text...)
		case nameRow:
			raw = appendPadded(raw, int64(f.Row), p.pad)
		case nameN:
			raw = appendPadded(raw, int64(f.N), p.pad)
		case nameSeed:
			raw = appendPadded(raw, f.Seed, p.pad)
		case nameModel:
			raw = appendValue(raw, f.Model)
		case nameDate:
			raw = appendValue(raw, f.Date)
		case nameColumn:
			v, ok := lookupVar(vars, p.text, p.key)
			if !ok {
				return "", unknownVar(p.text, vars)
			}
			raw = appendValue(raw, v)
		}
	}
	out := outArr[:0]
	lastEmpty := false
	for rest := raw; ; {
		seg := rest
		i := bytes.IndexByte(rest, '/')
		if i >= 0 {
			seg = rest[:i]
		}
		mark := len(out)
		if mark > 0 {
			out = append(out, '/')
		}
		segStart := len(out)
		out = appendSegment(out, seg)
		lastEmpty = len(out) == segStart
		if lastEmpty {
			out = out[:mark]
		}
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	if lastEmpty {
		if len(out) > 0 {
			out = append(out, '/')
		}
		out = append(out, "image-"...)
		out = strconv.AppendInt(out, int64(f.Row), 10)
		out = append(out, '-')
		out = strconv.AppendInt(out, int64(f.N), 10)
	}
	return string(out), nil
}

// appendValue appends a substituted value, replacing path separators so a
// value can never add a folder.
func appendValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '/' || c == '\\' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendPadded appends v in decimal, zero padded to width digits; negative
// numbers (never produced by bulkgen, but possible) are not padded.
func appendPadded(dst []byte, v int64, width int) []byte {
	if v >= 0 {
		digits := 1
		for x := v; x >= 10; x /= 10 {
			digits++
		}
		for ; digits < width; digits++ {
			dst = append(dst, '0')
		}
	}
	return strconv.AppendInt(dst, v, 10)
}
