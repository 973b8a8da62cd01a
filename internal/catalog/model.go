package catalog

import (
	"math"
	"strings"
	"time"
)

// Model is one image model as the catalogue describes it. Models are built
// at load and shared: treat every field as read-only.
type Model struct {
	// ID is bulkgen's identifier, "provider/name" (e.g. "openai/gpt-image-2"),
	// or "preview". Lookups are case-insensitive.
	ID string
	// Provider names the adapter ("openai", "gemini", ...), a key of the
	// catalogue's providers section.
	Provider string
	// RemoteID is the provider's own model id, path or endpoint name: what
	// goes into provider.Request.Model.
	RemoteID string
	// Endpoint is a provider-specific route selector where one provider has
	// several (Stability "ultra", "core", "sd3"; Gemini "predict" for Imagen).
	Endpoint string
	// Aliases are other names that find this model (e.g. "gpt-image-2").
	Aliases []string
	// Name is the display name.
	Name string
	// Released and Shutdown are dates (UTC midnight); zero if unknown/none.
	Released, Shutdown time.Time
	// Replacement is the ID of the model to use once this one is retired.
	Replacement string

	// Sizes lists the exact sizes the model accepts (may be empty).
	Sizes []Size
	// Free is the rule for models accepting any size within limits; nil
	// for models restricted to Sizes or Ratios.
	Free *FreeSize
	// DefaultSize is used when a row gives neither size nor ratio.
	DefaultSize Size
	// Ratios are the aspect ratios the provider accepts natively, each with
	// the size it produces.
	Ratios []Ratio
	// Megapixels is the nominal output area (in units of 2^20 pixels) for
	// ratio-only models and for sizes computed from a ratio.
	Megapixels float64

	// Formats are the file formats the model can return ("png", "jpeg",
	// "webp"); the first is used when png is not among them.
	Formats []string
	// MaxN is the most images one request may ask for.
	MaxN int
	// Qualities are the accepted quality words, DefaultQuality the one used
	// when a row gives none (may be empty).
	Qualities      []string
	DefaultQuality string
	// Styles are the accepted style or preset names, DefaultStyle the one
	// used when a row gives none (usually empty: the provider's default).
	Styles       []string
	DefaultStyle string
	// MaxPrompt is the longest prompt in characters; 0 = not checked.
	MaxPrompt int
	// Negative and Seed say whether negative prompts and seeds are honoured.
	Negative, Seed bool
	// Price is what one image costs, in credits.
	Price Price
	// Concurrency and RPM, when non-zero, give this model its own rate
	// budget instead of sharing the provider's.
	Concurrency int
	RPM         float64
	// Dynamic is true for models made up on lookup ("replicate:owner/name")
	// from a generic template rather than listed in the catalogue.
	Dynamic bool
	// Notes say what is unconfirmed or unusual about the model.
	Notes string

	// Precomputed at load so that Check neither allocates nor formats on
	// its happy path.
	sizeSet       map[Size]int // exact size → index in candidates
	ratioIdx      map[Size]int // reduced ratio → index in Ratios
	candidates    []candidate  // sizes a non-free model can produce
	defaultRatio  string
	defaultNom    bool
	defaultFormat string
	msgSizes      string
	msgRatios     string
	msgFormats    string
	msgQualities  string
	msgStyles     string
	warnNegative  string
	warnSeed      string
	warnShutdown  string
	warnDynamic   string
}

// Ratio is an aspect ratio a model accepts and the size it maps to.
type Ratio struct {
	// Name as providers write it, e.g. "16:9".
	Name string
	// W and H are the ratio's terms as written.
	W, H int
	// Size is the pixel size for the ratio.
	Size Size
	// Documented is true when the provider publishes Size; otherwise Size is
	// bulkgen's nominal estimate and the real size is read from the image.
	Documented bool
}

// candidate is one size a non-free model can produce, with its ratio name.
type candidate struct {
	size      Size
	ratio     string
	nominal   bool
	logAspect float64
	logArea   float64
}

func newCandidate(s Size, ratio string, nominal bool) candidate {
	return candidate{
		size: s, ratio: ratio, nominal: nominal,
		logAspect: math.Log(float64(s.W) / float64(s.H)),
		logArea:   math.Log(float64(s.W) * float64(s.H)),
	}
}

// Price is a model's price per image in credits (1 credit = US$0.001).
type Price struct {
	// Base is the price when no quality or tier rule applies.
	Base int64
	// ByQuality overrides Base per quality word.
	ByQuality map[string]int64
	// Tiers, when present, price by size: the first tier whose MaxPixels
	// covers the image applies (the last one if none does).
	Tiers []PriceTier
}

// PriceTier is the price for images up to MaxPixels pixels.
type PriceTier struct {
	// MaxPixels is the largest width × height this tier covers; 0 = any.
	MaxPixels int64
	Base      int64
	ByQuality map[string]int64
}

// Cost returns the price of one w x h image at quality, in credits. An
// empty quality means the model's default quality.
func (m *Model) Cost(quality string, w, h int) int64 {
	if quality == "" {
		quality = m.DefaultQuality
	}
	base, byQ := m.Price.Base, m.Price.ByQuality
	if n := len(m.Price.Tiers); n > 0 {
		px := int64(w) * int64(h)
		t := &m.Price.Tiers[n-1]
		for i := range m.Price.Tiers {
			if tt := &m.Price.Tiers[i]; tt.MaxPixels == 0 || px <= tt.MaxPixels {
				t = tt
				break
			}
		}
		base, byQ = t.Base, t.ByQuality
	}
	if p, ok := byQ[quality]; ok {
		return p
	}
	return base
}

// RetiredAt reports whether the model's shutdown date has come by now.
func (m *Model) RetiredAt(now time.Time) bool {
	return !m.Shutdown.IsZero() && !now.Before(m.Shutdown)
}

// SupportsFormat reports whether the model can return format.
func (m *Model) SupportsFormat(format string) bool {
	for _, f := range m.Formats {
		if f == format {
			return true
		}
	}
	return false
}

// SupportedSizes describes the sizes in words, for `bulkgen models` and
// error messages.
func (m *Model) SupportedSizes() string { return m.msgSizes }

// SupportedRatios describes the aspect ratios in words.
func (m *Model) SupportedRatios() string { return m.msgRatios }

// Allows reports whether the model produces exactly w x h.
func (m *Model) Allows(w, h int) bool {
	if m.Free != nil {
		return m.Free.Allows(w, h)
	}
	_, ok := m.sizeSet[Size{w, h}]
	return ok
}

// ratioName names the aspect of w x h: one of the model's ratios, a common
// ratio, or (rarely, and allocating) the reduced W:H.
func (m *Model) ratioName(w, h int) string {
	if i, ok := m.sizeSet[Size{w, h}]; ok {
		return m.candidates[i].ratio
	}
	for i := range m.Ratios {
		if aspectMatches(w, h, m.Ratios[i].W, m.Ratios[i].H) {
			return m.Ratios[i].Name
		}
	}
	return commonRatioName(w, h)
}

// commonRatios are named without allocating when a free size matches one.
var commonRatios = []struct {
	name string
	w, h int
}{
	{"1:1", 1, 1}, {"16:9", 16, 9}, {"9:16", 9, 16}, {"4:3", 4, 3}, {"3:4", 3, 4},
	{"3:2", 3, 2}, {"2:3", 2, 3}, {"5:4", 5, 4}, {"4:5", 4, 5}, {"21:9", 21, 9},
	{"9:21", 9, 21}, {"2:1", 2, 1}, {"1:2", 1, 2}, {"3:1", 3, 1}, {"1:3", 1, 3},
	{"4:1", 4, 1}, {"1:4", 1, 4}, {"16:10", 16, 10}, {"10:16", 10, 16},
}

func commonRatioName(w, h int) string {
	r := reduce(w, h)
	for _, c := range commonRatios {
		if r.W == c.w && r.H == c.h {
			return c.name
		}
	}
	// Within 1% of a common ratio (1360x768 is "16:9"), name it so.
	for _, c := range commonRatios {
		a := float64(w) * float64(c.h)
		b := float64(h) * float64(c.w)
		if math.Abs(a/b-1) <= 0.01 {
			return c.name
		}
	}
	return ratioString(w, h)
}

// canonical returns the entry of list equal to v ignoring case, so that
// "PNG" resolves to the catalogue's "png" without allocating.
func canonical(list []string, v string) (string, bool) {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return s, true
		}
	}
	return "", false
}
