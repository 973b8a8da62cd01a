package batch

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"bulkgen/internal/catalog"
	"bulkgen/internal/expand"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
)

// Defaults are the batch-wide values a row falls back on when it does not
// set a field itself (from command-line flags, the API request or a form).
type Defaults struct {
	Model          string
	Size           string // "WxH"
	AspectRatio    string // "W:H"
	Quality        string
	Format         string
	Style          string
	NegativePrompt string
	N              int
	// Seed, when set, is the base seed of every row that has none.
	Seed    int64
	HasSeed bool
	// Options are provider options applied to every row ("opt.<name>"
	// columns override them per row).
	Options map[string]string
}

// Planner expands and validates rows into requests. Build one per batch
// with NewPlanner; it is not safe for concurrent use (it caches parsed
// templates, numbers the rows and sums up what it planned in Summary).
type Planner struct {
	cfg      Config
	catalog  *catalog.Catalog
	expander *expand.Expander
	template *expand.Template
	name     *expand.NameTemplate
	limit    int64 // images one row may make
	date     string

	rowCount int
	parsed   map[string]*expand.Template
	sum      Summary
}

// Problem is a row that cannot produce images, reported as file:line.
type Problem struct {
	File    string `json:"-"`
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (p Problem) Error() string {
	loc := fmt.Sprintf("%s:%d", p.File, p.Line)
	if p.Column > 0 {
		loc += fmt.Sprintf(":%d", p.Column)
	}
	if p.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Message)
	}
	return loc + ": " + p.Message
}

// Plan expands one row into requests and calls yield for each, in order.
// It returns the row's problems; a row with problems yields nothing (a bad
// row is skipped whole, so that its images are not half made). yield may
// return false to stop early. Most callers want PlanRows, which reads a
// whole input and sums it up.
func (p *Planner) Plan(row input.Row, yield func(generate.Request) bool) []Problem {
	p.rowCount++
	prob := func(field, format string, args ...any) []Problem {
		return []Problem{{File: row.File, Line: row.Line, Field: field, Message: fmt.Sprintf(format, args...)}}
	}
	get := func(field, def string) string {
		if v, ok := row.Values[field]; ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	d := p.cfg.Defaults
	for k, v := range row.Values {
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			return prob(k, "%s", errNUL)
		}
	}

	// Numbers first: they decide how many images the row makes.
	n := max(d.N, 1)
	if v := get(input.FieldN, ""); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			return prob(input.FieldN, "%q is not a whole number of images (1 or more)", v)
		}
		n = k
	}
	seed, hasSeed := d.Seed, d.HasSeed
	if v := get(input.FieldSeed, ""); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 || s > MaxSeed {
			return prob(input.FieldSeed, "%q is not a seed between 0 and %d", v, MaxSeed)
		}
		seed, hasSeed = s, true
	}

	// Expansion only reads the variables, so the row's own map serves.
	vars := row.Values
	opts := maps.Clone(d.Options)
	for k, v := range row.Values {
		if name, ok := strings.CutPrefix(k, input.OptPrefix); ok && name != "" {
			if opts == nil {
				opts = map[string]string{}
			}
			opts[name] = v
		}
	}

	// The prompt: the batch template, or the row's own prompt as a template.
	tmpl := p.template
	promptSrc := row.Values[input.FieldPrompt]
	if tmpl == nil {
		if strings.TrimSpace(promptSrc) == "" {
			return prob(input.FieldPrompt, "no prompt: the row has no prompt value and the batch has no prompt template")
		}
		if !row.Literal {
			t, err := p.parse(promptSrc)
			if err != nil {
				return prob(input.FieldPrompt, "%v", err)
			}
			if !t.IsLiteral() {
				tmpl = t
			}
		}
	}
	negSrc := get(input.FieldNegativePrompt, d.NegativePrompt)
	var negTmpl *expand.Template
	if negSrc != "" && !row.Literal && strings.ContainsAny(negSrc, "{_") {
		t, err := expand.Parse(negSrc)
		if err != nil {
			return prob(input.FieldNegativePrompt, "%v", err)
		}
		if !t.IsLiteral() {
			negTmpl = t
		}
	}
	if !hasSeed {
		seed = expand.DeriveSeed("row", strconv.Itoa(row.Line), promptSrc, negSrc, varsDigest(vars))
	}

	combos := int64(1)
	if tmpl != nil {
		c, err := p.expander.Count(tmpl, vars)
		if err != nil {
			return prob(input.FieldPrompt, "%v", err)
		}
		combos = c
	}
	if total := combos * int64(n); total > p.limit || total < 0 {
		return prob(input.FieldN, "the row would make %d images (%d prompts × n=%d), more than the limit of %d per row", total, combos, n, p.limit)
	}

	spec := catalog.Spec{
		Model:          get(input.FieldModel, d.Model),
		Size:           get(input.FieldSize, d.Size),
		AspectRatio:    get(input.FieldAspectRatio, d.AspectRatio),
		Quality:        get(input.FieldQuality, d.Quality),
		Format:         strings.ToLower(get(input.FieldFormat, d.Format)),
		Style:          get(input.FieldStyle, d.Style),
		N:              1, // bulkgen makes one image per provider call
		HasSeed:        hasSeed,
		NegativePrompt: negSrc,
	}
	if spec.Model == "" {
		return prob(input.FieldModel, "no model given: set the batch's default model or a model column")
	}
	if spec.Size != "" {
		w, h, err := catalog.ParseSize(spec.Size)
		if err != nil {
			return prob(input.FieldSize, "%v", err)
		}
		spec.Width, spec.Height = w, h
	}

	// Collect the prompts first (bounded by the limit) so that a problem in
	// any of them skips the whole row before anything is yielded. Without
	// combinations, each of the row's n images draws its own variants
	// (with its own seed), so that "a {red|blue} cup" with n=2 can make
	// one of each.
	type prompt struct{ text, neg string }
	draws := 1
	if tmpl != nil && !p.expander.Combinatorial && tmpl.HasChoices() {
		draws = n
	}
	var prompts []prompt
	for k := range draws {
		if tmpl == nil {
			prompts = append(prompts, prompt{text: promptSrc})
			continue
		}
		err := p.expander.Expand(tmpl, vars, imageSeed(seed, k), func(_ int, s string) bool {
			prompts = append(prompts, prompt{text: s})
			return true
		})
		if err != nil {
			return prob(input.FieldPrompt, "%v", err)
		}
	}
	var resolved catalog.Resolved
	for i := range prompts {
		neg := negSrc
		if negTmpl != nil {
			var out string
			if err := p.expander.Expand(negTmpl, vars, seed, func(_ int, s string) bool { out = s; return false }); err != nil {
				return prob(input.FieldNegativePrompt, "%v", err)
			}
			neg = out
		}
		prompts[i].neg = neg
		if strings.TrimSpace(prompts[i].text) == "" {
			return prob(input.FieldPrompt, "the prompt is empty after expansion")
		}
		spec.Prompt, spec.NegativePrompt = prompts[i].text, neg
		r, ps := p.catalog.Check(spec, p.cfg.Now)
		if len(ps) > 0 {
			var problems []Problem
			for _, q := range ps {
				problems = append(problems, Problem{File: row.File, Line: row.Line, Field: q.Field, Message: q.Msg})
			}
			return problems
		}
		resolved = r
	}
	warnings := resolved.Warnings
	if p.cfg.Available != nil {
		if err := p.cfg.Available(resolved.Model.Provider); err != nil {
			if !p.cfg.DryRun {
				return prob(input.FieldModel, "%s: %v", resolved.Model.ID, err)
			}
			// A dry run prices what the user cannot run yet: that is how
			// they find out what it would cost before getting a key.
			warnings = append(warnings[:len(warnings):len(warnings)], fmt.Sprintf("%s cannot run here yet: %v", resolved.Model.ID, err))
		}
	}

	recorded := RecordVars(row.Values)
	nameSrc := get(input.FieldName, "")
	perPrompt := n
	if draws > 1 {
		perPrompt = 1 // each draw is one of the row's n images
	}
	idx := 0
	for c, pr := range prompts {
		for k := range perPrompt {
			idx++
			req := generate.Request{
				SourceFile: row.File, SourceLine: row.Line, Row: p.rowCount, Index: idx,
				Model: resolved.Model.ID, Provider: resolved.Model.Provider, RemoteModel: resolved.Model.RemoteID,
				Prompt: pr.text, NegativePrompt: pr.neg,
				Width: resolved.Width, Height: resolved.Height, AspectRatio: resolved.AspectRatio,
				Quality: resolved.Quality, Style: resolved.Style, Format: resolved.Format,
				Seed: imageSeed(seed, c*perPrompt+k), Options: opts, Vars: recorded,
				Price: resolved.PricePerImage, Warnings: warnings,
			}
			if nameSrc != "" {
				req.ExplicitName = true
				req.Name = sanitizePath(nameSrc)
				if req.Name == "" {
					return prob(input.FieldName, "%q is not usable as a file name", nameSrc)
				}
				if len(prompts)*perPrompt > 1 {
					req.Name += "-" + strconv.Itoa(idx)
				}
			} else {
				name, err := p.name.Render(expand.NameFields{Row: p.rowCount, N: idx, Seed: req.Seed, Model: req.Model, Date: p.date}, vars)
				if err != nil {
					return prob(input.FieldName, "%v", err)
				}
				req.Name = name
			}
			if !yield(req) {
				return nil
			}
		}
	}
	return nil
}

// errNUL says why text with a NUL character is refused: no database
// column holds it (PostgreSQL refuses it outright), so it is refused the
// same way everywhere, before anything is stored.
const errNUL = "contains a NUL character (\\u0000), which text cannot hold; remove it"

// imageSeed is the seed of a row's k-th image (from 0): the row's seed
// plus k, within the range every provider accepts.
func imageSeed(seed int64, k int) int64 { return (seed + int64(k)) % (MaxSeed + 1) }

// MaxSeed is the largest seed bulkgen sends: Stability's documented maximum,
// so that one seed works with every provider.
const MaxSeed = expand.MaxSeed

// sanitizePath makes a file name from a row's name column: "/" separates
// sub-folders, every segment is sanitised, and "." and ".." segments are
// dropped, so the result always stays inside the output folder.
func sanitizePath(name string) string {
	var segs []string
	for _, seg := range strings.Split(strings.ReplaceAll(name, "\\", "/"), "/") {
		seg = strings.TrimSpace(seg)
		if seg == "" || seg == "." || seg == ".." {
			continue
		}
		if s := expand.Sanitize(seg); s != "" {
			segs = append(segs, s)
		}
	}
	return strings.Join(segs, "/")
}

// recognised are the canonical field names the input package produces.
var recognised = map[string]bool{
	input.FieldPrompt: true, input.FieldNegativePrompt: true, input.FieldModel: true, input.FieldSize: true,
	input.FieldAspectRatio: true, input.FieldQuality: true, input.FieldN: true, input.FieldSeed: true,
	input.FieldFormat: true, input.FieldStyle: true, input.FieldName: true,
}

// RecordVars are the values recorded with each image: the variables and
// provider options, without the recognised fields that the request
// already carries in their own fields.
func RecordVars(values map[string]string) map[string]string {
	var out map[string]string
	for k, v := range values {
		if recognised[k] {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(values))
		}
		out[k] = v
	}
	return out
}

// varsDigest is an order-independent digest of the row's values, for
// deriving its seed: each key/value pair is hashed (FNV-1a, then a
// splitmix64 finaliser) and the pair hashes are added, so no sorting and no
// allocation is needed however many columns the row has.
func varsDigest(vars map[string]string) string {
	var sum uint64
	for k, v := range vars {
		h := uint64(14695981039346656037)
		for i := 0; i < len(k); i++ {
			h = (h ^ uint64(k[i])) * 1099511628211
		}
		h = (h ^ 0) * 1099511628211
		for i := 0; i < len(v); i++ {
			h = (h ^ uint64(v[i])) * 1099511628211
		}
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
		sum += h
	}
	return strconv.FormatUint(sum, 36)
}

// parse parses a row's prompt template, remembering recent ones: a CSV
// whose prompt column repeats a template (or a few) parses each once.
func (p *Planner) parse(src string) (*expand.Template, error) {
	if t, ok := p.parsed[src]; ok {
		return t, nil
	}
	t, err := expand.Parse(src)
	if err != nil {
		return nil, err
	}
	if p.parsed == nil || len(p.parsed) >= maxCachedTemplates {
		p.parsed = make(map[string]*expand.Template)
	}
	p.parsed[src] = t
	return t, nil
}

const maxCachedTemplates = 256
