package expand

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DefaultMaxImages is the cap on prompts one template may produce for one
// row when Expander.MaxImages is zero.
const DefaultMaxImages = 10_000

// countCap is where combination counts saturate. Anything this large is
// refused long before, so the exact value past it does not matter; keeping
// it well under MaxInt64 makes the saturating arithmetic simple.
const countCap int64 = 1_000_000_000_000_000_000

// ErrNoWildcards is returned when a template uses __name__ but the Expander
// has no wildcards directory.
var ErrNoWildcards = errors.New("template uses a wildcard but no wildcards directory is set (--wildcards DIR)")

// TooManyError refuses a template whose expansion would exceed the cap.
type TooManyError struct {
	// Count is the number of prompts the template would produce, saturated
	// at a very large number; Overflow says the real count is larger still.
	Count    int64
	Overflow bool
	// Max is the cap that was exceeded.
	Max int
}

// CountString renders Count, as ">N" when the count saturated.
func (e *TooManyError) CountString() string {
	s := strconv.FormatInt(e.Count, 10)
	if e.Overflow {
		return ">" + s
	}
	return s
}

// Error implements error.
func (e *TooManyError) Error() string {
	return fmt.Sprintf("template would expand to %s prompts, over the limit of %d", e.CountString(), e.Max)
}

// UnknownVarError reports a {column} that the row does not have.
type UnknownVarError struct {
	Name string
	// Available lists the row's column names, sorted.
	Available []string
}

// Error implements error.
func (e *UnknownVarError) Error() string {
	if len(e.Available) == 0 {
		return fmt.Sprintf("unknown column %q: the row has no columns to substitute", e.Name)
	}
	const show = 20
	list := e.Available
	more := ""
	if len(list) > show {
		more = fmt.Sprintf(" and %d more", len(list)-show)
		list = list[:show]
	}
	return fmt.Sprintf("unknown column %q (available: %s%s)", e.Name, strings.Join(list, ", "), more)
}

func unknownVar(name string, vars map[string]string) error {
	avail := make([]string, 0, len(vars))
	for k := range vars {
		avail = append(avail, k)
	}
	sort.Strings(avail)
	return &UnknownVarError{Name: name, Available: avail}
}

// lookupVar finds a variable: the name as written first, then its lower-case
// key (so a caller that lower-cases its column names always hits a map
// lookup), then a case-insensitive match on the trimmed key. When several
// keys match (a CSV with both "Color" and "color "), the smallest key wins so
// that the choice does not depend on map order.
func lookupVar(vars map[string]string, name, key string) (string, bool) {
	if v, ok := vars[name]; ok {
		return v, true
	}
	if key != name {
		if v, ok := vars[key]; ok {
			return v, true
		}
	}
	var best, val string
	found := false
	for k, v := range vars {
		if strings.EqualFold(strings.TrimSpace(k), name) && (!found || k < best) {
			best, val, found = k, v, true
		}
	}
	return val, found
}

// Expander turns a parsed template and one row's variables into prompts. Its
// zero value expands one seeded prompt per row with the default cap and no
// wildcards. It is safe for concurrent use.
type Expander struct {
	// Combinatorial expands every combination of variants and wildcard lines
	// instead of choosing one by seed.
	Combinatorial bool
	// MaxImages caps the prompts one template may produce for one row;
	// 0 means DefaultMaxImages.
	MaxImages int
	// Wildcards resolves __name__; nil makes any wildcard an error
	// (ErrNoWildcards).
	Wildcards *Wildcards
}

func (e *Expander) limit() int {
	if e.MaxImages <= 0 {
		return DefaultMaxImages
	}
	return e.MaxImages
}

// Count returns how many prompts Expand would produce for t and this row
// (before the row's image count n): 1 in seeded mode, the number of
// combinations in combinatorial mode. It also checks everything Expand
// needs, so a row that counts without error expands without error: every
// referenced column must exist in vars (*UnknownVarError) and every wildcard
// file must load. A combinatorial count over MaxImages is a *TooManyError.
func (e *Expander) Count(t *Template, vars map[string]string) (int64, error) {
	if err := e.check(t, vars); err != nil {
		return 0, err
	}
	if !e.Combinatorial {
		return 1, nil
	}
	c := t.staticCount
	if t.hasWildcards {
		c = countSeq(t.nodes, e.Wildcards)
	}
	if limit := e.limit(); c > int64(limit) {
		return c, &TooManyError{Count: c, Overflow: c >= countCap, Max: limit}
	}
	return c, nil
}

// check verifies that every variable and wildcard of t resolves.
func (e *Expander) check(t *Template, vars map[string]string) error {
	for i, name := range t.vars {
		if _, ok := lookupVar(vars, name, t.varKeys[i]); !ok {
			return unknownVar(name, vars)
		}
	}
	for _, name := range t.wildcards {
		if _, err := e.lines(name); err != nil {
			return err
		}
	}
	return nil
}

func (e *Expander) lines(name string) ([]string, error) {
	if e.Wildcards == nil {
		return nil, fmt.Errorf("wildcard __%s__: %w", name, ErrNoWildcards)
	}
	return e.Wildcards.Lines(name)
}

// countSeq returns the number of combinations of a node sequence, saturated
// at countCap. Wildcards must already be known to load.
func countSeq(nodes []node, w *Wildcards) int64 {
	c := int64(1)
	for i := range nodes {
		n := &nodes[i]
		switch n.kind {
		case kindVariant:
			var sum int64
			for _, alt := range n.alts {
				sum = satAdd(sum, countSeq(alt, w))
			}
			c = satMul(c, sum)
		case kindWildcard:
			var k int64 = 1
			if w != nil {
				if lines, err := w.Lines(n.text); err == nil {
					k = int64(len(lines))
				}
			}
			c = satMul(c, k)
		}
	}
	return c
}

func satAdd(a, b int64) int64 {
	if a >= countCap-b {
		return countCap
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a >= countCap/b {
		return countCap
	}
	return a * b
}

// Expand produces the prompts of t for one row and calls yield with each,
// stopping early when yield returns false. index is the 0-based combination
// index. In seeded mode it yields exactly one prompt, each variant and
// wildcard chosen from seed, so the same seed always gives the same prompt:
// pass the row's seed for one prompt per row, as
// docs/templates.md promises, or each image's seed to vary them. Errors are
// those of Count and come before any prompt is yielded.
func (e *Expander) Expand(t *Template, vars map[string]string, seed int64, yield func(index int, prompt string) bool) error {
	switch {
	case t.literal:
		yield(0, t.text)
		return nil
	case t.simple:
		s, err := expandSimple(t.nodes, vars)
		if err != nil {
			return err
		}
		yield(0, s)
		return nil
	}
	if e.Combinatorial {
		if _, err := e.Count(t, vars); err != nil {
			return err
		}
		en := enumerator{e: e, vars: vars, buf: make([]byte, 0, len(t.src)+64)}
		// The stack of pending sequences is never deeper than the nesting.
		en.stack = make([][]node, 0, 8)
		en.run(t.nodes, yield)
		return nil
	}
	if err := e.check(t, vars); err != nil {
		return err
	}
	w := walker{e: e, vars: vars, seed: seed}
	var arr [512]byte
	yield(0, string(w.seq(arr[:0], t.nodes)))
	return nil
}

// expandSimple serves templates of only text and variables with one
// allocation: measure, then write into an exactly sized builder. The values
// found while measuring are kept in a small stack array, so each variable
// is looked up once (a case-folded lookup scans the row).
func expandSimple(nodes []node, vars map[string]string) (string, error) {
	var vals [8]string
	size, k := 0, 0
	for i := range nodes {
		n := &nodes[i]
		if n.kind == kindText {
			size += len(n.text)
			continue
		}
		v, ok := lookupVar(vars, n.text, n.key)
		if !ok {
			return "", unknownVar(n.text, vars)
		}
		if k < len(vals) {
			vals[k] = v
		}
		k++
		size += len(v)
	}
	var b strings.Builder
	b.Grow(size)
	k = 0
	for i := range nodes {
		n := &nodes[i]
		if n.kind == kindText {
			b.WriteString(n.text)
			continue
		}
		if k < len(vals) {
			b.WriteString(vals[k])
		} else {
			v, _ := lookupVar(vars, n.text, n.key)
			b.WriteString(v)
		}
		k++
	}
	return b.String(), nil
}

// enumerator walks every combination depth first, leftmost variant
// outermost, so combination indexes follow reading order. Instead of
// closures it keeps a stack of the sequences still to expand after the
// current alternative, which keeps allocation out of the loop. yield is
// passed along rather than stored so that the caller's closure does not
// escape to the heap.
type enumerator struct {
	e     *Expander
	vars  map[string]string
	buf   []byte
	stack [][]node
	index int
}

// run expands nodes followed by everything on the stack; it returns false
// once yield asked to stop.
func (en *enumerator) run(nodes []node, yield func(int, string) bool) bool {
	mark := len(en.buf)
	defer func() { en.buf = en.buf[:mark] }()
	for len(nodes) > 0 {
		n := &nodes[0]
		switch n.kind {
		case kindText:
			en.buf = append(en.buf, n.text...)
		case kindVar:
			v, _ := lookupVar(en.vars, n.text, n.key) // checked by Count
			en.buf = append(en.buf, v...)
		case kindVariant:
			rest := nodes[1:]
			for _, alt := range n.alts {
				en.stack = append(en.stack, rest)
				ok := en.run(alt, yield)
				en.stack = en.stack[:len(en.stack)-1]
				if !ok {
					return false
				}
			}
			return true
		case kindWildcard:
			lines, _ := en.e.lines(n.text) // checked by Count
			rest := nodes[1:]
			for _, line := range lines {
				m := len(en.buf)
				en.buf = append(en.buf, line...)
				ok := en.run(rest, yield)
				en.buf = en.buf[:m]
				if !ok {
					return false
				}
			}
			return true
		}
		nodes = nodes[1:]
	}
	if len(en.stack) == 0 {
		ok := yield(en.index, string(en.buf))
		en.index++
		return ok
	}
	top := en.stack[len(en.stack)-1]
	en.stack = en.stack[:len(en.stack)-1]
	ok := en.run(top, yield)
	// Put it back for the caller's next alternative; capacity is there.
	en.stack = append(en.stack, top)
	return ok
}

// walker builds the single seeded prompt. seq takes and returns the buffer
// rather than keeping it in the struct, so that a stack buffer can serve
// short prompts.
type walker struct {
	e    *Expander
	vars map[string]string
	seed int64
}

func (w *walker) seq(buf []byte, nodes []node) []byte {
	for i := range nodes {
		n := &nodes[i]
		switch n.kind {
		case kindText:
			buf = append(buf, n.text...)
		case kindVar:
			v, _ := lookupVar(w.vars, n.text, n.key) // checked before
			buf = append(buf, v...)
		case kindVariant:
			buf = w.seq(buf, n.alts[choose(w.seed, n.id, len(n.alts))])
		case kindWildcard:
			lines, _ := w.e.lines(n.text) // checked before
			if len(lines) > 0 {
				buf = append(buf, lines[choose(w.seed, n.id, len(lines))]...)
			}
		}
	}
	return buf
}
