package expand

import (
	"fmt"
	"slices"
	"strings"
)

// maxDepth bounds variant nesting. Real templates nest two or three levels;
// the bound keeps the recursive parser and expander away from stack
// exhaustion on hostile input.
const maxDepth = 32

// SyntaxError reports a malformed template. Offset is the byte offset in the
// template source where the problem was found (for an unclosed brace, the
// offset of the brace itself).
type SyntaxError struct {
	Offset int
	Msg    string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("template syntax error at byte %d: %s", e.Offset, e.Msg)
}

type nodeKind uint8

const (
	kindText nodeKind = iota
	kindVar
	kindVariant
	kindWildcard
)

// node is one piece of a parsed template. Which fields are set depends on
// kind: text for kindText (already unescaped), the trimmed name for kindVar
// and kindWildcard, alts for kindVariant.
type node struct {
	kind nodeKind
	text string
	alts [][]node
	// key is the lower-cased variable name, for lookupVar.
	key string
	// id numbers variants and wildcards in source order; seeded choice hashes
	// it with the seed so that two variants in one template choose
	// independently but each always chooses the same way for one seed.
	id uint32
	// off is the node's byte offset in the source, for error messages.
	off int
}

// Template is a parsed prompt template. It is immutable and safe for
// concurrent use.
type Template struct {
	src   string
	nodes []node
	// vars are the distinct variable names in order of first use, varKeys
	// their lower-case forms.
	vars    []string
	varKeys []string
	// wildcards are the distinct wildcard names in order of first use.
	wildcards []string
	// literal is set when the template has no variables, variants or
	// wildcards; text then holds the unescaped prompt.
	literal bool
	text    string
	// simple is set when the template holds only text and variables, the
	// common CSV case that Expand serves without recursion.
	simple bool
	// staticCount is the combination count when it does not depend on
	// wildcard files (hasWildcards false), saturated at countCap.
	staticCount  int64
	hasWildcards bool
}

// Parse parses a prompt template. A malformed template yields a
// *SyntaxError.
func Parse(src string) (*Template, error) {
	p := parser{src: src}
	nodes, err := p.seq(0, len(src), 0)
	if err != nil {
		return nil, err
	}
	t := &Template{src: src, nodes: nodes, literal: true, simple: true}
	t.collect(nodes)
	if t.literal {
		if len(nodes) == 1 {
			t.text = nodes[0].text
		}
	}
	if !t.hasWildcards {
		t.staticCount = countSeq(nodes, nil)
	}
	return t, nil
}

// collect fills the summary fields of t from its nodes.
func (t *Template) collect(nodes []node) {
	for i := range nodes {
		n := &nodes[i]
		switch n.kind {
		case kindVar:
			t.literal = false
			if !containsFold(t.vars, n.text) {
				t.vars = append(t.vars, n.text)
				t.varKeys = append(t.varKeys, n.key)
			}
		case kindWildcard:
			t.literal, t.simple, t.hasWildcards = false, false, true
			// Wildcard names are file names, matched exactly (see
			// docs/templates.md): __Color__ is not __color__ and must be
			// checked on its own.
			if !slices.Contains(t.wildcards, n.text) {
				t.wildcards = append(t.wildcards, n.text)
			}
		case kindVariant:
			t.literal, t.simple = false, false
			for _, alt := range n.alts {
				t.collect(alt)
			}
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// HasChoices reports whether t has variants or wildcards: parts between
// which a seed chooses.
func (t *Template) HasChoices() bool { return !t.simple }

// String returns the template source as given to Parse.
func (t *Template) String() string { return t.src }

// Vars returns the distinct variable (column) names the template references,
// in order of first use, trimmed as written.
func (t *Template) Vars() []string { return append([]string(nil), t.vars...) }

// Wildcards returns the distinct wildcard names the template references, in
// order of first use.
func (t *Template) Wildcards() []string { return append([]string(nil), t.wildcards...) }

// IsLiteral reports whether the template has no variables, variants or
// wildcards, so that every row expands to the same single prompt.
func (t *Template) IsLiteral() bool { return t.literal }

type parser struct {
	src string
	// nextID numbers variant and wildcard nodes.
	nextID uint32
}

// seq parses src[start:end] as a sequence of text, variables, variants and
// wildcards. A '|' met here is plain text: inside a variant, group has
// already split the alternatives on their top-level bars.
func (p *parser) seq(start, end, depth int) ([]node, error) {
	var nodes []node
	var text strings.Builder
	textOff := start
	flush := func() {
		if text.Len() > 0 {
			nodes = append(nodes, node{kind: kindText, text: text.String(), off: textOff})
			text.Reset()
		}
	}
	src := p.src
	for i := start; i < end; {
		c := src[i]
		switch {
		case c == '\\':
			if text.Len() == 0 {
				textOff = i
			}
			if i+1 < end && isEscapable(src[i+1]) {
				text.WriteByte(src[i+1])
				i += 2
			} else {
				// A backslash before anything else is kept: prompts may
				// legitimately contain one and refusing it would only annoy.
				text.WriteByte(c)
				i++
			}
		case c == '{':
			flush()
			n, next, err := p.group(i, depth)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, n)
			i = next
		case c == '}':
			return nil, &SyntaxError{Offset: i, Msg: "unexpected '}' without a matching '{' (write \\} for a literal brace)"}
		case c == '_' && i+1 < end && src[i+1] == '_':
			name, next, ok, err := p.wildcard(i, end)
			if err != nil {
				return nil, err
			}
			if !ok {
				if text.Len() == 0 {
					textOff = i
				}
				text.WriteString("__")
				i += 2
				continue
			}
			flush()
			nodes = append(nodes, node{kind: kindWildcard, text: name, id: p.nextID, off: i})
			p.nextID++
			i = next
		default:
			if text.Len() == 0 {
				textOff = i
			}
			text.WriteByte(c)
			i++
		}
	}
	flush()
	return nodes, nil
}

func isEscapable(c byte) bool {
	switch c {
	case '{', '}', '|', '\\', '_':
		return true
	}
	return false
}

// group parses the brace group opening at src[open]: a variable when it has
// no top-level '|', a variant otherwise. It returns the offset just past the
// closing brace.
func (p *parser) group(open, depth int) (node, int, error) {
	if depth >= maxDepth {
		return node{}, 0, &SyntaxError{Offset: open, Msg: fmt.Sprintf("variants nested deeper than %d levels", maxDepth)}
	}
	src := p.src
	// Find the matching brace, the top-level bars and the first nested
	// brace, honouring escapes.
	var bars []int
	nested := -1
	level := 0
	closeAt := -1
scan:
	for i := open + 1; i < len(src); i++ {
		switch src[i] {
		case '\\':
			if i+1 < len(src) && isEscapable(src[i+1]) {
				i++
			}
		case '{':
			if level == 0 && nested < 0 {
				nested = i
			}
			level++
		case '}':
			if level == 0 {
				closeAt = i
				break scan
			}
			level--
		case '|':
			if level == 0 {
				bars = append(bars, i)
			}
		}
	}
	if closeAt < 0 {
		return node{}, 0, &SyntaxError{Offset: open, Msg: "unclosed '{' (write \\{ for a literal brace)"}
	}
	if len(bars) == 0 {
		if nested >= 0 {
			return node{}, 0, &SyntaxError{Offset: nested, Msg: "'{' inside a variable name; a group needs '|' to be a variant"}
		}
		name := strings.TrimSpace(unescape(src[open+1 : closeAt]))
		if name == "" {
			return node{}, 0, &SyntaxError{Offset: open, Msg: "empty braces {}: write a column name or variants like {a|b}"}
		}
		return node{kind: kindVar, text: name, key: strings.ToLower(name), off: open}, closeAt + 1, nil
	}
	n := node{kind: kindVariant, id: p.nextID, off: open}
	p.nextID++
	from := open + 1
	bars = append(bars, closeAt)
	n.alts = make([][]node, 0, len(bars))
	for _, to := range bars {
		alt, err := p.seq(from, to, depth+1)
		if err != nil {
			return node{}, 0, err
		}
		n.alts = append(n.alts, alt)
		from = to + 1
	}
	return n, closeAt + 1, nil
}

// wildcard recognises __name__ at src[at]. ok is false when the underscores
// do not start a well-formed wildcard, in which case they are plain text
// (snake_case words and "__" in prompts stay as they are).
func (p *parser) wildcard(at, end int) (name string, next int, ok bool, err error) {
	src := p.src
	for k := at + 2; k < end && isWildcardByte(src[k]); k++ {
		if src[k] == '_' && k+1 < end && src[k+1] == '_' && k > at+2 {
			name = src[at+2 : k]
			if !validWildcardName(name) {
				return "", 0, false, &SyntaxError{Offset: at, Msg: fmt.Sprintf("bad wildcard name %q: use letters, digits, '_', '-' and '/' between names", name)}
			}
			return name, k + 2, true, nil
		}
	}
	return "", 0, false, nil
}

func isWildcardByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '/'
}

// validWildcardName reports whether name may name a wildcard file: only
// [A-Za-z0-9_/-], no empty path segment, so no leading, trailing or doubled
// '/'. Dots are not allowed at all, which rules out "..".
func validWildcardName(name string) bool {
	if name == "" || name[0] == '/' || name[len(name)-1] == '/' || strings.Contains(name, "//") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isWildcardByte(name[i]) {
			return false
		}
	}
	return true
}

// unescape removes template escapes from s.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && isEscapable(s[i+1]) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
