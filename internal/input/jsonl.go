package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// openJSONL reads ahead to the first non-blank line to tell a manifest from
// plain JSONL; that line is kept and returned by the first Next.
func (r *Reader) openJSONL() error {
	for {
		line, start, long, ok := r.src.readLine(nil, r.opt.MaxRecordBytes)
		if !ok {
			if err := r.src.readErr(); err != nil {
				return fmt.Errorf("%s: read: %w", r.name, err)
			}
			return fmt.Errorf("%s: %w", r.name, ErrEmpty)
		}
		if !long && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.pending, r.pendingLine, r.hasPending = line, start, true
		if long {
			r.pending = nil // marks the read-ahead line as too long
		}
		var obj map[string]json.RawMessage
		if !long && json.Unmarshal(line, &obj) == nil && isManifestObject(obj) {
			r.manifestJSONL = true
			r.format = FormatManifest
			r.header = append([]string(nil), manifestFields...)
		} else if r.format == FormatManifest {
			return fmt.Errorf("%s:%d: not a bulkgen manifest: objects need the keys source_file, source_line, image_file and sha256", r.name, start)
		} else {
			r.format = FormatJSONL
		}
		r.hasPrompt = true
		return nil
	}
}

// nextJSONL returns the next object of a JSONL or JSONL manifest input.
func (r *Reader) nextJSONL() (Row, error) {
	for {
		var (
			line  []byte
			start int
			long  bool
		)
		if r.hasPending {
			r.hasPending = false
			line, start, long = r.pending, r.pendingLine, r.pending == nil
			r.pending = nil
		} else {
			var ok bool
			line, start, long, ok = r.src.readLine(r.lineBuf, r.opt.MaxRecordBytes)
			r.lineBuf = line
			if !ok {
				if err := r.src.readErr(); err != nil {
					return Row{}, fmt.Errorf("%s: read: %w", r.name, err)
				}
				return Row{}, io.EOF
			}
		}
		if long {
			return Row{}, r.rowErr(start, 0, "line is longer than %d bytes", r.opt.MaxRecordBytes)
		}
		lead := len(line) - len(bytes.TrimLeft(line, " \t\v\f"))
		obj := bytes.TrimSpace(line)
		if len(obj) == 0 {
			continue
		}
		if off, msg := checkText(line); off >= 0 {
			return Row{}, r.rowErr(start, off+1, "%s", msg)
		}
		vals, col, msg := r.parseObject(obj)
		if msg != "" {
			if col > 0 {
				col += lead
			}
			return Row{}, r.rowErr(start, col, "%s", msg)
		}
		return Row{File: r.name, Line: start, Values: vals, Literal: r.manifestJSONL}, nil
	}
}

// parseObject converts one JSON object line into row values. It returns a
// 1-based column (0 if none) and a message on error.
func (r *Reader) parseObject(line []byte) (map[string]string, int, string) {
	if line[0] != '{' {
		return nil, 1, "line is not a JSON object"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, int(se.Offset), "invalid JSON: " + se.Error()
		}
		return nil, 0, "invalid JSON: " + err.Error()
	}
	if len(obj) > r.opt.MaxColumns {
		return nil, 0, fmt.Sprintf("object has %d keys, more than the limit of %d", len(obj), r.opt.MaxColumns)
	}
	if r.manifestJSONL {
		cells := make(map[string]string, len(obj))
		var vars []byte
		for k, raw := range obj {
			k = strings.ToLower(k)
			if k == "vars" {
				vars = raw
				if raw[0] == '"' {
					var s string
					if err := json.Unmarshal(raw, &s); err != nil {
						return nil, 0, "vars: " + err.Error()
					}
					vars = []byte(s)
				}
				continue
			}
			v, ok, msg := scalar(k, raw)
			if msg != "" {
				return nil, 0, msg
			}
			if ok {
				cells[k] = v
			}
		}
		vals, msg := manifestValues(cells, vars)
		return vals, 0, msg
	}

	vals := make(map[string]string, len(obj))
	from := make(map[string]string, len(obj)) // field -> key, to name both in a clash
	put := func(key, field, v string) string {
		if prev, dup := from[field]; dup {
			a, b := prev, key
			if b < a {
				a, b = b, a
			}
			return fmt.Sprintf("keys %q and %q both mean %s", a, b, field)
		}
		from[field] = key
		vals[field] = v
		return ""
	}
	for k, raw := range obj {
		if k == "opt" && len(raw) > 0 && raw[0] == '{' {
			opts, msg := scalarObject("opt", raw)
			if msg != "" {
				return nil, 0, msg
			}
			for ok, ov := range opts {
				if !validOptKey(ok) {
					return nil, 0, fmt.Sprintf("opt: key %q is not a valid option name", ok)
				}
				if msg := put("opt{"+ok+"}", OptPrefix+ok, ov); msg != "" {
					return nil, 0, msg
				}
			}
			continue
		}
		v, ok, msg := scalar(k, raw)
		if msg != "" {
			return nil, 0, msg
		}
		if !ok {
			continue
		}
		field := strings.TrimSpace(k)
		if f, known := CanonicalField(k); known {
			field = f
		}
		if field == "" {
			return nil, 0, "empty key"
		}
		if msg := put(k, field, v); msg != "" {
			return nil, 0, msg
		}
	}
	return vals, 0, ""
}

// scalar converts a JSON value to a row string: strings as they are,
// numbers as written (so 64-bit seeds keep every digit), booleans as
// "true"/"false". null is reported as absent. Objects and arrays are an error.
func scalar(key string, raw json.RawMessage) (string, bool, string) {
	if len(raw) == 0 {
		return "", false, ""
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, fmt.Sprintf("%s: %v", key, err)
		}
		if strings.IndexByte(s, 0) >= 0 {
			return "", false, fmt.Sprintf("%s: NUL character in value", key)
		}
		return s, true, ""
	case 'n':
		return "", false, ""
	case '{', '[':
		return "", false, fmt.Sprintf("%s: nested objects and arrays are not allowed (only \"opt\" may be an object)", key)
	}
	return string(raw), true, ""
}

// scalarObject decodes a flat JSON object of scalars (the "opt" object, the
// manifest "vars" column).
func scalarObject(name string, raw []byte) (map[string]string, string) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Sprintf("%s: not a JSON object: %v", name, err)
	}
	out := make(map[string]string, len(obj))
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic first error
	for _, k := range keys {
		v, ok, msg := scalar(name+"."+k, obj[k])
		if msg != "" {
			return nil, msg
		}
		if ok {
			out[k] = v
		}
	}
	return out, ""
}
