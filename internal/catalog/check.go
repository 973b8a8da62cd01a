package catalog

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Spec is one image request as a row describes it, before validation.
// Empty fields mean "the model's default".
type Spec struct {
	// Model is a catalogue id or alias.
	Model string
	// Width and Height, if the caller parsed a size already; else Size.
	Width, Height int
	// AspectRatio such as "16:9".
	AspectRatio string
	Quality     string
	Format      string
	Style       string
	// N is the number of images in one request; 0 means 1.
	N              int
	Prompt         string
	NegativePrompt string
	// HasSeed says the row gave a seed.
	HasSeed bool
	// Size is the raw "WxH" text, used when Width and Height are zero.
	// "auto" is the same as empty.
	Size string
}

// Resolved is a Spec made concrete for one model: what the provider will
// be asked for and what it costs.
type Resolved struct {
	Model *Model
	// Width and Height the model will produce. For models that take only
	// a ratio and publish no pixel sizes they are nominal (see Nominal).
	Width, Height int
	AspectRatio   string
	Quality       string
	Format        string
	Style         string
	N             int
	// PricePerImage in credits; the request costs N times this.
	PricePerImage int64
	// Nominal is true when Width and Height are bulkgen's estimate for a
	// ratio-only model; the real size is read from the returned image.
	Nominal bool
	// Warnings are changes made or things ignored; the request is still
	// valid. Each names the supported values.
	Warnings []string
}

// Problem is one reason a Spec cannot be sent, tied to a row field.
type Problem struct {
	// Field is the canonical row field: model, prompt, negative_prompt,
	// size, aspect_ratio, quality, n, seed, format, style.
	Field string
	Msg   string
}

func (p Problem) Error() string { return p.Field + ": " + p.Msg }

// Check validates s against the catalogue as of now and resolves it.
// A non-empty problem list means the request must not be sent; Resolved is
// then filled as far as it could be. Check does not allocate unless there
// are warnings or problems.
func (c *Catalog) Check(s Spec, now time.Time) (Resolved, []Problem) {
	var r Resolved
	var probs []Problem
	m, err := c.find(s.Model)
	if err != nil {
		return r, append(probs, Problem{"model", err.Error()})
	}
	r.Model = m
	if m.RetiredAt(now) {
		probs = append(probs, Problem{"model", (&RetiredError{Model: m, Replacement: m.Replacement}).Error()})
	} else if m.warnShutdown != "" {
		r.Warnings = append(r.Warnings, m.warnShutdown)
	}
	if m.Dynamic {
		r.Warnings = append(r.Warnings, m.warnDynamic)
	}

	// Prompt.
	if isBlank(s.Prompt) {
		probs = append(probs, Problem{"prompt", "empty; every image needs a prompt" + maxPromptText(m)})
	} else if limit := m.promptLimit(); len(s.Prompt) > limit {
		// len is a cheap upper bound on the rune count: most prompts
		// never need counting.
		if n := utf8.RuneCountInString(s.Prompt); n > limit {
			probs = append(probs, Problem{"prompt", fmt.Sprintf("%d characters; %s accepts at most %d", n, m.ID, limit)})
		}
	}
	if n := utf8.RuneCountInString(s.NegativePrompt); len(s.NegativePrompt) > MaxPromptLength && n > MaxPromptLength {
		probs = append(probs, Problem{"negative_prompt", fmt.Sprintf("%d characters; bulkgen accepts at most %d", n, MaxPromptLength)})
	}
	if s.NegativePrompt != "" && !m.Negative {
		r.Warnings = append(r.Warnings, m.warnNegative)
	}
	if s.HasSeed && !m.Seed {
		r.Warnings = append(r.Warnings, m.warnSeed)
	}

	c.checkSize(m, s, &r, &probs)

	// Format: png when offered, else the model's first.
	switch {
	case s.Format == "":
		r.Format = m.defaultFormat
	case strings.EqualFold(s.Format, "jpg") && m.SupportsFormat("jpeg"):
		r.Format = "jpeg"
	default:
		f, ok := canonical(m.Formats, s.Format)
		if !ok {
			probs = append(probs, Problem{"format", fmt.Sprintf("%q is not offered by %s; supported: %s", s.Format, m.ID, m.msgFormats)})
		}
		r.Format = f
	}

	// Count.
	r.N = s.N
	switch {
	case s.N == 0:
		r.N = 1
	case s.N < 0:
		probs = append(probs, Problem{"n", fmt.Sprintf("%d; must be 1 to %d", s.N, m.MaxN)})
	case s.N > m.MaxN:
		probs = append(probs, Problem{"n", fmt.Sprintf("%d images in one request; %s makes at most %d per request (split the row into requests of %d)", s.N, m.ID, m.MaxN, m.MaxN)})
	}

	// Quality and style. A model with no such setting ignores the value
	// with a warning rather than failing the row: a CSV column of
	// qualities meant for one model must not sink rows sent to another.
	r.Quality = pickOption(s.Quality, m.Qualities, m.DefaultQuality, "quality", m.ID, m.msgQualities, &r, &probs)
	r.Style = pickOption(s.Style, m.Styles, m.DefaultStyle, "style", m.ID, m.msgStyles, &r, &probs)

	if r.Width > 0 && r.Height > 0 {
		r.PricePerImage = m.Cost(r.Quality, r.Width, r.Height)
	}
	return r, probs
}

func pickOption(v string, list []string, def, field, model, supported string, r *Resolved, probs *[]Problem) string {
	if v == "" {
		return def
	}
	if len(list) == 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s has no %s setting; %s %q ignored", model, field, field, v))
		return ""
	}
	c, ok := canonical(list, v)
	if !ok {
		*probs = append(*probs, Problem{field, fmt.Sprintf("%q is not a %s of %s; supported: %s", v, field, model, supported)})
	}
	return c
}

// MaxPromptLength is the longest prompt (and negative prompt) bulkgen
// accepts for any model, in characters: the longest any provider in the
// catalogue takes. A model whose catalogue entry says less is held to that;
// one that says nothing is held to this. Every image's file carries its
// prompt, so an unbounded prompt multiplied by many images would fill the
// disk.
const MaxPromptLength = 32_000

// promptLimit is the longest prompt m accepts.
func (m *Model) promptLimit() int {
	if m.MaxPrompt > 0 && m.MaxPrompt < MaxPromptLength {
		return m.MaxPrompt
	}
	return MaxPromptLength
}

func maxPromptText(m *Model) string {
	return fmt.Sprintf(" (%s accepts 1 to %d characters)", m.ID, m.promptLimit())
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			if s[i] < utf8.RuneSelf {
				return false
			}
			return strings.TrimSpace(s[i:]) == ""
		}
	}
	return true
}

// checkSize resolves the size and ratio:
//   - a size the model accepts is kept; any other is mapped to the nearest
//     one it does (same orientation, closest aspect, then closest area)
//     with a warning naming both;
//   - a ratio alone maps to the model's size for that ratio (computed for
//     free-size models);
//   - both given must agree;
//   - neither gives the model's default size.
func (c *Catalog) checkSize(m *Model, s Spec, r *Resolved, probs *[]Problem) {
	w, h := s.Width, s.Height
	sizeGiven := w != 0 || h != 0
	shown := "" // the size as the user wrote it, for warnings; "" for w x h
	if !sizeGiven && s.Size != "" && !strings.EqualFold(s.Size, "auto") {
		var err error
		w, h, err = ParseSize(s.Size)
		if err != nil {
			*probs = append(*probs, Problem{"size", err.Error() + "; " + m.ID + " supports " + m.msgSizes})
			return
		}
		sizeGiven, shown = true, strings.TrimSpace(s.Size)
	}
	if sizeGiven && (w <= 0 || h <= 0) {
		*probs = append(*probs, Problem{"size", fmt.Sprintf("%dx%d is not a size; %s supports %s", w, h, m.ID, m.msgSizes)})
		return
	}
	// Any positive size goes to the model's rule, which maps it to the
	// nearest size the model makes with a warning; only the arithmetic
	// needs a bound.
	if w > maxParsed || h > maxParsed {
		shown = fmt.Sprintf("%dx%d", w, h)
		w, h = min(w, maxParsed), min(h, maxParsed)
	}
	var rw, rh int
	ratioGiven := s.AspectRatio != "" && !strings.EqualFold(s.AspectRatio, "auto")
	if ratioGiven {
		var err error
		rw, rh, err = ParseRatio(s.AspectRatio)
		if err != nil {
			*probs = append(*probs, Problem{"aspect_ratio", err.Error() + "; " + m.ID + " supports " + m.msgRatios})
			return
		}
	}

	switch {
	case sizeGiven:
		if ratioGiven && !aspectMatches(w, h, rw, rh) {
			*probs = append(*probs, Problem{"aspect_ratio", fmt.Sprintf(
				"size %dx%d is %s but aspect_ratio is %s; give one of them, or a size of that ratio (%s sizes: %s)",
				w, h, ratioString(w, h), s.AspectRatio, m.ID, m.msgSizes)})
			return
		}
		c.resolveSize(m, w, h, shown, r)
	case ratioGiven:
		c.resolveRatio(m, rw, rh, s.AspectRatio, r, probs)
	default:
		r.Width, r.Height = m.DefaultSize.W, m.DefaultSize.H
		r.AspectRatio, r.Nominal = m.defaultRatio, m.defaultNom
	}
}

// resolveSize maps w x h to the model's size. shown is the size as the user
// wrote it, for the warning; "" means w x h.
func (c *Catalog) resolveSize(m *Model, w, h int, shown string, r *Resolved) {
	if m.Free != nil {
		fw, fh := m.Free.Fit(w, h)
		r.Width, r.Height = fw, fh
		r.AspectRatio = m.ratioName(fw, fh)
		if fw != w || fh != h {
			r.Warnings = append(r.Warnings, fmt.Sprintf("size %s is not supported by %s; using %dx%d; supported: %s",
				sizeText(shown, w, h), m.ID, fw, fh, m.msgSizes))
		}
		return
	}
	if i, ok := m.sizeSet[Size{w, h}]; ok {
		cand := &m.candidates[i]
		r.Width, r.Height, r.AspectRatio, r.Nominal = w, h, cand.ratio, cand.nominal
		return
	}
	cand := m.nearest(w, h)
	r.Width, r.Height, r.AspectRatio, r.Nominal = cand.size.W, cand.size.H, cand.ratio, cand.nominal
	r.Warnings = append(r.Warnings, fmt.Sprintf("size %s is not supported by %s; using %s (%s); supported: %s",
		sizeText(shown, w, h), m.ID, cand.size, cand.ratio, m.msgSizes))
}

// sizeText is shown, or w x h when shown is "".
func sizeText(shown string, w, h int) string {
	if shown != "" {
		return shown
	}
	return Size{w, h}.String()
}

// nearest picks the candidate with the same orientation (if any has it),
// the closest aspect and then the closest area, both compared on a log
// scale so that 2x too big and 2x too small weigh the same.
func (m *Model) nearest(w, h int) *candidate {
	la := math.Log(float64(w) / float64(h))
	lr := math.Log(float64(w) * float64(h))
	o := orientation(w, h)
	sameOrientation := false
	for i := range m.candidates {
		if orientation(m.candidates[i].size.W, m.candidates[i].size.H) == o {
			sameOrientation = true
			break
		}
	}
	// Aspects closer than 1% are a tie: providers round the same ratio to
	// slightly different sizes at different resolutions.
	const tie = 0.01
	var best *candidate
	var bestA, bestR float64
	for i := range m.candidates {
		cand := &m.candidates[i]
		if sameOrientation && orientation(cand.size.W, cand.size.H) != o {
			continue
		}
		da, dr := math.Abs(cand.logAspect-la), math.Abs(cand.logArea-lr)
		if best == nil || da < bestA-tie || (da <= bestA+tie && dr < bestR) {
			best, bestA, bestR = cand, da, dr
		}
	}
	return best
}

func (c *Catalog) resolveRatio(m *Model, rw, rh int, given string, r *Resolved, probs *[]Problem) {
	if i, ok := m.ratioIdx[reduce(rw, rh)]; ok {
		ratio := &m.Ratios[i]
		r.Width, r.Height, r.AspectRatio = ratio.Size.W, ratio.Size.H, ratio.Name
		r.Nominal = !ratio.Documented && m.Free == nil
		return
	}
	if m.Free != nil && m.Free.aspectAllowed(rw, rh) {
		size := m.Free.SizeForRatio(rw, rh, m.Megapixels)
		r.Width, r.Height = size.W, size.H
		r.AspectRatio = commonRatioName(rw, rh)
		return
	}
	*probs = append(*probs, Problem{"aspect_ratio", fmt.Sprintf("%s is not supported by %s; supported: %s", given, m.ID, m.msgRatios)})
}
