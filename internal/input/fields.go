package input

import (
	"strings"
	"unicode/utf8"
)

// Canonical field names shared by every format (see the brief's "shared
// conventions"). Extra provider options are "opt.<name>".
const (
	FieldPrompt         = "prompt"
	FieldNegativePrompt = "negative_prompt"
	FieldModel          = "model"
	FieldSize           = "size"
	FieldAspectRatio    = "aspect_ratio"
	FieldQuality        = "quality"
	FieldN              = "n"
	FieldSeed           = "seed"
	FieldFormat         = "format"
	FieldStyle          = "style"
	FieldName           = "name"
)

// OptPrefix starts the name of a provider option column or key ("opt.steps").
const OptPrefix = "opt."

// aliases maps a squashed header name (lower case, with spaces, underscores
// and hyphens removed) to its canonical field. Squashing lets "Negative
// Prompt", "negative_prompt", "negative-prompt" and "negativePrompt" share one
// entry. Deliberately absent: words that are plausible template variables
// ("number", "num", "title"), so that such columns stay variables.
var aliases = map[string]string{
	"prompt":         FieldPrompt,
	"prompts":        FieldPrompt,
	"positiveprompt": FieldPrompt,
	"positive":       FieldPrompt,
	"prompttext":     FieldPrompt,
	"text":           FieldPrompt,

	"negativeprompt":  FieldNegativePrompt,
	"negativeprompts": FieldNegativePrompt,
	"negative":        FieldNegativePrompt,
	"negprompt":       FieldNegativePrompt,
	"neg":             FieldNegativePrompt,

	"model":     FieldModel,
	"modelname": FieldModel,
	"modelid":   FieldModel,

	"size":       FieldSize,
	"imagesize":  FieldSize,
	"resolution": FieldSize,
	"dimensions": FieldSize,
	"dimension":  FieldSize,

	"aspectratio": FieldAspectRatio,
	"aspect":      FieldAspectRatio,
	"ratio":       FieldAspectRatio,
	"ar":          FieldAspectRatio,

	"quality": FieldQuality,

	"n":              FieldN,
	"count":          FieldN,
	"images":         FieldN,
	"numimages":      FieldN,
	"nimages":        FieldN,
	"imagecount":     FieldN,
	"numberofimages": FieldN,

	"seed": FieldSeed,

	"format":       FieldFormat,
	"outputformat": FieldFormat,
	"imageformat":  FieldFormat,
	"fileformat":   FieldFormat,

	"style": FieldStyle,

	"name":       FieldName,
	"filename":   FieldName,
	"file":       FieldName,
	"outputname": FieldName,
}

// CanonicalField maps a column header, JSON key or TXT option name onto its
// canonical field name. Matching ignores case, surrounding space and the
// separators ' ', '_' and '-' ("Negative Prompt", "negative-prompt" and
// "negativePrompt" all give "negative_prompt"). A name starting with "opt."
// (any case) gives "opt." followed by the rest as written, trimmed, because
// provider option names can be case-sensitive. It reports false for anything
// else, which callers treat as a template variable.
func CanonicalField(name string) (string, bool) {
	n := strings.TrimSpace(name)
	if len(n) >= len(OptPrefix) && strings.EqualFold(n[:len(OptPrefix)], OptPrefix) {
		k := strings.TrimSpace(n[len(OptPrefix):])
		if k == "" {
			return "", false
		}
		return OptPrefix + k, true
	}
	c, ok := aliases[squash(n)]
	return c, ok
}

// squash lower-cases name and drops the separators that people use
// interchangeably in header names.
func squash(name string) string {
	plain := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= utf8.RuneSelf || c == ' ' || c == '_' || c == '-' || c == '\t' || (c >= 'A' && c <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return name // the common case: already squashed; no allocation
	}
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range strings.ToLower(name) {
		switch r {
		case ' ', '_', '-', '\t':
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isOpt reports whether a mapped field name is a provider option.
func isOpt(field string) bool { return strings.HasPrefix(field, OptPrefix) }
