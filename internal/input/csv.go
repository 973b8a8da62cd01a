package input

import (
	"fmt"
	"io"
	"strings"
)

// csvScanner reads RFC 4180 records straight from the source buffer. We do
// not use encoding/csv: it cannot stop counting columns without allocating
// them, cannot skip an over-long record and go on, and treats a bare quote
// in an unquoted cell (12" vinyl) as an error. Our rules, on top of RFC 4180:
//
//   - LF, CRLF and lone CR end a record; inside quotes each becomes "\n".
//   - Blanks (space, tab unless tab is the delimiter) around a cell are
//     trimmed; inside quotes they are kept.
//   - A quote inside an unquoted cell is an ordinary character.
//   - Text after a closing quote is a row error.
//   - A record longer than the limit is a row error and reading resumes after
//     it; a single quoted field longer than the limit is fatal
//     (ErrRecordTooLong), because a missing closing quote makes every later
//     record boundary a guess.
type csvScanner struct {
	src      *source
	delim    byte
	maxBytes int
	stop     [256]bool // bytes that end a run of plain unquoted text
	rec      []byte    // unescaped cell bytes of the current record
	ends     []int     // end offset in rec of each kept cell
}

// recInfo describes the record the last scan read.
type recInfo struct {
	line          int  // physical line where the record starts
	cells         int  // cells seen, including those beyond the kept ones
	extraNonEmpty bool // a cell beyond the kept ones had content
	long          bool // longer than maxBytes: rec/ends are incomplete
	errLine       int  // first structural problem, if errMsg != ""
	errCol        int
	errMsg        string
}

func newCSVScanner(src *source, delim byte, maxBytes int) *csvScanner {
	c := &csvScanner{src: src, delim: delim, maxBytes: maxBytes}
	c.stop[delim] = true
	c.stop['\n'] = true
	c.stop['\r'] = true
	return c
}

func (c *csvScanner) blank(b byte) bool {
	return (b == ' ' || b == '\t') && b != c.delim
}

const (
	stFieldStart = iota
	stUnquoted
	stQuoted
	stQuotedAfterCR // a CR inside quotes: swallow a following LF
	stQuoteSeen     // a quote inside quotes: escaped quote or the end
	stAfterQuoted
)

// scan reads the next non-empty record, keeping at most keep cells in
// c.rec/c.ends. With stopEarly it returns as soon as the record is known to
// be too long or to have more than keep cells (the header case: no point
// reading on). It returns false at the end of input; err is fatal.
func (c *csvScanner) scan(keep int, stopEarly bool, info *recInfo) (bool, error) {
	s := c.src
	*info = recInfo{}
	c.rec = c.rec[:0]
	c.ends = c.ends[:0]

	// Skip empty lines between records.
	s.eatLF()
	for {
		if !s.more() {
			return false, s.readErr()
		}
		b := s.buf[s.r]
		if b != '\n' && b != '\r' {
			break
		}
		s.r++
		s.line++
		if b == '\r' {
			s.skipLF = true
			s.eatLF()
		}
	}
	info.line = s.line

	var (
		st         = stFieldStart
		nbytes     int // raw bytes of this record consumed so far
		fieldStart int // start of the current cell in c.rec
		lineStart  = s.r
		lineBase   = 0 // bytes of the current line dropped by buffer refills
		quoteStart int // nbytes when the current quoted field opened
		qLine      int
		qCol       int
	)
	col := func(i int) int { return lineBase + i - lineStart + 1 }
	endField := func(unquoted bool) {
		if unquoted && !info.long {
			e := len(c.rec)
			for e > fieldStart && c.blank(c.rec[e-1]) {
				e--
			}
			c.rec = c.rec[:e]
		}
		info.cells++
		if info.cells > keep {
			if len(c.rec) > fieldStart {
				info.extraNonEmpty = true
			}
			c.rec = c.rec[:fieldStart]
		} else if !info.long {
			c.ends = append(c.ends, len(c.rec))
		}
		fieldStart = len(c.rec)
	}
	setErr := func(line, col int, msg string) {
		if info.errMsg == "" {
			info.errLine, info.errCol, info.errMsg = line, col, msg
		}
	}
	// add keeps raw bytes of a cell unless the record is already too long.
	add := func(p []byte) {
		nbytes += len(p)
		if info.long {
			return
		}
		if nbytes > c.maxBytes {
			info.long = true
			return
		}
		c.rec = appendBounded(c.rec, p, c.maxBytes)
	}

	for {
		if stopEarly && (info.long || info.cells > keep) {
			return true, nil
		}
		if st == stQuoted || st == stQuotedAfterCR {
			if nbytes-quoteStart > c.maxBytes {
				return false, fmt.Errorf("line %d, column %d: %w: a quoted field is longer than %d bytes; is a closing quote missing?",
					qLine, qCol, ErrRecordTooLong, c.maxBytes)
			}
		}
		if s.r == s.w {
			lineBase += s.r - lineStart
			s.fill()
			lineStart = s.r
			if s.r == s.w {
				if err := s.readErr(); err != nil {
					return false, err
				}
				// End of input ends the record.
				switch st {
				case stQuoted, stQuotedAfterCR:
					setErr(qLine, qCol, "quoted cell is never closed (missing closing quote)")
					endField(false)
				case stUnquoted, stFieldStart:
					endField(true)
				default:
					endField(false)
				}
				return true, nil
			}
		}
		buf := s.buf[:s.w]
		switch st {
		case stFieldStart:
			b := buf[s.r]
			switch {
			case c.blank(b):
				s.r++
				nbytes++
			case b == '"':
				qLine, qCol = s.line, col(s.r)
				s.r++
				nbytes++
				quoteStart = nbytes
				st = stQuoted
			default:
				st = stUnquoted
			}
		case stUnquoted:
			i := s.r
			for i < len(buf) && !c.stop[buf[i]] {
				i++
			}
			add(buf[s.r:i])
			s.r = i
			if i == len(buf) {
				continue
			}
			b := buf[i]
			s.r++
			nbytes++
			endField(true)
			if b == c.delim {
				st = stFieldStart
				continue
			}
			s.line++
			s.skipLF = b == '\r'
			return true, nil
		case stQuoted:
			i := s.r
			for i < len(buf) {
				if b := buf[i]; b == '"' || b == '\n' || b == '\r' {
					break
				}
				i++
			}
			add(buf[s.r:i])
			s.r = i
			if i == len(buf) {
				continue
			}
			b := buf[i]
			s.r++
			if b == '"' {
				nbytes++
				st = stQuoteSeen
				continue
			}
			add([]byte{'\n'})
			s.line++
			lineStart, lineBase = s.r, 0
			if b == '\r' {
				st = stQuotedAfterCR
			}
		case stQuotedAfterCR:
			if buf[s.r] == '\n' {
				s.r++
				nbytes++
				lineStart = s.r
			}
			st = stQuoted
		case stQuoteSeen:
			if buf[s.r] == '"' {
				s.r++
				add([]byte{'"'})
				st = stQuoted
				continue
			}
			st = stAfterQuoted
		case stAfterQuoted:
			b := buf[s.r]
			switch {
			case c.blank(b):
				s.r++
				nbytes++
			case b == c.delim:
				s.r++
				nbytes++
				endField(false)
				st = stFieldStart
			case b == '\n' || b == '\r':
				s.r++
				endField(false)
				s.line++
				s.skipLF = b == '\r'
				return true, nil
			default:
				setErr(s.line, col(s.r), "text after the closing quote of a cell; "+
					"to put a quote inside a cell, quote the whole cell and double the quote (\"\")")
				st = stUnquoted
			}
		}
	}
}

// openCSV reads the header, detects a manifest and maps the column names.
func (r *Reader) openCSV(sample []byte) error {
	delim := byte(r.opt.Delimiter)
	if delim == 0 {
		delim = detectDelimiter(firstLine(sample))
	}
	r.csv = newCSVScanner(r.src, delim, r.opt.MaxRecordBytes)

	var info recInfo
	ok, err := r.csv.scan(r.opt.MaxColumns, true, &info)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", r.name, ErrHeader, err)
	}
	if !ok {
		return fmt.Errorf("%s: %w", r.name, ErrEmpty)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s:%d: %w: %s", r.name, info.line, ErrHeader, fmt.Sprintf(format, args...))
	}
	switch {
	case info.long:
		return fail("header row is longer than %d bytes", r.opt.MaxRecordBytes)
	case info.cells > r.opt.MaxColumns:
		return fail("more than %d columns", r.opt.MaxColumns)
	case info.errMsg != "":
		return fail("%s", info.errMsg)
	}
	if off, msg := checkText(r.csv.rec); off >= 0 {
		return fail("%s", msg)
	}

	raw := make([]string, len(r.csv.ends))
	start := 0
	for i, end := range r.csv.ends {
		raw[i] = strings.TrimSpace(string(r.csv.rec[start:end]))
		start = end
		// Column names become variable names and manifest keys: they must
		// be text even where the record check above let a cell through.
		if off, msg := checkText([]byte(raw[i])); off >= 0 {
			return fail("column %d name: %s", i+1, msg)
		}
	}

	if isManifestHeader(raw) {
		return r.openCSVManifest(raw, fail)
	}
	if r.format == FormatManifest {
		return fail("not a bulkgen manifest: it needs the columns source_file, source_line, image_file and sha256")
	}
	r.format = FormatCSV

	r.cols = make([]string, len(raw))
	seen := make(map[string]int, len(raw))
	for i, h := range raw {
		if h == "" {
			continue
		}
		name := h
		if f, ok := CanonicalField(h); ok {
			name = f
		} else {
			r.vars = append(r.vars, name)
		}
		if j, dup := seen[name]; dup {
			return fail("duplicate column %q: column %d (%q) and column %d (%q)", name, j+1, raw[j], i+1, h)
		}
		seen[name] = i
		r.cols[i] = name
		r.header = append(r.header, name)
		if name == FieldPrompt {
			r.hasPrompt = true
		}
	}
	return nil
}

// nextCSV returns the next data row of a CSV or CSV manifest.
func (r *Reader) nextCSV() (Row, error) {
	var info recInfo
	for {
		ok, err := r.csv.scan(len(r.cols), false, &info)
		if err != nil {
			return Row{}, fmt.Errorf("%s: %w", r.name, err)
		}
		if !ok {
			return Row{}, io.EOF
		}
		switch {
		case info.long:
			return Row{}, r.rowErr(info.line, 0, "record is longer than %d bytes", r.opt.MaxRecordBytes)
		case info.errMsg != "":
			return Row{}, r.rowErr(info.errLine, info.errCol, "%s", info.errMsg)
		case info.cells > len(r.cols) && info.extraNonEmpty:
			return Row{}, r.rowErr(info.line, 0, "row has %d cells but the header has %d columns (quote cells that contain %q)",
				info.cells, len(r.cols), rune(r.csv.delim))
		}
		if len(r.csv.rec) == 0 {
			continue // every cell empty: a spacer row, as spreadsheets write them
		}
		if off, msg := checkText(r.csv.rec); off >= 0 {
			return Row{}, r.rowErr(info.line, 0, "%s: %s", r.cellName(r.cellAt(off)), msg)
		}
		line := string(r.csv.rec)
		start := 0
		if r.format == FormatManifest {
			cells := make(map[string]string, len(r.cols))
			for i, end := range r.csv.ends {
				cells[r.cols[i]] = line[start:end]
				start = end
			}
			vals, msg := manifestValues(cells, []byte(cells["vars"]))
			if msg != "" {
				return Row{}, r.rowErr(info.line, 0, "%s", msg)
			}
			return Row{File: r.name, Line: info.line, Values: vals, Literal: true}, nil
		}
		vals := make(map[string]string, len(r.header))
		for i, end := range r.csv.ends {
			if name := r.cols[i]; name != "" {
				vals[name] = line[start:end]
			} else if end > start {
				return Row{}, r.rowErr(info.line, 0, "cell %d has a value but its column has no header name", i+1)
			}
			start = end
		}
		for i := len(r.csv.ends); i < len(r.cols); i++ {
			if name := r.cols[i]; name != "" {
				vals[name] = ""
			}
		}
		return Row{File: r.name, Line: info.line, Values: vals}, nil
	}
}

// cellAt is the index of the kept cell holding byte off of the record.
func (r *Reader) cellAt(off int) int {
	for i, end := range r.csv.ends {
		if off < end {
			return i
		}
	}
	return len(r.csv.ends) - 1
}

// cellName names cell i for messages: "column 3 (size)".
func (r *Reader) cellName(i int) string {
	if i >= 0 && i < len(r.cols) && r.cols[i] != "" {
		return fmt.Sprintf("column %d (%s)", i+1, r.cols[i])
	}
	return fmt.Sprintf("column %d", i+1)
}
