package comfyui

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"bulkgen/internal/provider"
)

// Placeholders a workflow may contain, written "{{name}}" inside a string
// input. Numeric ones become JSON numbers when they are the whole string.
var (
	textPlaceholders    = []string{"prompt", "negative_prompt", "model"}
	numericPlaceholders = []string{"seed", "width", "height", "batch_size", "steps"}
)

const (
	defaultSide  = 1024
	defaultSteps = 20
	// maxSeed keeps random seeds exact in JSON numbers read as float64 by
	// other tools (2^53).
	maxSeed = 1 << 53
)

var placeholderRE = regexp.MustCompile(`\{\{\s*([a-zA-Z_]+)\s*\}\}`)

// workflow is a parsed API-format workflow: node id → {class_type, inputs}.
// Values keep json.Number so that numbers round-trip unchanged.
type workflow struct {
	nodes map[string]any
	uses  map[string]bool // placeholders present
}

// parseWorkflow checks that raw is an API-format workflow (the format the
// ComfyUI UI writes with "Export (API)", not the UI's graph format) and that
// it has at least a {{prompt}} placeholder and no unknown ones.
func parseWorkflow(raw []byte) (*workflow, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("workflow is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("workflow is not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("workflow has data after its closing brace")
	}
	nodes, ok := top.(map[string]any)
	if !ok || len(nodes) == 0 {
		return nil, errors.New("workflow must be a JSON object mapping node ids to {class_type, inputs}")
	}
	if _, ui := nodes["nodes"]; ui {
		if _, links := nodes["links"]; links {
			return nil, errors.New(`workflow is in the UI format; export it with "Export (API)" instead`)
		}
	}
	wf := &workflow{nodes: nodes, uses: map[string]bool{}}
	ids := sortedKeys(nodes)
	for _, id := range ids {
		node, ok := nodes[id].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("workflow node %q is not an object", id)
		}
		if ct, ok := node["class_type"].(string); !ok || ct == "" {
			return nil, fmt.Errorf("workflow node %q has no class_type", id)
		}
		inputs, ok := node["inputs"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("workflow node %q has no inputs object", id)
		}
		var bad error
		walkStrings(inputs, func(s string) {
			for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
				name := m[1]
				if !slices.Contains(textPlaceholders, name) && !slices.Contains(numericPlaceholders, name) && bad == nil {
					bad = fmt.Errorf("workflow node %q uses unknown placeholder %q (known: %s)", id, m[0], knownList())
				}
				wf.uses[name] = true
			}
		})
		if bad != nil {
			return nil, bad
		}
	}
	if !wf.uses["prompt"] {
		return nil, errors.New(`workflow has no "{{prompt}}" placeholder, so every image would ignore the prompt`)
	}
	return wf, nil
}

func knownList() string {
	var all []string
	for _, n := range slices.Concat(textPlaceholders, numericPlaceholders) {
		all = append(all, "{{"+n+"}}")
	}
	return strings.Join(all, ", ")
}

// values are what the placeholders stand for in one request.
type values struct {
	text    map[string]string
	numbers map[string]int64
}

// valuesFor maps req onto placeholder values. A missing seed is drawn at
// random here rather than left to the workflow, so that it can be reported.
func (wf *workflow) valuesFor(req provider.Request) (values, error) {
	v := values{
		text: map[string]string{
			"prompt":          req.Prompt,
			"negative_prompt": req.NegativePrompt,
			"model":           req.Model,
		},
		numbers: map[string]int64{
			"width":      int64(cmp0(req.Width, defaultSide)),
			"height":     int64(cmp0(req.Height, defaultSide)),
			"batch_size": int64(max(req.Count, 1)),
			"steps":      defaultSteps,
			"seed":       req.Seed,
		},
	}
	if !req.HasSeed {
		var b [8]byte
		_, _ = rand.Read(b[:])
		v.numbers["seed"] = int64(binary.BigEndian.Uint64(b[:]) % maxSeed)
	}
	if s, ok := req.Options["steps"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return values{}, provider.Errorf(provider.Invalid, Name, "option steps = %q: want a positive integer", s)
		}
		v.numbers["steps"] = int64(n)
	}
	if wf.uses["model"] && req.Model == "" {
		return values{}, provider.Errorf(provider.Invalid, Name, "the workflow uses {{model}} but the request names no model")
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return values{}, provider.Errorf(provider.Invalid, Name, "empty prompt")
	}
	return v, nil
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// build returns the workflow with every placeholder replaced. A string that
// is exactly one numeric placeholder becomes a JSON number, since ComfyUI
// refuses "1024" where an INT is expected; placeholders inside longer
// strings are replaced as text.
func (wf *workflow) build(v values) map[string]any {
	return substitute(wf.nodes, v).(map[string]any)
}

func substitute(x any, v values) any {
	switch t := x.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = substitute(e, v)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = substitute(e, v)
		}
		return out
	case string:
		if m := placeholderRE.FindStringSubmatch(t); m != nil && m[0] == t {
			if n, ok := v.numbers[m[1]]; ok {
				return n
			}
		}
		return placeholderRE.ReplaceAllStringFunc(t, func(ph string) string {
			name := placeholderRE.FindStringSubmatch(ph)[1]
			if s, ok := v.text[name]; ok {
				return s
			}
			if n, ok := v.numbers[name]; ok {
				return strconv.FormatInt(n, 10)
			}
			return ph
		})
	default:
		return x
	}
}

func walkStrings(x any, f func(string)) {
	switch t := x.(type) {
	case map[string]any:
		for _, e := range t {
			walkStrings(e, f)
		}
	case []any:
		for _, e := range t {
			walkStrings(e, f)
		}
	case string:
		f(t)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Node ids are usually integers; order them numerically when they are.
	slices.SortFunc(keys, func(a, b string) int {
		ai, aerr := strconv.Atoi(a)
		bi, berr := strconv.Atoi(b)
		if aerr == nil && berr == nil {
			return ai - bi
		}
		return strings.Compare(a, b)
	})
	return keys
}
