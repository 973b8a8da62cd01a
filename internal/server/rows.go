package server

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"bulkgen/internal/batch"
	"bulkgen/internal/input"
)

// openInput opens a parser over an input file; its fatal errors (no
// content, binary data, an unusable CSV header) are 422s carrying the
// parser's message.
func openInput(name string, rd io.Reader, opt input.Options) (batch.RowSource, error) {
	in, err := input.Open(name, rd, opt)
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_input", Message: err.Error()}
	}
	return in, nil
}

// promptRows are the rows of a JSON "prompts" array, one prompt each.
type promptRows struct {
	prompts []string
	next    int
}

func (p *promptRows) Next() (input.Row, error) {
	if p.next >= len(p.prompts) {
		return input.Row{}, io.EOF
	}
	p.next++
	return input.Row{File: "request", Line: p.next, Values: map[string]string{input.FieldPrompt: p.prompts[p.next-1]}}, nil
}

// jsonRows are the rows of a JSON "rows" array: objects whose keys are
// canonicalised like CSV headers and whose values are strings, numbers or
// booleans.
type jsonRows struct {
	rows []map[string]json.RawMessage
	next int
}

func (j *jsonRows) Next() (input.Row, error) {
	if j.next >= len(j.rows) {
		return input.Row{}, io.EOF
	}
	j.next++
	line := j.next
	obj := j.rows[line-1]
	bad := func(format string, args ...any) (input.Row, error) {
		return input.Row{}, &input.RowError{File: "request", Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if len(obj) > input.DefaultMaxColumns {
		return bad("the row has %d fields, more than %d", len(obj), input.DefaultMaxColumns)
	}
	values := make(map[string]string, len(obj))
	from := make(map[string]string, len(obj))
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		name, ok := input.CanonicalField(key)
		if !ok {
			name = strings.TrimSpace(key)
			if name == "" {
				return bad("a field has an empty name")
			}
		}
		if prev, dup := from[name]; dup {
			return bad("fields %q and %q both set %s", prev, key, name)
		}
		from[name] = key
		v, ok := scalarString(obj[key])
		if !ok {
			return bad("field %q must be a string, number or boolean", key)
		}
		values[name] = v
	}
	return input.Row{File: "request", Line: line, Values: values}, nil
}

// scalarString turns a JSON string, number, boolean or null into the text
// a CSV cell would hold.
func scalarString(raw json.RawMessage) (string, bool) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", false
	}
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}
