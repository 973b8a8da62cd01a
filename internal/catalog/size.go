package catalog

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Size is a pixel size.
type Size struct {
	W, H int
}

// String formats the size as "WxH".
func (s Size) String() string { return strconv.Itoa(s.W) + "x" + strconv.Itoa(s.H) }

// IsZero reports whether the size is unset.
func (s Size) IsZero() bool { return s.W == 0 && s.H == 0 }

// maxEdge bounds the terms of a ratio and the edges a catalogue may give a
// model. It is not a limit on the sizes users ask for: those are checked
// against the model alone (see Catalog.checkSize), like any other size the
// model does not support.
const maxEdge = 1 << 16

// maxParsed is where a parsed number stops growing: "99999999999999x1"
// reads as maxParsed x 1, so that w*h cannot overflow while the model's
// rule maps it to a size it accepts.
const maxParsed = 1 << 24

var (
	errSizeSyntax  = errors.New(`want WxH such as "1024x1024"`)
	errRatioSyntax = errors.New(`want W:H such as "16:9"`)
)

// ParseSize parses "WxH" (also "W*H" and "W×H", any case) into positive
// width and height; an edge above maxParsed reads as maxParsed. Whether the
// size is one a model makes is the model's to say (Catalog.Check). It does
// not allocate on success.
func ParseSize(s string) (w, h int, err error) {
	w, rest, ok := parseUint(s)
	if !ok {
		return 0, 0, fmt.Errorf("size %q: %w", s, errSizeSyntax)
	}
	switch {
	case len(rest) > 0 && (rest[0] == 'x' || rest[0] == 'X' || rest[0] == '*'):
		rest = rest[1:]
	case len(rest) >= 2 && rest[:2] == "\xc3\x97": // U+00D7 ×
		rest = rest[2:]
	default:
		return 0, 0, fmt.Errorf("size %q: %w", s, errSizeSyntax)
	}
	h, rest, ok = parseUint(rest)
	if !ok || rest != "" {
		return 0, 0, fmt.Errorf("size %q: %w", s, errSizeSyntax)
	}
	if w == 0 || h == 0 {
		return 0, 0, fmt.Errorf("size %q: width and height must be above 0", s)
	}
	return w, h, nil
}

// ParseRatio parses "W:H" (also "W/H") into positive ratio terms, as
// written (not reduced). It does not allocate on success.
func ParseRatio(s string) (w, h int, err error) {
	w, rest, ok := parseUint(s)
	if !ok || len(rest) == 0 || (rest[0] != ':' && rest[0] != '/') {
		return 0, 0, fmt.Errorf("aspect ratio %q: %w", s, errRatioSyntax)
	}
	h, rest, ok = parseUint(rest[1:])
	if !ok || rest != "" {
		return 0, 0, fmt.Errorf("aspect ratio %q: %w", s, errRatioSyntax)
	}
	if w == 0 || h == 0 || w > maxEdge || h > maxEdge {
		return 0, 0, fmt.Errorf("aspect ratio %q: terms must be 1..%d", s, maxEdge)
	}
	return w, h, nil
}

// parseUint reads leading decimal digits, skipping surrounding spaces. The
// number saturates at maxParsed.
func parseUint(s string) (n int, rest string, ok bool) {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		n = min(n*10+int(s[i]-'0'), maxParsed) // keep consuming digits but stop growing
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	rest = s[i:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return n, rest, true
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// reduce returns the ratio w:h in lowest terms, as a map key.
func reduce(w, h int) Size {
	g := gcd(w, h)
	if g == 0 {
		return Size{}
	}
	return Size{w / g, h / g}
}

// ratioString formats a reduced ratio. Used off the hot path only.
func ratioString(w, h int) string {
	r := reduce(w, h)
	return strconv.Itoa(r.W) + ":" + strconv.Itoa(r.H)
}

// aspectTolerance is how far (relative) a size's aspect may be from a ratio
// and still "be" that ratio: providers publish sizes such as 1376x768 for
// 16:9 (0.8% off) and 1584x672 for 21:9 (1% off), rounded to their
// multiples, while neighbouring ratios (4:3 vs 5:4, 3:2 vs 16:10) differ by
// 6% or more.
const aspectTolerance = 0.03

// aspectMatches reports whether w x h has the ratio rw:rh within tolerance.
func aspectMatches(w, h, rw, rh int) bool {
	a := float64(w) * float64(rh)
	b := float64(h) * float64(rw)
	return math.Abs(a/b-1) <= aspectTolerance
}

// orientation is -1 for portrait, 0 for square, 1 for landscape.
func orientation(w, h int) int {
	switch {
	case w > h:
		return 1
	case w < h:
		return -1
	}
	return 0
}

// FreeSize is a rule for models that accept any size within limits.
// Zero fields mean "no limit".
type FreeSize struct {
	// MinEdge and MaxEdge bound each of width and height.
	MinEdge, MaxEdge int
	// MultipleOf is what both edges must be a multiple of (1 if any).
	MultipleOf int
	// MaxPixels bounds width × height.
	MaxPixels int
	// MinAspect and MaxAspect bound width/height, e.g. 1/3 and 3.
	MinAspect, MaxAspect float64
	// MinAspectText and MaxAspectText are the bounds as written ("1:3").
	MinAspectText, MaxAspectText string
	// DefaultEdge, when set, is the long edge of a size computed from a
	// ratio; otherwise such sizes aim at the model's megapixels.
	DefaultEdge int
}

// Allows reports whether w x h satisfies the rule.
func (f *FreeSize) Allows(w, h int) bool {
	if w <= 0 || h <= 0 {
		return false
	}
	if f.MultipleOf > 1 && (w%f.MultipleOf != 0 || h%f.MultipleOf != 0) {
		return false
	}
	if f.MinEdge > 0 && (w < f.MinEdge || h < f.MinEdge) {
		return false
	}
	if f.MaxEdge > 0 && (w > f.MaxEdge || h > f.MaxEdge) {
		return false
	}
	if f.MaxPixels > 0 && w*h > f.MaxPixels {
		return false
	}
	return f.aspectAllowed(w, h)
}

// aspectAllowed compares with integer cross-multiplication where the bound
// is a ratio, so that exactly 1:3 is allowed and 0.3333 rounding is not an
// issue.
func (f *FreeSize) aspectAllowed(w, h int) bool {
	a := float64(w) / float64(h)
	const eps = 1e-9
	if f.MinAspect > 0 && a < f.MinAspect-eps {
		return false
	}
	if f.MaxAspect > 0 && a > f.MaxAspect+eps {
		return false
	}
	return true
}

// Describe is the rule in words, for messages and docs.
func (f *FreeSize) Describe() string {
	s := "any WxH"
	switch {
	case f.MinEdge > 0 && f.MaxEdge > 0:
		s += fmt.Sprintf(" with edges %d..%d", f.MinEdge, f.MaxEdge)
	case f.MinEdge > 0:
		s += fmt.Sprintf(" with edges of at least %d", f.MinEdge)
	case f.MaxEdge > 0:
		s += fmt.Sprintf(" with edges up to %d", f.MaxEdge)
	}
	if f.MultipleOf > 1 {
		s += fmt.Sprintf(", multiples of %d", f.MultipleOf)
	}
	if f.MaxPixels > 0 {
		s += fmt.Sprintf(", at most %d pixels", f.MaxPixels)
	}
	switch {
	case f.MinAspectText != "" && f.MaxAspectText != "":
		s += ", aspect " + f.MinAspectText + " to " + f.MaxAspectText
	case f.MinAspectText != "":
		s += ", aspect at least " + f.MinAspectText
	case f.MaxAspectText != "":
		s += ", aspect at most " + f.MaxAspectText
	}
	return s
}

// Fit returns the allowed size closest to w x h: the aspect clamped into
// range, the area reduced to the pixel limit, edges scaled into bounds and
// rounded to the multiple. A size that is already allowed is returned as is.
func (f *FreeSize) Fit(w, h int) (int, int) {
	if f.Allows(w, h) {
		return w, h
	}
	return f.fitFloat(float64(w), float64(h))
}

func (f *FreeSize) fitFloat(fw, fh float64) (int, int) {
	if fw <= 0 || fh <= 0 {
		fw, fh = 1, 1
	}
	a := fw / fh
	if f.MinAspect > 0 && a < f.MinAspect {
		a = f.MinAspect
	}
	if f.MaxAspect > 0 && a > f.MaxAspect {
		a = f.MaxAspect
	}
	area := fw * fh
	if f.MaxPixels > 0 && area > float64(f.MaxPixels) {
		area = float64(f.MaxPixels)
	}
	fw = math.Sqrt(area * a)
	fh = fw / a
	if f.MaxEdge > 0 {
		if m := math.Max(fw, fh); m > float64(f.MaxEdge) {
			s := float64(f.MaxEdge) / m
			fw, fh = fw*s, fh*s
		}
	}
	if f.MinEdge > 0 {
		if m := math.Min(fw, fh); m < float64(f.MinEdge) {
			s := float64(f.MinEdge) / m
			fw, fh = fw*s, fh*s
		}
	}
	k := max(f.MultipleOf, 1)
	lo, hi := f.edgeBounds()
	w := clampInt(roundTo(fw, k), lo, hi)
	h := clampInt(roundTo(fh, k), lo, hi)
	// Rounding can push the aspect or the area just past a limit; step the
	// offending edge by one multiple until the rule holds. Each loop runs a
	// handful of times at most.
	for i := 0; i < 64 && !f.aspectAllowed(w, h); i++ {
		if float64(w)/float64(h) < f.MinAspect {
			if h-k >= lo {
				h -= k
			} else {
				w += k
			}
		} else {
			if w-k >= lo {
				w -= k
			} else {
				h += k
			}
		}
	}
	for i := 0; i < 1<<12 && f.MaxPixels > 0 && w*h > f.MaxPixels; i++ {
		if w >= h && w-k >= lo {
			w -= k
		} else if h-k >= lo {
			h -= k
		} else {
			break
		}
	}
	return w, h
}

// edgeBounds are the smallest and largest edges that are multiples of k.
func (f *FreeSize) edgeBounds() (lo, hi int) {
	k := max(f.MultipleOf, 1)
	lo = k
	if f.MinEdge > 0 {
		lo = (f.MinEdge + k - 1) / k * k
	}
	hi = maxEdge / k * k
	if f.MaxEdge > 0 {
		hi = f.MaxEdge / k * k
	}
	return lo, hi
}

// SizeForRatio is the size this rule gives a ratio: the long edge at
// DefaultEdge if set, else an area of megapixels × 2^20 pixels.
func (f *FreeSize) SizeForRatio(rw, rh int, megapixels float64) Size {
	fw, fh := nominalFloat(rw, rh, megapixels, f.DefaultEdge)
	w, h := f.fitFloat(fw, fh)
	return Size{w, h}
}

// nominalSize is the size a ratio is given when the provider publishes
// none: about megapixels × 2^20 pixels, edges rounded to 16 as every
// diffusion model here does.
func nominalSize(rw, rh int, megapixels float64) Size {
	fw, _ := nominalFloat(rw, rh, megapixels, 0)
	w := max(roundTo(fw, 16), 16)
	h := max(roundTo(float64(w)*float64(rh)/float64(rw), 16), 16)
	return Size{w, h}
}

func nominalFloat(rw, rh int, megapixels float64, longEdge int) (fw, fh float64) {
	a := float64(rw) / float64(rh)
	if longEdge > 0 {
		if a >= 1 {
			return float64(longEdge), float64(longEdge) / a
		}
		return float64(longEdge) * a, float64(longEdge)
	}
	if megapixels <= 0 {
		megapixels = 1
	}
	area := megapixels * 1024 * 1024
	fw = math.Sqrt(area * a)
	return fw, fw / a
}

func roundTo(v float64, k int) int {
	return int(math.Round(v/float64(k))) * k
}

func clampInt(v, lo, hi int) int {
	return min(max(v, lo), hi)
}
