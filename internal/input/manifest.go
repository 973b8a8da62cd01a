package input

import (
	"encoding/json"
	"fmt"
	"strings"
)

// manifestKeys are the columns that identify a bulkgen manifest: no
// hand-written CSV has all four.
var manifestKeys = [...]string{"source_file", "source_line", "image_file", "sha256"}

// manifestFields are the fields every manifest row carries, in the order
// Header reports them.
var manifestFields = []string{
	FieldPrompt, FieldNegativePrompt, FieldModel, FieldSize, FieldAspectRatio,
	FieldQuality, FieldStyle, FieldFormat, FieldSeed, FieldN, FieldName,
}

func isManifestHeader(raw []string) bool {
	have := 0
	for _, k := range manifestKeys {
		for _, h := range raw {
			if strings.EqualFold(h, k) {
				have++
				break
			}
		}
	}
	return have == len(manifestKeys)
}

func isManifestObject(obj map[string]json.RawMessage) bool {
	for _, k := range manifestKeys {
		if _, ok := obj[k]; !ok {
			return false
		}
	}
	return true
}

// openCSVManifest sets up a CSV manifest: its columns are matched by their
// exact (lower-cased) names, not by the aliases of ordinary CSV.
func (r *Reader) openCSVManifest(raw []string, fail func(string, ...any) error) error {
	r.format = FormatManifest
	r.hasPrompt = true
	r.cols = make([]string, len(raw))
	seen := make(map[string]int, len(raw))
	for i, h := range raw {
		k := strings.ToLower(h)
		if k == "" {
			continue
		}
		if j, dup := seen[k]; dup {
			return fail("duplicate column %q: column %d (%q) and column %d (%q)", k, j+1, raw[j], i+1, h)
		}
		seen[k] = i
		r.cols[i] = k
	}
	r.header = append([]string(nil), manifestFields...)
	return nil
}

// manifestValues maps one manifest record (cells by column name, vars as
// JSON text) onto row values. The prompt is final, n is 1 (a manifest has a
// line per image), size comes from width and height, and name is the image
// file without its extension so a re-run writes the same file names.
func manifestValues(cells map[string]string, vars []byte) (map[string]string, string) {
	vals := make(map[string]string, len(manifestFields)+4)
	for _, f := range []string{FieldPrompt, FieldNegativePrompt, FieldModel, FieldAspectRatio,
		FieldQuality, FieldStyle, FieldFormat, FieldSeed} {
		vals[f] = cells[f]
	}
	vals[FieldSize] = ""
	if w, h := strings.TrimSpace(cells["width"]), strings.TrimSpace(cells["height"]); w != "" && h != "" && w != "0" && h != "0" {
		vals[FieldSize] = w + "x" + h
	}
	vals[FieldN] = "1"
	vals[FieldName] = stripExt(cells["image_file"])

	if len(strings.TrimSpace(string(vars))) == 0 {
		return vals, ""
	}
	vs, msg := scalarObject("vars", vars)
	if msg != "" {
		return nil, msg
	}
	for k, v := range vs {
		// Keys are taken verbatim, not through the alias table: a variable
		// once called "count" must not turn into n here.
		name := strings.TrimSpace(k)
		if _, recorded := vals[name]; recorded {
			return nil, fmt.Sprintf("vars: %q is a field name, not a variable", k)
		}
		if name == "" || name == OptPrefix {
			return nil, "vars: empty variable name"
		}
		vals[name] = v
	}
	return vals, ""
}

// stripExt drops the extension of the last path element, keeping folders:
// "cats/001.png" -> "cats/001". A dot file keeps its name.
func stripExt(p string) string {
	slash := strings.LastIndexAny(p, `/\`)
	dot := strings.LastIndexByte(p, '.')
	if dot > slash+1 {
		return p[:dot]
	}
	return p
}
