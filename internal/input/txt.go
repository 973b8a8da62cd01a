package input

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// nextTXT returns the next prompt line of a TXT input.
func (r *Reader) nextTXT() (Row, error) {
	for {
		line, start, long, ok := r.src.readLine(r.lineBuf, r.opt.MaxRecordBytes)
		r.lineBuf = line
		if !ok {
			if err := r.src.readErr(); err != nil {
				return Row{}, fmt.Errorf("%s: read: %w", r.name, err)
			}
			return Row{}, io.EOF
		}
		if long {
			return Row{}, r.rowErr(start, 0, "line is longer than %d bytes", r.opt.MaxRecordBytes)
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		if off, msg := checkText(line); off >= 0 {
			return Row{}, r.rowErr(start, off+1, "%s", msg)
		}
		vals, err := ParseTXTLine(string(line))
		if err != nil {
			return Row{}, r.rowErr(start, err.Column, "%s", err.Msg)
		}
		return Row{File: r.name, Line: start, Values: vals}, nil
	}
}

// TXTError is a syntax error in one TXT line; Column is the 1-based byte
// column of the problem.
type TXTError struct {
	Column int
	Msg    string
}

// Error formats the error as "col N: msg".
func (e *TXTError) Error() string { return fmt.Sprintf("col %d: %s", e.Column, e.Msg) }

// ParseTXTLine parses one non-blank, non-comment TXT line into field values
// (see the package documentation for the syntax). It is exported for the
// prompt box of the web UI, which takes the same syntax one line at a time.
func ParseTXTLine(line string) (map[string]string, *TXTError) {
	p := txtParser{s: line}
	return p.parse()
}

type txtParser struct {
	s string
	i int
}

func (p *txtParser) errAt(i int, format string, args ...any) *TXTError {
	return &TXTError{Column: i + 1, Msg: fmt.Sprintf(format, args...)}
}

func isBlank(b byte) bool { return b == ' ' || b == '\t' || b == '\v' || b == '\f' }

func (p *txtParser) skipBlanks() {
	for p.i < len(p.s) && isBlank(p.s[p.i]) {
		p.i++
	}
}

// atOption reports whether an option ("--" at the start of a word) starts
// at i. i must be 0 or follow a blank.
func (p *txtParser) atOption(i int) bool {
	return strings.HasPrefix(p.s[i:], "--")
}

func (p *txtParser) parse() (map[string]string, *TXTError) {
	vals := make(map[string]string, 4)
	p.skipBlanks()
	begin := p.i

	// "-- text": the rest of the line is the prompt, verbatim, no options.
	if strings.HasPrefix(p.s[p.i:], "--") && (p.i+2 == len(p.s) || isBlank(p.s[p.i+2])) {
		prompt := strings.TrimSpace(p.s[p.i+2:])
		if prompt == "" {
			return nil, p.errAt(p.i, "empty prompt after \"--\"")
		}
		vals[FieldPrompt] = prompt
		return vals, nil
	}

	prompt, quoted, err := p.quotedPrompt()
	if err != nil {
		return nil, err
	}
	if !quoted {
		// The prompt runs up to the first word that starts with "--".
		end := len(p.s)
		for j := p.i; j < len(p.s); j++ {
			if (j == begin || isBlank(p.s[j-1])) && p.atOption(j) {
				end = j
				break
			}
		}
		prompt = strings.TrimSpace(p.s[p.i:end])
		if prompt == "" {
			return nil, p.errAt(begin, "missing prompt: a line is the prompt first, then its --options")
		}
		if e := dashTypo(p.s, p.i, end); e != nil {
			return nil, e
		}
		p.i = end
	} else if strings.TrimSpace(prompt) == "" {
		return nil, p.errAt(begin, "empty prompt")
	}
	vals[FieldPrompt] = prompt
	if err := p.options(vals); err != nil {
		return nil, err
	}
	return vals, nil
}

// quotedPrompt reads a prompt written in quotes. The quoted form applies
// when the line starts with a quote and the closing quote is followed by the
// end of the line or by blanks and an option; otherwise the quote is part of
// an unquoted prompt ("Hello" written on a wall).
func (p *txtParser) quotedPrompt() (string, bool, *TXTError) {
	if p.i >= len(p.s) || (p.s[p.i] != '"' && p.s[p.i] != '\'') {
		return "", false, nil
	}
	val, end, ok := readQuoted(p.s, p.i)
	if !ok {
		return "", false, p.errAt(p.i, "the quote that opens the prompt is never closed")
	}
	rest := strings.TrimLeft(p.s[end:], " \t\v\f")
	if rest != "" && (end == len(p.s) || !isBlank(p.s[end]) || !strings.HasPrefix(rest, "--")) {
		return "", false, nil
	}
	p.i = end
	return val, true, nil
}

// options parses "--name value" pairs to the end of the line.
func (p *txtParser) options(vals map[string]string) *TXTError {
	for {
		p.skipBlanks()
		if p.i >= len(p.s) {
			return nil
		}
		at := p.i
		if !p.atOption(at) {
			return p.errAt(at, "unexpected text after the options; options are --name value, and a prompt that contains \" --\" must be quoted or the line must start with \"-- \"")
		}
		j := at + 2
		for j < len(p.s) && !isBlank(p.s[j]) && p.s[j] != '=' {
			j++
		}
		name := p.s[at+2 : j]
		if name == "" {
			return p.errAt(at, "unexpected \"--\": to use \" --\" inside a prompt, quote the prompt or start the line with \"-- \"")
		}
		p.i = j
		field, err := p.field(at, name)
		if err != nil {
			return err
		}
		val, err := p.value(at, name, j < len(p.s) && p.s[j] == '=')
		if err != nil {
			return err
		}
		if field == OptPrefix {
			k, v, ok := strings.Cut(val, "=")
			if !ok || !validOptKey(k) {
				return p.errAt(at, "--opt needs key=value with a key of letters, digits, '_', '-' or '.'")
			}
			field, val = OptPrefix+k, v
		}
		if _, dup := vals[field]; dup {
			return p.errAt(at, "--%s is given twice", name)
		}
		vals[field] = val
	}
}

// field maps an option name onto its field; OptPrefix alone for --opt,
// whose key comes with the value.
func (p *txtParser) field(at int, name string) (string, *TXTError) {
	if strings.EqualFold(name, "opt") {
		return OptPrefix, nil
	}
	f, ok := CanonicalField(name)
	if !ok || f == FieldPrompt || isOpt(f) {
		return "", p.errAt(at, "unknown option --%s (known: --negative --seed --aspect --size --n --model --quality --format --style --name --opt key=value)", name)
	}
	return f, nil
}

// value reads the value of the option at column at: after "=" if eq, else
// the next word. A value is a bare word or a quoted string.
func (p *txtParser) value(at int, name string, eq bool) (string, *TXTError) {
	if eq {
		p.i++
	} else {
		p.skipBlanks()
	}
	if p.i >= len(p.s) || (!eq && p.atOption(p.i)) || (eq && isBlank(p.s[p.i])) {
		return "", p.errAt(at, "--%s needs a value", name)
	}
	if c := p.s[p.i]; c == '"' || c == '\'' {
		val, end, ok := readQuoted(p.s, p.i)
		if !ok {
			return "", p.errAt(p.i, "the quote that opens the value of --%s is never closed", name)
		}
		if end < len(p.s) && !isBlank(p.s[end]) {
			return "", p.errAt(end, "text right after the closing quote of --%s", name)
		}
		p.i = end
		return val, nil
	}
	j := p.i
	for j < len(p.s) && !isBlank(p.s[j]) {
		j++
	}
	val := p.s[p.i:j]
	p.i = j
	return val, nil
}

// readQuoted reads a quoted string starting at s[i] (a quote). In single
// quotes everything is literal; in double quotes \" and \\ are escapes and
// any other backslash is kept, so Windows paths survive. It returns the
// value and the index after the closing quote.
func readQuoted(s string, i int) (string, int, bool) {
	q := s[i]
	if q == '\'' {
		k := strings.IndexByte(s[i+1:], '\'')
		if k < 0 {
			return "", 0, false
		}
		return s[i+1 : i+1+k], i + 2 + k, true
	}
	var b strings.Builder
	plain := true
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			if plain {
				return s[i+1 : j], j + 1, true
			}
			return b.String(), j + 1, true
		case c == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\'):
			if plain {
				plain = false
				b.WriteString(s[i+1 : j])
			}
			b.WriteByte(s[j+1])
			j++
		default:
			if !plain {
				b.WriteByte(c)
			}
		}
	}
	return "", 0, false
}

// validOptKey reports whether k can name a provider option.
func validOptKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// dashTypo catches options written with an en or em dash, which text
// editors and phones substitute for "--" ("a cat —seed 4"); such a line
// would otherwise silently become a prompt with the option in it.
func dashTypo(s string, from, to int) *TXTError {
	for j := from; j < to; {
		r, n := utf8.DecodeRuneInString(s[j:])
		if (r == '\u2014' || r == '\u2013') && (j == 0 || isBlank(s[j-1])) {
			k := j + n
			for k < to && s[k] == '-' {
				k++
			}
			e := k
			for e < to && !isBlank(s[e]) {
				e++
			}
			if f, ok := CanonicalField(s[k:e]); (ok && f != FieldPrompt && !isOpt(f)) || s[k:e] == "opt" {
				return &TXTError{Column: j + 1, Msg: fmt.Sprintf("%q looks like an option written with a long dash; write --%s (or quote the prompt to keep the dash)", s[j:e], s[k:e])}
			}
		}
		j += n
	}
	return nil
}
