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
//
// The row goes through the steps below in order; each step either fills in
// more of the row's plan or stops it with a problem.
func (p *Planner) Plan(row input.Row, yield func(generate.Request) bool) []Problem {
	p.rowCount++
	r := &rowPlan{row: row}
	if pr := p.readNumbers(r); pr != nil {
		return pr
	}
	if pr := p.readTemplates(r); pr != nil {
		return pr
	}
	if pr := p.countImages(r); pr != nil {
		return pr
	}
	if pr := p.readSpec(r); pr != nil {
		return pr
	}
	if pr := p.expandPrompts(r); pr != nil {
		return pr
	}
	if pr := p.checkPrompts(r); pr != nil {
		return pr
	}
	return p.emit(r, yield)
}

// rowPlan is one row on its way through Plan.
type rowPlan struct {
	row     input.Row
	n       int   // images per prompt, the row's n
	seed    int64 // the row's seed: given, a default, or derived from the row
	hasSeed bool
	opts    map[string]string

	tmpl, negTmpl     *expand.Template // nil when literal
	promptSrc, negSrc string
	draws             int // prompts drawn from the template: n, or 1
	spec              catalog.Spec
	prompts           []prompt
	resolved          catalog.Resolved
	warnings          []string
}

type prompt struct{ text, neg string }

// problem is r's one problem, on field.
func (r *rowPlan) problem(field, format string, args ...any) []Problem {
	return []Problem{{File: r.row.File, Line: r.row.Line, Field: field, Message: fmt.Sprintf(format, args...)}}
}

// get is the row's trimmed value of field, or def when it has none.
func (r *rowPlan) get(field, def string) string {
	if v, ok := r.row.Values[field]; ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// readNumbers refuses text no database holds and reads what decides how
// many images the row makes and their seeds, and the provider options.
func (p *Planner) readNumbers(r *rowPlan) []Problem {
	d := p.cfg.Defaults
	for k, v := range r.row.Values {
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			return r.problem(k, "%s", errNUL)
		}
	}
	r.n = max(d.N, 1)
	if v := r.get(input.FieldN, ""); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			return r.problem(input.FieldN, "%q is not a whole number of images (1 or more)", v)
		}
		r.n = k
	}
	r.seed, r.hasSeed = d.Seed, d.HasSeed
	if v := r.get(input.FieldSeed, ""); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 || s > MaxSeed {
			return r.problem(input.FieldSeed, "%q is not a seed between 0 and %d", v, MaxSeed)
		}
		r.seed, r.hasSeed = s, true
	}
	r.opts = maps.Clone(d.Options)
	for k, v := range r.row.Values {
		if name, ok := strings.CutPrefix(k, input.OptPrefix); ok && name != "" {
			if r.opts == nil {
				r.opts = map[string]string{}
			}
			r.opts[name] = v
		}
	}
	return nil
}

// readTemplates finds the row's prompt template (the batch's, or the
// row's own prompt read as one) and negative prompt template, and derives
// the row's seed when none was given.
func (p *Planner) readTemplates(r *rowPlan) []Problem {
	r.tmpl = p.template
	r.promptSrc = r.row.Values[input.FieldPrompt]
	if r.tmpl == nil {
		if strings.TrimSpace(r.promptSrc) == "" {
			return r.problem(input.FieldPrompt, "no prompt: the row has no prompt value and the batch has no prompt template")
		}
		if !r.row.Literal {
			t, err := p.parse(r.promptSrc)
			if err != nil {
				return r.problem(input.FieldPrompt, "%v", err)
			}
			if !t.IsLiteral() {
				r.tmpl = t
			}
		}
	}
	r.negSrc = r.get(input.FieldNegativePrompt, p.cfg.Defaults.NegativePrompt)
	if r.negSrc != "" && !r.row.Literal && strings.ContainsAny(r.negSrc, "{_") {
		t, err := expand.Parse(r.negSrc)
		if err != nil {
			return r.problem(input.FieldNegativePrompt, "%v", err)
		}
		if !t.IsLiteral() {
			r.negTmpl = t
		}
	}
	if !r.hasSeed {
		r.seed = expand.DeriveSeed("row", strconv.Itoa(r.row.Line), r.promptSrc, r.negSrc, varsDigest(r.row.Values))
	}
	return nil
}

// countImages refuses a row that would make more images than one row may.
// Without combinations, each of the row's n images draws its own variants
// (with its own seed), so that "a {red|blue} cup" with n=2 can make one of
// each.
func (p *Planner) countImages(r *rowPlan) []Problem {
	combos := int64(1)
	if r.tmpl != nil {
		c, err := p.expander.Count(r.tmpl, r.row.Values)
		if err != nil {
			return r.problem(input.FieldPrompt, "%v", err)
		}
		combos = c
	}
	if total := combos * int64(r.n); total > p.limit || total < 0 {
		return r.problem(input.FieldN, "the row would make %d images (%d prompts × n=%d), more than the limit of %d per row", total, combos, r.n, p.limit)
	}
	r.draws = 1
	if r.tmpl != nil && !p.expander.Combinatorial && r.tmpl.HasChoices() {
		r.draws = r.n
	}
	return nil
}

// readSpec reads the row's request to the catalogue: model, size, ratio,
// quality, format, style.
func (p *Planner) readSpec(r *rowPlan) []Problem {
	d := p.cfg.Defaults
	r.spec = catalog.Spec{
		Model:          r.get(input.FieldModel, d.Model),
		Size:           r.get(input.FieldSize, d.Size),
		AspectRatio:    r.get(input.FieldAspectRatio, d.AspectRatio),
		Quality:        r.get(input.FieldQuality, d.Quality),
		Format:         strings.ToLower(r.get(input.FieldFormat, d.Format)),
		Style:          r.get(input.FieldStyle, d.Style),
		N:              1, // bulkgen makes one image per provider call
		HasSeed:        r.hasSeed,
		NegativePrompt: r.negSrc,
	}
	if r.spec.Model == "" {
		return r.problem(input.FieldModel, "no model given: set the batch's default model or a model column")
	}
	if r.spec.Size != "" {
		w, h, err := catalog.ParseSize(r.spec.Size)
		if err != nil {
			return r.problem(input.FieldSize, "%v", err)
		}
		r.spec.Width, r.spec.Height = w, h
	}
	return nil
}

// expandPrompts collects the row's prompts (bounded by the limit) before
// anything is yielded, so that a problem in any of them skips the whole
// row.
func (p *Planner) expandPrompts(r *rowPlan) []Problem {
	for k := range r.draws {
		if r.tmpl == nil {
			r.prompts = append(r.prompts, prompt{text: r.promptSrc})
			continue
		}
		err := p.expander.Expand(r.tmpl, r.row.Values, imageSeed(r.seed, k), func(_ int, s string) bool {
			r.prompts = append(r.prompts, prompt{text: s})
			return true
		})
		if err != nil {
			return r.problem(input.FieldPrompt, "%v", err)
		}
	}
	for i := range r.prompts {
		r.prompts[i].neg = r.negSrc
		if r.negTmpl != nil {
			var out string
			if err := p.expander.Expand(r.negTmpl, r.row.Values, r.seed, func(_ int, s string) bool { out = s; return false }); err != nil {
				return r.problem(input.FieldNegativePrompt, "%v", err)
			}
			r.prompts[i].neg = out
		}
		if strings.TrimSpace(r.prompts[i].text) == "" {
			return r.problem(input.FieldPrompt, "the prompt is empty after expansion")
		}
	}
	return nil
}

// checkPrompts checks every prompt of the row against the catalogue, and
// that the model's provider can run here.
func (p *Planner) checkPrompts(r *rowPlan) []Problem {
	for _, pr := range r.prompts {
		r.spec.Prompt, r.spec.NegativePrompt = pr.text, pr.neg
		res, ps := p.catalog.Check(r.spec, p.cfg.Now)
		if len(ps) > 0 {
			problems := make([]Problem, len(ps))
			for i, q := range ps {
				problems[i] = Problem{File: r.row.File, Line: r.row.Line, Field: q.Field, Message: q.Msg}
			}
			return problems
		}
		r.resolved = res
	}
	r.warnings = r.resolved.Warnings
	if p.cfg.Available != nil {
		m := r.resolved.Model
		if err := p.cfg.Available(m.Provider); err != nil {
			if !p.cfg.DryRun {
				return r.problem(input.FieldModel, "%s: %v", m.ID, err)
			}
			// A dry run prices what the user cannot run yet: that is how
			// they find out what it would cost before getting a key.
			w := r.warnings
			r.warnings = append(w[:len(w):len(w)], fmt.Sprintf("%s cannot run here yet: %v", m.ID, err))
		}
	}
	return nil
}

// emit yields the row's requests: each prompt n times (or, for drawn
// prompts, once each), with consecutive seeds and their file names.
func (p *Planner) emit(r *rowPlan, yield func(generate.Request) bool) []Problem {
	recorded := RecordVars(r.row.Values)
	nameSrc := r.get(input.FieldName, "")
	perPrompt := r.n
	if r.draws > 1 {
		perPrompt = 1 // each draw is one of the row's n images
	}
	res, idx := r.resolved, 0
	for c, pr := range r.prompts {
		for k := range perPrompt {
			idx++
			req := generate.Request{
				SourceFile: r.row.File, SourceLine: r.row.Line, Row: p.rowCount, Index: idx,
				Model: res.Model.ID, Provider: res.Model.Provider, RemoteModel: res.Model.RemoteID,
				Prompt: pr.text, NegativePrompt: pr.neg,
				Width: res.Width, Height: res.Height, AspectRatio: res.AspectRatio,
				Quality: res.Quality, Style: res.Style, Format: res.Format,
				Seed: imageSeed(r.seed, c*perPrompt+k), Options: r.opts, Vars: recorded,
				Price: res.PricePerImage, Warnings: r.warnings,
			}
			if nameSrc != "" {
				req.ExplicitName = true
				req.Name = sanitizePath(nameSrc)
				if req.Name == "" {
					return r.problem(input.FieldName, "%q is not usable as a file name", nameSrc)
				}
				if len(r.prompts)*perPrompt > 1 {
					req.Name += "-" + strconv.Itoa(idx)
				}
			} else {
				name, err := p.name.Render(expand.NameFields{Row: p.rowCount, N: idx, Seed: req.Seed, Model: req.Model, Date: p.date}, r.row.Values)
				if err != nil {
					return r.problem(input.FieldName, "%v", err)
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
		h *= 1099511628211 // a zero byte between key and value
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
