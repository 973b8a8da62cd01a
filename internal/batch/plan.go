// Package batch turns input rows into validated, priced image items: the
// front half of the pipeline (parse → expand → validate → estimate), shared
// by `bulkgen run` and the server. It streams: rows go in one at a time and
// items come out one at a time, so memory does not grow with the input.
package batch

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/catalog"
	"bulkgen/internal/expand"
	"bulkgen/internal/input"
)

// Defaults are the batch-wide values a row falls back on when it does not
// set a field itself (from command-line flags or the API request).
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

// Planner expands and validates rows. Build one per batch; it is not safe
// for concurrent use (it caches parsed templates).
type Planner struct {
	Catalog  *catalog.Catalog
	Expander *expand.Expander
	// Template, when set, builds every row's prompt ("--template"); the
	// row's own prompt column is then available to it as {prompt}.
	Template *expand.Template
	// Name builds file names; nil means the default "{row}-{n}" (or the
	// row's own name column when it has one).
	Name     *expand.NameTemplate
	Defaults Defaults
	// Now is the planning time: used for {date} and model shutdown dates.
	Now time.Time
	// MaxPerRow caps the images one row may produce (variants × n).
	// Zero means the Expander's MaxImages.
	MaxPerRow int
	// Available, when set, says whether a provider can take work here (its
	// key or URL is configured); a row for one that cannot is a problem
	// found before anything is spent, not a failure at generation time.
	Available func(provider string) error

	rowCount int
	defName  *expand.NameTemplate
	date     string
	parsed   map[string]*expand.Template
}

// Item is one image to generate: everything a provider call, a file name
// and a manifest line need.
type Item struct {
	SourceFile string
	SourceLine int
	// Row is the 1-based ordinal of the data row within the batch.
	Row int
	// Index is the 1-based index of this image within its row.
	Index          int
	Prompt         string
	NegativePrompt string
	Model          *catalog.Model
	Width, Height  int
	AspectRatio    string
	Quality        string
	Style          string
	Format         string
	Seed           int64
	Options        map[string]string
	// Vars are the row's values as read (shared by the row's items; do not
	// modify). RecordVars gives the part recorded with each image.
	Vars map[string]string
	// Name is the file name (relative, no extension) before the batch makes
	// it unique.
	Name string
	// ExplicitName is true when the row named its file itself.
	ExplicitName bool
	// Price is the estimated cost in credits.
	Price    int64
	Warnings []string
}

// Problem is a row that cannot produce images, reported as file:line.
type Problem struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

func (p Problem) Error() string {
	loc := fmt.Sprintf("%s:%d", p.File, p.Line)
	if p.Column > 0 {
		loc += fmt.Sprintf(":%d", p.Column)
	}
	if p.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Msg)
	}
	return loc + ": " + p.Msg
}

// Plan expands one row into items and calls yield for each, in order. It
// returns the row's problems; a row with problems yields nothing (a bad
// row is skipped whole, so that its images are not half made). yield may
// return false to stop early.
func (p *Planner) Plan(row input.Row, yield func(Item) bool) []Problem {
	p.rowCount++
	if p.date == "" {
		p.date = p.Now.Format("2006-01-02")
	}
	prob := func(field, format string, args ...any) []Problem {
		return []Problem{{File: row.File, Line: row.Line, Field: field, Msg: fmt.Sprintf(format, args...)}}
	}
	get := func(field, def string) string {
		if v, ok := row.Values[field]; ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}

	// Numbers first: they decide how many images the row makes.
	n := max(p.Defaults.N, 1)
	if v := get("n", ""); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			return prob("n", "%q is not a whole number of images (1 or more)", v)
		}
		n = k
	}
	var seed int64
	hasSeed := p.Defaults.HasSeed
	seed = p.Defaults.Seed
	if v := get("seed", ""); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 || s > MaxSeed {
			return prob("seed", "%q is not a seed between 0 and %d", v, MaxSeed)
		}
		seed, hasSeed = s, true
	}

	// Expansion only reads the variables, so the row's own map serves.
	vars := row.Values
	opts := maps.Clone(p.Defaults.Options)
	for k, v := range row.Values {
		if name, ok := strings.CutPrefix(k, "opt."); ok && name != "" {
			if opts == nil {
				opts = map[string]string{}
			}
			opts[name] = v
		}
	}

	// The prompt: the batch template, or the row's own prompt as a template.
	tmpl := p.Template
	promptSrc := row.Values["prompt"]
	if tmpl == nil {
		if strings.TrimSpace(promptSrc) == "" {
			if p.Template == nil {
				return prob("prompt", "no prompt (the row has no prompt value and no --template was given)")
			}
		}
		if !row.Literal {
			t, err := p.parse(promptSrc)
			if err != nil {
				return prob("prompt", "%v", err)
			}
			if !t.IsLiteral() {
				tmpl = t
			}
		}
	}
	negSrc := get("negative_prompt", p.Defaults.NegativePrompt)
	var negTmpl *expand.Template
	if negSrc != "" && !row.Literal && strings.ContainsAny(negSrc, "{_") {
		t, err := expand.Parse(negSrc)
		if err != nil {
			return prob("negative_prompt", "%v", err)
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
		c, err := p.Expander.Count(tmpl, vars)
		if err != nil {
			return prob("prompt", "%v", err)
		}
		combos = c
	}
	limit := int64(p.MaxPerRow)
	if limit <= 0 {
		limit = int64(p.Expander.MaxImages)
		if limit <= 0 {
			limit = 10000
		}
	}
	if combos*int64(n) > limit || combos*int64(n) < 0 {
		return prob("n", "the row would produce %d images (%d prompts × n=%d), more than the limit of %d (--max-images)", combos*int64(n), combos, n, limit)
	}

	spec := catalog.Spec{
		Model:          get("model", p.Defaults.Model),
		Size:           get("size", p.Defaults.Size),
		AspectRatio:    get("aspect_ratio", p.Defaults.AspectRatio),
		Quality:        get("quality", p.Defaults.Quality),
		Format:         strings.ToLower(get("format", p.Defaults.Format)),
		Style:          get("style", p.Defaults.Style),
		N:              1, // bulkgen makes one image per provider call
		HasSeed:        hasSeed,
		NegativePrompt: negSrc,
	}
	if spec.Model == "" {
		return prob("model", "no model given (set --model or a model column)")
	}
	if spec.Size != "" {
		w, h, err := catalog.ParseSize(spec.Size)
		if err != nil {
			return prob("size", "%v", err)
		}
		spec.Width, spec.Height = w, h
	}

	nameSrc := get("name", "")
	nameT := p.Name
	if nameT == nil {
		if p.defName == nil {
			p.defName, _ = expand.ParseName(expand.DefaultNameTemplate)
		}
		nameT = p.defName
	}

	// Collect the prompts first (bounded by limit) so that a problem in
	// any of them skips the whole row before anything is yielded.
	type prompt struct{ text, neg string }
	var prompts []prompt
	if tmpl == nil {
		prompts = append(prompts, prompt{text: promptSrc})
	} else {
		err := p.Expander.Expand(tmpl, vars, seed, func(_ int, s string) bool {
			prompts = append(prompts, prompt{text: s})
			return true
		})
		if err != nil {
			return prob("prompt", "%v", err)
		}
	}
	var problems []Problem
	var resolved catalog.Resolved
	for i := range prompts {
		neg := negSrc
		if negTmpl != nil {
			var out string
			if err := p.Expander.Expand(negTmpl, vars, seed, func(_ int, s string) bool { out = s; return false }); err != nil {
				return prob("negative_prompt", "%v", err)
			}
			neg = out
		}
		prompts[i].neg = neg
		if strings.TrimSpace(prompts[i].text) == "" {
			return prob("prompt", "the prompt is empty after expansion")
		}
		spec.Prompt, spec.NegativePrompt = prompts[i].text, neg
		r, ps := p.Catalog.Check(spec, p.Now)
		if len(ps) == 0 && p.Available != nil && i == 0 {
			if err := p.Available(r.Model.Provider); err != nil {
				return prob("model", "%s: %v", r.Model.ID, err)
			}
		}
		if len(ps) > 0 {
			for _, q := range ps {
				problems = append(problems, Problem{File: row.File, Line: row.Line, Field: q.Field, Msg: q.Msg})
			}
			return problems
		}
		resolved = r
	}

	idx := 0
	for c, pr := range prompts {
		for k := range n {
			idx++
			imgSeed := (seed + int64(c*n+k)) % (MaxSeed + 1)
			it := Item{
				SourceFile:     row.File,
				SourceLine:     row.Line,
				Row:            p.rowCount,
				Index:          idx,
				Prompt:         pr.text,
				NegativePrompt: pr.neg,
				Model:          resolved.Model,
				Width:          resolved.Width,
				Height:         resolved.Height,
				AspectRatio:    resolved.AspectRatio,
				Quality:        resolved.Quality,
				Style:          resolved.Style,
				Format:         resolved.Format,
				Seed:           imgSeed,
				Options:        opts,
				Vars:           row.Values,
				Price:          resolved.PricePerImage,
				Warnings:       resolved.Warnings,
			}
			if nameSrc != "" {
				it.ExplicitName = true
				it.Name = sanitizePath(nameSrc)
				if it.Name == "" {
					return prob("name", "%q is not usable as a file name", nameSrc)
				}
				if len(prompts)*n > 1 {
					it.Name += "-" + strconv.Itoa(idx)
				}
			} else {
				name, err := nameT.Render(expand.NameFields{Row: p.rowCount, N: idx, Seed: imgSeed, Model: resolved.Model.ID, Date: p.date}, vars)
				if err != nil {
					return prob("name", "%v", err)
				}
				it.Name = name
			}
			if !yield(it) {
				return nil
			}
		}
	}
	return nil
}

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
// provider options, without the recognised fields that the record already
// carries in their own columns.
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
