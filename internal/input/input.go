package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// Format names accepted in Options.Format and returned by Reader.Format.
const (
	FormatTXT      = "txt"
	FormatCSV      = "csv"
	FormatJSONL    = "jsonl"
	FormatManifest = "manifest"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxRecordBytes = 1 << 20
	DefaultMaxColumns     = 1000
)

// Sentinel errors wrapped by the fatal errors of Open and Next.
var (
	// ErrEmpty means the input has no content at all (no bytes, or only
	// blank lines).
	ErrEmpty = errors.New("input is empty")
	// ErrNotText means the input looks binary (NUL bytes near the start,
	// or a ZIP/.xlsx file) or is in an encoding we do not read.
	ErrNotText = errors.New("input is not UTF-8 or UTF-16 text")
	// ErrHeader means a CSV header cannot be used (too long, too many
	// columns, duplicate names, bad quoting or encoding).
	ErrHeader = errors.New("bad CSV header")
	// ErrRecordTooLong means a CSV quoted field runs past MaxRecordBytes;
	// usually a closing quote is missing, and no later record boundary can
	// be trusted, so reading stops.
	ErrRecordTooLong = errors.New("quoted CSV field too long")
)

// Row is one input record. Values is a fresh map for every row that the
// Reader never touches again, so callers may keep it; its strings share one
// backing allocation per row.
type Row struct {
	// File is the source name as given to Open.
	File string
	// Line is the 1-based physical line where the record starts.
	Line int
	// Values holds canonical field names for recognised fields ("prompt",
	// "negative_prompt", "model", "size", "aspect_ratio", "quality", "n",
	// "seed", "format", "style", "name"), "opt.<x>" provider options, and
	// template variables under their header name as written (trimmed).
	// CSV rows have an entry for every named column ("" for empty or
	// missing cells); TXT and JSONL rows only for what the line gives. An
	// empty canonical value means "not set".
	Values map[string]string
	// Literal marks a prompt that is already resolved (manifest input): it
	// must not be run through the template language again.
	Literal bool
}

// RowError is a problem with one record. Reading can go on: the caller
// reports it and calls Next again.
type RowError struct {
	// File is the source name as given to Open.
	File string
	// Line is the 1-based physical line of the problem when known, else of
	// the start of the record.
	Line int
	// Column is the 1-based byte column within Line, 0 when the problem is
	// not at one place (a CSV cell problem names the cell in Msg instead).
	Column int
	// Msg says what is wrong and, where we can tell, how to fix it.
	Msg string
}

// Error formats the error as "file:line: msg" or "file:line:col: msg".
func (e *RowError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Options tune Open. The zero value detects everything and uses the default
// limits.
type Options struct {
	// Format is "", "txt", "csv", "jsonl" or "manifest". "" picks the
	// format from the file name extension, then by sniffing the content.
	// CSV and JSONL input whose header (first object) has the manifest
	// columns is read as a manifest whatever Format says.
	Format string
	// Delimiter is the CSV field separator; 0 detects one of ',', ';',
	// tab and '|' from the header line. It must be an ASCII character other
	// than a quote, CR, LF or NUL.
	Delimiter rune
	// MaxRecordBytes bounds one line (TXT, JSONL) or record (CSV); 0 means
	// DefaultMaxRecordBytes.
	MaxRecordBytes int
	// MaxColumns bounds the CSV header and the keys of a JSON object; 0
	// means DefaultMaxColumns.
	MaxColumns int
}

// Reader streams rows from one input. It holds at most one record in memory
// (bounded by Options.MaxRecordBytes) plus fixed buffers. It is not safe for
// concurrent use.
type Reader struct {
	name   string
	format string
	opt    Options
	src    *source

	// CSV and CSV manifest state.
	csv       *csvScanner
	cols      []string // mapped name per column; "" for unnamed columns
	header    []string
	vars      []string
	hasPrompt bool

	manifestJSONL bool   // JSONL lines are manifest objects
	pending       []byte // a JSONL line read ahead by Open
	pendingLine   int
	hasPending    bool

	lineBuf []byte
	err     error // sticky fatal error
}

// Open prepares to read name's content from r. Fatal problems (no content,
// binary data, an unusable CSV header, a bad option) are returned here; row
// problems come from Next. Open reads at most the first record plus a few
// KiB ahead, so it is cheap on huge inputs.
func Open(name string, r io.Reader, opt Options) (*Reader, error) {
	if opt.MaxRecordBytes <= 0 {
		opt.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if opt.MaxColumns <= 0 {
		opt.MaxColumns = DefaultMaxColumns
	}
	switch opt.Format {
	case "", FormatTXT, FormatCSV, FormatJSONL, FormatManifest:
	default:
		return nil, fmt.Errorf("%s: unknown input format %q (want txt, csv, jsonl or manifest)", name, opt.Format)
	}
	if d := opt.Delimiter; d != 0 && (d >= utf8.RuneSelf || d == '"' || d == '\n' || d == '\r' || d == 0) {
		return nil, fmt.Errorf("%s: unusable CSV delimiter %q", name, d)
	}

	src, err := decodeText(name, newSource(r))
	if err != nil {
		return nil, err
	}
	rd := &Reader{name: name, opt: opt, src: src}

	sample := src.peek(sniffSize)
	if err := src.readErr(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", name, err)
	}
	if len(bytes.TrimSpace(sample)) == 0 && src.err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrEmpty)
	}
	if i := bytes.IndexByte(sample, 0); i >= 0 {
		return nil, fmt.Errorf("%s: %w: NUL byte at offset %d (export spreadsheets as CSV)", name, ErrNotText, i)
	}

	format := opt.Format
	if format == "" {
		format = formatFromName(name)
	}
	if format == "" {
		format = sniffFormat(sample)
	}
	if format == FormatTXT && opt.Format == "" && isTabHeader(sample) {
		// Excel's "Unicode Text" export: a tab-separated table in a .txt file.
		format = FormatCSV
		rd.opt.Delimiter = '\t'
	}
	if format == FormatCSV && opt.Delimiter == 0 && strings.EqualFold(path.Ext(name), ".tsv") {
		rd.opt.Delimiter = '\t'
	}
	if format == FormatManifest {
		format = FormatCSV
		if firstByte(sample) == '{' {
			format = FormatJSONL
		}
		rd.format = FormatManifest // required: checked below
	}

	switch format {
	case FormatTXT:
		rd.format = FormatTXT
		rd.hasPrompt = true
	case FormatCSV:
		err = rd.openCSV(sample)
	case FormatJSONL:
		err = rd.openJSONL()
	}
	if err != nil {
		return nil, err
	}
	return rd, nil
}

// decodeText strips a UTF-8 BOM and puts a UTF-16 decoder in front of
// UTF-16 input (with a BOM, or guessed from the NUL pattern of mostly-ASCII
// text without one). Other input is taken as UTF-8 and checked per record.
func decodeText(name string, src *source) (*source, error) {
	head := src.peek(512)
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		src.r += 3
		return src, nil
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		src.r += 2
		return newSource(newUTF16Reader(src, false)), nil
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		src.r += 2
		return newSource(newUTF16Reader(src, true)), nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return nil, fmt.Errorf("%s: %w: it is a ZIP file (an .xlsx workbook?); save it as CSV UTF-8", name, ErrNotText)
	}
	if big, ok := looksUTF16(head); ok {
		return newSource(newUTF16Reader(src, big)), nil
	}
	return src, nil
}

// formatFromName maps a file name extension onto a format, "" if unknown.
func formatFromName(name string) string {
	switch strings.ToLower(path.Ext(strings.ReplaceAll(name, `\`, "/"))) {
	case ".txt", ".text", ".prompts":
		return FormatTXT
	case ".csv", ".tsv":
		return FormatCSV
	case ".jsonl", ".ndjson":
		return FormatJSONL
	}
	return ""
}

// sniffFormat guesses the format of input without a telling name: JSONL
// if the first non-blank character is '{'; CSV if the first line splits into
// at least two short cells of which one is the prompt or a manifest column
// (or is a lone prompt header); TXT otherwise. A CSV without a prompt column
// needs Options.Format or a .csv name.
func sniffFormat(sample []byte) string {
	if firstByte(sample) == '{' {
		return FormatJSONL
	}
	line := firstLine(sample)
	cells := splitHeaderGuess(line, detectDelimiter(line))
	prompt, manifest := false, 0
	for _, c := range cells {
		c = strings.TrimSpace(c)
		if c == "" || len(c) > 64 {
			return FormatTXT
		}
		if f, ok := CanonicalField(c); ok && f == FieldPrompt {
			prompt = true
		}
		switch strings.ToLower(c) {
		case "source_file", "source_line", "image_file", "sha256":
			manifest++
		}
	}
	if manifest == 4 || (prompt && (len(cells) >= 2 || strings.EqualFold(strings.TrimSpace(cells[0]), FieldPrompt))) {
		return FormatCSV
	}
	return FormatTXT
}

// isTabHeader reports whether the first line is a tab-separated header that
// sniffFormat would take for CSV.
func isTabHeader(sample []byte) bool {
	line := firstLine(sample)
	return bytes.IndexByte(line, '\t') >= 0 && detectDelimiter(line) == '\t' && sniffFormat(line) == FormatCSV
}

// firstByte is the first non-space byte of sample, 0 if none.
func firstByte(sample []byte) byte {
	s := bytes.TrimLeft(sample, " \t\r\n")
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

// firstLine is the first non-blank line of sample.
func firstLine(sample []byte) []byte {
	s := bytes.TrimLeft(sample, " \t\r\n")
	if i := indexEOL(s); i >= 0 {
		s = s[:i]
	}
	return s
}

// splitHeaderGuess splits a line on delim outside double quotes. Only for
// sniffing: quotes are removed, not unescaped.
func splitHeaderGuess(line []byte, delim byte) []string {
	var cells []string
	inQ := false
	start := 0
	for i, b := range line {
		switch {
		case b == '"':
			inQ = !inQ
		case b == delim && !inQ:
			cells = append(cells, strings.Trim(string(line[start:i]), `"`))
			start = i + 1
		}
	}
	return append(cells, strings.Trim(string(line[start:]), `"`))
}

// detectDelimiter picks the candidate that occurs most often outside double
// quotes in the header line; ties go to the earlier of ',' tab ';' '|', and a
// line with none of them is a one-column CSV with ','.
func detectDelimiter(line []byte) byte {
	cands := [...]byte{',', '\t', ';', '|'}
	var counts [len(cands)]int
	inQ := false
	for _, b := range line {
		if b == '"' {
			inQ = !inQ
			continue
		}
		if inQ {
			continue
		}
		for i, c := range cands {
			if b == c {
				counts[i]++
			}
		}
	}
	best := 0
	for i := range cands {
		if counts[i] > counts[best] {
			best = i
		}
	}
	return cands[best]
}

// Next returns the next row. It returns io.EOF at the end, a *RowError for
// a bad record (call Next again to go on), and any other error when reading
// cannot go on; after such an error Next keeps returning it.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	var (
		row Row
		err error
	)
	switch {
	case r.csv != nil:
		row, err = r.nextCSV()
	case r.format == FormatTXT:
		row, err = r.nextTXT()
	default:
		row, err = r.nextJSONL()
	}
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) {
			r.err = err
		}
		return Row{}, err
	}
	return row, nil
}

// Format is the format being read: "txt", "csv", "jsonl" or "manifest".
func (r *Reader) Format() string { return r.format }

// Header is the CSV header after alias mapping (canonical names, "opt.<x>"
// and variable names, in column order, without unnamed columns). For a
// manifest it is the list of fields its rows carry. It is nil for TXT and
// JSONL. The slice is a copy.
func (r *Reader) Header() []string { return append([]string(nil), r.header...) }

// Variables lists the CSV columns that are template variables, in header
// order; nil for other formats (manifest rows carry their own variables).
func (r *Reader) Variables() []string { return append([]string(nil), r.vars...) }

// HasPrompt reports whether rows can carry a prompt. It is false only for a
// CSV without a prompt column, where the caller must supply a template.
func (r *Reader) HasPrompt() bool { return r.hasPrompt }

// rowErr builds a *RowError for this input.
func (r *Reader) rowErr(line, col int, format string, args ...any) *RowError {
	return &RowError{File: r.name, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// checkText reports the first invalid UTF-8 sequence or NUL byte in b as
// (byte offset, message), or (-1, "") if b is clean. We report instead of
// replacing: a prompt silently mangled to U+FFFD would still be paid for.
func checkText(b []byte) (int, string) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		if j := invalidUTF8(b[:i]); j >= 0 {
			return j, badUTF8Msg(b[j:])
		}
		return i, "NUL byte (binary data in a text file?)"
	}
	if j := invalidUTF8(b); j >= 0 {
		return j, badUTF8Msg(b[j:])
	}
	return -1, ""
}

// invalidUTF8 is the offset of the first invalid UTF-8 sequence, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

func badUTF8Msg(b []byte) string {
	return fmt.Sprintf("invalid UTF-8 (byte 0x%02X); save the file as UTF-8 (in Excel: \"CSV UTF-8\")", b[0])
}
