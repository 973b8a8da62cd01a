package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// The JSON shapes below are the file format documented in docs/catalog.md.
// They are decoded strictly (unknown fields are errors) and then turned
// into Model and ProviderInfo values with every rule checked.

type fileJSON struct {
	Schema    int                        `json:"schema"`
	Providers map[string]json.RawMessage `json:"providers"`
	Dynamic   map[string]json.RawMessage `json:"dynamic"`
	Models    []json.RawMessage          `json:"models"`
}

type providerJSON struct {
	Title       string   `json:"title"`
	Env         []string `json:"env"`
	BaseURL     string   `json:"base_url"`
	Concurrency int      `json:"concurrency"`
	RPM         float64  `json:"rpm"`
	Docs        string   `json:"docs"`
	Notes       string   `json:"notes"`
	Disabled    bool     `json:"disabled"`
}

type modelJSON struct {
	ID             string      `json:"id"`
	Provider       string      `json:"provider"`
	RemoteID       string      `json:"remote_id"`
	Endpoint       string      `json:"endpoint"`
	Aliases        []string    `json:"aliases"`
	Name           string      `json:"name"`
	Released       string      `json:"released"`
	Shutdown       string      `json:"shutdown"`
	Replacement    string      `json:"replacement"`
	Disabled       bool        `json:"disabled"`
	Sizes          []string    `json:"sizes"`
	FreeSize       *freeJSON   `json:"free_size"`
	DefaultSize    string      `json:"default_size"`
	Ratios         []ratioJSON `json:"ratios"`
	Megapixels     float64     `json:"megapixels"`
	Formats        []string    `json:"formats"`
	MaxN           int         `json:"max_n"`
	Qualities      []string    `json:"qualities"`
	DefaultQuality string      `json:"default_quality"`
	Styles         []string    `json:"styles"`
	DefaultStyle   string      `json:"default_style"`
	MaxPrompt      int         `json:"max_prompt"`
	Negative       bool        `json:"negative"`
	Seed           bool        `json:"seed"`
	Price          *priceJSON  `json:"price"`
	Concurrency    int         `json:"concurrency"`
	RPM            float64     `json:"rpm"`
	Notes          string      `json:"notes"`
}

type freeJSON struct {
	MinEdge     int    `json:"min_edge"`
	MaxEdge     int    `json:"max_edge"`
	MultipleOf  int    `json:"multiple_of"`
	MaxPixels   int    `json:"max_pixels"`
	MinAspect   string `json:"min_aspect"`
	MaxAspect   string `json:"max_aspect"`
	DefaultEdge int    `json:"default_edge"`
}

type ratioJSON struct {
	Ratio string `json:"ratio"`
	Size  string `json:"size"`
}

type priceJSON struct {
	Base      int64            `json:"base"`
	ByQuality map[string]int64 `json:"by_quality"`
	Tiers     []tierJSON       `json:"tiers"`
}

type tierJSON struct {
	MaxPixels int64            `json:"max_pixels"`
	Base      int64            `json:"base"`
	ByQuality map[string]int64 `json:"by_quality"`
}

// knownFormats are the formats the rest of bulkgen handles.
var knownFormats = []string{"png", "jpeg", "webp"}

// entry is one model or provider object while files are merged: its
// fields as raw JSON, so that an override replaces exactly the fields it
// sets, and where it was last written, for error messages.
type entry struct {
	key    string // lower-case id or provider name
	fields map[string]json.RawMessage
	where  string // "overrides.json: models[3]"
}

type merger struct {
	models    []*entry
	modelIdx  map[string]*entry
	providers map[string]*entry
	dynamic   map[string]*entry
}

// Load builds a catalogue from the default file and any number of override
// files, applied in order. An override entry whose id exists replaces the
// fields it sets; a new id adds a model; "disabled": true hides one. The
// providers and dynamic sections merge the same way by key. Every problem
// found is reported, each with its file and field path.
func Load(defaultJSON []byte, overrides ...io.Reader) (*Catalog, error) {
	mg := &merger{
		modelIdx:  map[string]*entry{},
		providers: map[string]*entry{},
		dynamic:   map[string]*entry{},
	}
	if err := mg.add("default catalogue", defaultJSON); err != nil {
		return nil, err
	}
	for i, r := range overrides {
		name := fmt.Sprintf("override %d", i+1)
		if n, ok := r.(interface{ Name() string }); ok {
			name = n.Name()
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("catalog: read %s: %w", name, err)
		}
		if err := mg.add(name, data); err != nil {
			return nil, err
		}
	}
	return mg.build()
}

// add decodes one file and merges it into what came before.
func (mg *merger) add(src string, data []byte) error {
	var f fileJSON
	if err := decodeStrict(data, &f); err != nil {
		return fmt.Errorf("catalog: %s: %w", src, err)
	}
	if f.Schema != 0 && f.Schema != 1 {
		return fmt.Errorf("catalog: %s: schema: %d is not supported (want 1)", src, f.Schema)
	}
	var errs []error
	for _, name := range sortedKeys(f.Providers) {
		where := fmt.Sprintf("%s: providers.%s", src, name)
		var p providerJSON
		if err := decodeStrict(f.Providers[name], &p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		mergeEntry(mg.providers, strings.ToLower(name), f.Providers[name], where, &errs)
	}
	for _, name := range sortedKeys(f.Dynamic) {
		where := fmt.Sprintf("%s: dynamic.%s", src, name)
		var m modelJSON
		if err := decodeStrict(f.Dynamic[name], &m); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		mergeEntry(mg.dynamic, strings.ToLower(name), f.Dynamic[name], where, &errs)
	}
	seen := map[string]int{}
	for i, raw := range f.Models {
		where := fmt.Sprintf("%s: models[%d]", src, i)
		var m modelJSON
		if err := decodeStrict(raw, &m); err != nil {
			// Name the model if its id can be read at all.
			var idOnly struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(raw, &idOnly) == nil && idOnly.ID != "" {
				where = fmt.Sprintf("%s (%s)", where, idOnly.ID)
			}
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if strings.TrimSpace(m.ID) == "" {
			errs = append(errs, fmt.Errorf("%s: id: required", where))
			continue
		}
		key := strings.ToLower(m.ID)
		where = fmt.Sprintf("%s (%s)", where, m.ID)
		if j, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("%s: id: duplicate of models[%d] in the same file", where, j))
			continue
		}
		seen[key] = i
		before := len(mg.modelIdx)
		mergeEntry(mg.modelIdx, key, raw, where, &errs)
		if len(mg.modelIdx) > before {
			mg.models = append(mg.models, mg.modelIdx[key])
		}
	}
	return errors.Join(errs...)
}

// mergeEntry adds raw under key, or overlays its fields on the existing
// entry so that fields the override does not mention keep their values.
func mergeEntry(into map[string]*entry, key string, raw json.RawMessage, where string, errs *[]error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", where, err))
		return
	}
	e, ok := into[key]
	if !ok {
		into[key] = &entry{key: key, fields: fields, where: where}
		return
	}
	for k, v := range fields {
		e.fields[k] = v
	}
	e.where = where
}

// build turns the merged entries into a Catalog, checking every rule.
func (mg *merger) build() (*Catalog, error) {
	c := newCatalog()
	var errs []error
	where := map[*Model]string{}
	for _, key := range sortedKeys(mg.providers) {
		e := mg.providers[key]
		var pj providerJSON
		if err := decodeFields(e.fields, &pj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.where, err))
			continue
		}
		p, perr := buildProvider(key, pj)
		errs = appendWhere(errs, e.where, perr)
		if pj.Disabled {
			continue
		}
		c.providers[key] = p
	}
	for _, e := range mg.models {
		var mj modelJSON
		if err := decodeFields(e.fields, &mj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.where, err))
			continue
		}
		if mj.Disabled {
			c.disabled[e.key] = e.where
			continue
		}
		m, merrs := buildModel(mj)
		errs = appendWhere(errs, e.where, merrs...)
		if len(merrs) > 0 {
			continue
		}
		if _, ok := c.providers[m.Provider]; !ok {
			errs = append(errs, fmt.Errorf("%s: provider: %q is not in the providers section (known: %s)",
				e.where, m.Provider, strings.Join(sortedKeys(c.providers), ", ")))
			continue
		}
		c.models = append(c.models, m)
		where[m] = e.where
	}
	for _, m := range c.models {
		if m.Replacement == "" {
			continue
		}
		if _, ok := mg.modelIdx[strings.ToLower(m.Replacement)]; !ok {
			errs = append(errs, fmt.Errorf("%s: replacement: %q is not a model id", where[m], m.Replacement))
		}
	}
	for _, key := range sortedKeys(mg.dynamic) {
		e := mg.dynamic[key]
		var mj modelJSON
		if err := decodeFields(e.fields, &mj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.where, err))
			continue
		}
		if mj.Disabled {
			continue
		}
		mj.ID = key + ":*"
		if mj.Provider == "" {
			mj.Provider = key
		}
		m, merrs := buildModel(mj)
		errs = appendWhere(errs, e.where, merrs...)
		if len(merrs) == 0 {
			m.Dynamic = true
			m.warnDynamic = fmt.Sprintf("%s models not in the catalogue get generic limits (%s; n up to %d) and an estimated price of %d credits; add the model to your catalogue file for exact checks",
				key, m.msgSizes, m.MaxN, m.Price.Base)
			c.dynamic[key] = m
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.index()
	return c, nil
}

func appendWhere(errs []error, where string, add ...error) []error {
	for _, err := range add {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	return errs
}

func buildProvider(name string, pj providerJSON) (ProviderInfo, error) {
	p := ProviderInfo{
		Name: name, Title: pj.Title, Env: pj.Env, BaseURL: pj.BaseURL,
		Concurrency: pj.Concurrency, RPM: pj.RPM, Docs: pj.Docs, Notes: pj.Notes,
	}
	var errs []error
	if pj.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency: %d is negative (0 means unlimited)", pj.Concurrency))
	}
	if pj.RPM < 0 {
		errs = append(errs, fmt.Errorf("rpm: %g is negative (0 means unlimited)", pj.RPM))
	}
	return p, errors.Join(errs...)
}

// buildModel converts and validates one model; each error names its field.
func buildModel(mj modelJSON) (*Model, []error) {
	fe := &fieldErrs{}
	m := &Model{
		ID: mj.ID, Provider: strings.ToLower(mj.Provider), RemoteID: mj.RemoteID, Endpoint: mj.Endpoint,
		Aliases: mj.Aliases, Name: mj.Name, Replacement: mj.Replacement,
		Megapixels: mj.Megapixels, MaxN: mj.MaxN,
		Qualities: mj.Qualities, DefaultQuality: mj.DefaultQuality,
		Styles: mj.Styles, DefaultStyle: mj.DefaultStyle, MaxPrompt: mj.MaxPrompt,
		Negative: mj.Negative, Seed: mj.Seed, Concurrency: mj.Concurrency, RPM: mj.RPM, Notes: mj.Notes,
	}
	if m.Provider == "" {
		fe.add("provider", "required")
	}
	if m.Name == "" {
		m.Name = m.ID
	}
	for i, a := range m.Aliases {
		if strings.TrimSpace(a) == "" {
			fe.add(fmt.Sprintf("aliases[%d]", i), "empty")
		}
	}
	var err error
	if m.Released, err = parseDate(mj.Released); err != nil {
		fe.add("released", "%v", err)
	}
	if m.Shutdown, err = parseDate(mj.Shutdown); err != nil {
		fe.add("shutdown", "%v", err)
	}
	if m.Megapixels < 0 {
		fe.add("megapixels", "%g is negative", m.Megapixels)
	}
	if m.Megapixels == 0 {
		m.Megapixels = 1
	}
	if m.MaxN < 0 {
		fe.add("max_n", "%d is negative", m.MaxN)
	}
	if m.MaxN == 0 {
		m.MaxN = 1
	}
	if m.MaxPrompt < 0 {
		fe.add("max_prompt", "%d is negative (0 means not checked)", m.MaxPrompt)
	}
	if m.Concurrency < 0 {
		fe.add("concurrency", "%d is negative", m.Concurrency)
	}
	if m.RPM < 0 {
		fe.add("rpm", "%g is negative", m.RPM)
	}

	buildSizes(m, mj, fe)
	buildRatios(m, mj, fe)
	buildDefaultSize(m, mj, fe)
	buildFormats(m, mj, fe)
	buildPrice(m, mj.Price, fe)
	if len(fe.errs) > 0 {
		return nil, fe.errs
	}
	prepare(m)
	if !m.Allows(m.DefaultSize.W, m.DefaultSize.H) {
		fe.add("default_size", "%s is not a size the model accepts (%s)", m.DefaultSize, m.msgSizes)
		return nil, fe.errs
	}
	return m, nil
}

// buildSizes reads sizes and free_size.
func buildSizes(m *Model, mj modelJSON, fe *fieldErrs) {
	for i, s := range mj.Sizes {
		w, h, err := ParseSize(s)
		if err != nil {
			fe.add(fmt.Sprintf("sizes[%d]", i), "%v", err)
			continue
		}
		m.Sizes = append(m.Sizes, Size{w, h})
	}
	if fj := mj.FreeSize; fj != nil {
		f := &FreeSize{
			MinEdge: fj.MinEdge, MaxEdge: fj.MaxEdge, MultipleOf: max(fj.MultipleOf, 1), MaxPixels: fj.MaxPixels,
			MinAspectText: fj.MinAspect, MaxAspectText: fj.MaxAspect, DefaultEdge: fj.DefaultEdge,
		}
		if fj.MinEdge < 0 || fj.MaxEdge < 0 || fj.MultipleOf < 0 || fj.MaxPixels < 0 || fj.DefaultEdge < 0 {
			fe.add("free_size", "limits must not be negative")
		}
		if fj.MaxEdge > 0 && fj.MinEdge > fj.MaxEdge {
			fe.add("free_size.min_edge", "%d is above max_edge %d", fj.MinEdge, fj.MaxEdge)
		}
		if fj.MaxEdge > maxEdge {
			fe.add("free_size.max_edge", "%d is above bulkgen's limit %d", fj.MaxEdge, maxEdge)
		}
		for _, a := range []struct {
			field, text string
			dst         *float64
		}{{"free_size.min_aspect", fj.MinAspect, &f.MinAspect}, {"free_size.max_aspect", fj.MaxAspect, &f.MaxAspect}} {
			if a.text == "" {
				continue
			}
			rw, rh, err := ParseRatio(a.text)
			if err != nil {
				fe.add(a.field, "%v", err)
				continue
			}
			*a.dst = float64(rw) / float64(rh)
		}
		if f.MinAspect > 0 && f.MaxAspect > 0 && f.MinAspect > f.MaxAspect {
			fe.add("free_size", "min_aspect %s is wider than max_aspect %s", fj.MinAspect, fj.MaxAspect)
		}
		m.Free = f
	}
	for i, s := range m.Sizes {
		if m.Free != nil && !m.Free.Allows(s.W, s.H) {
			fe.add(fmt.Sprintf("sizes[%d]", i), "%s breaks free_size (%s)", s, m.Free.Describe())
		}
	}
}

// buildRatios reads ratios: the documented size if given, else the free
// rule's size, else a nominal size at the model's megapixels.
func buildRatios(m *Model, mj modelJSON, fe *fieldErrs) {
	for i, rj := range mj.Ratios {
		field := fmt.Sprintf("ratios[%d]", i)
		rw, rh, err := ParseRatio(rj.Ratio)
		if err != nil {
			fe.add(field+".ratio", "%v", err)
			continue
		}
		r := Ratio{Name: rj.Ratio, W: rw, H: rh}
		switch {
		case rj.Size != "":
			w, h, err := ParseSize(rj.Size)
			if err != nil {
				fe.add(field+".size", "%v", err)
				continue
			}
			r.Size, r.Documented = Size{w, h}, true
			if !aspectMatches(w, h, rw, rh) {
				fe.add(field+".size", "%s is not %s", rj.Size, rj.Ratio)
			}
			if m.Free != nil && !m.Free.Allows(w, h) {
				fe.add(field+".size", "%s breaks free_size (%s)", rj.Size, m.Free.Describe())
			}
			if m.Free == nil && len(m.Sizes) > 0 && !slices.Contains(m.Sizes, r.Size) {
				fe.add(field+".size", "%s is not in sizes", rj.Size)
			}
		case m.Free != nil:
			r.Size = m.Free.SizeForRatio(rw, rh, m.Megapixels)
		default:
			r.Size = nominalSize(rw, rh, m.Megapixels)
		}
		if m.Free != nil && !m.Free.aspectAllowed(rw, rh) {
			fe.add(field+".ratio", "%s is outside free_size's aspect range", rj.Ratio)
		}
		for _, prev := range m.Ratios {
			if reduce(prev.W, prev.H) == reduce(rw, rh) {
				fe.add(field+".ratio", "%s repeats %s", rj.Ratio, prev.Name)
			}
		}
		m.Ratios = append(m.Ratios, r)
	}
	if m.Free == nil && len(m.Sizes) == 0 && len(m.Ratios) == 0 {
		fe.add("sizes", "a model needs sizes, free_size or ratios")
	}
}

// buildDefaultSize reads default_size or derives it.
func buildDefaultSize(m *Model, mj modelJSON, fe *fieldErrs) {
	switch {
	case mj.DefaultSize != "":
		w, h, err := ParseSize(mj.DefaultSize)
		if err != nil {
			fe.add("default_size", "%v", err)
			break
		}
		m.DefaultSize = Size{w, h}
	case len(m.Sizes) > 0:
		m.DefaultSize = m.Sizes[0]
	default:
		if r, ok := findRatio(m.Ratios, 1, 1); ok {
			m.DefaultSize = r.Size
		} else if len(m.Ratios) > 0 {
			m.DefaultSize = m.Ratios[0].Size
		} else if m.Free != nil {
			m.DefaultSize = m.Free.SizeForRatio(1, 1, m.Megapixels)
		}
	}
}

// buildFormats reads formats and checks the default quality and style.
func buildFormats(m *Model, mj modelJSON, fe *fieldErrs) {
	if len(mj.Formats) == 0 {
		fe.add("formats", "required (any of %s)", strings.Join(knownFormats, ", "))
	}
	for i, f := range mj.Formats {
		lf := strings.ToLower(f)
		if lf == "jpg" {
			lf = "jpeg"
		}
		if !slices.Contains(knownFormats, lf) {
			fe.add(fmt.Sprintf("formats[%d]", i), "%q is not one of %s", f, strings.Join(knownFormats, ", "))
			continue
		}
		m.Formats = append(m.Formats, lf)
	}
	if mj.DefaultQuality != "" && !slices.Contains(m.Qualities, mj.DefaultQuality) {
		fe.add("default_quality", "%q is not in qualities (%s)", mj.DefaultQuality, strings.Join(m.Qualities, ", "))
	}
	if mj.DefaultStyle != "" && !slices.Contains(m.Styles, mj.DefaultStyle) {
		fe.add("default_style", "%q is not in styles", mj.DefaultStyle)
	}
}

// buildPrice reads the price, refusing negative amounts and qualities the
// model does not list.
func buildPrice(m *Model, pj *priceJSON, fe *fieldErrs) {
	if pj == nil {
		fe.add("price", "required (credits per image; 0 for free engines)")
		return
	}
	checkPrice := func(field string, base int64, byQ map[string]int64) {
		if base < 0 {
			fe.add(field+".base", "%d is negative", base)
		}
		for _, q := range sortedKeys(byQ) {
			if byQ[q] < 0 {
				fe.add(field+".by_quality."+q, "%d is negative", byQ[q])
			}
			if !slices.Contains(m.Qualities, q) {
				fe.add(field+".by_quality."+q, "%q is not in qualities (%s)", q, strings.Join(m.Qualities, ", "))
			}
		}
	}
	m.Price = Price{Base: pj.Base, ByQuality: pj.ByQuality}
	checkPrice("price", pj.Base, pj.ByQuality)
	var prev int64
	for i, t := range pj.Tiers {
		field := fmt.Sprintf("price.tiers[%d]", i)
		checkPrice(field, t.Base, t.ByQuality)
		if t.MaxPixels < 0 || (i > 0 && (prev == 0 || (t.MaxPixels != 0 && t.MaxPixels <= prev))) {
			fe.add(field+".max_pixels", "tiers must have increasing max_pixels, 0 (any) only last")
		}
		prev = t.MaxPixels
		m.Price.Tiers = append(m.Price.Tiers, PriceTier(t))
	}
}

// fieldErrs collects a model's problems, each prefixed with its field path.
type fieldErrs struct {
	errs []error
}

func (fe *fieldErrs) add(field, format string, args ...any) {
	fe.errs = append(fe.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func findRatio(rs []Ratio, w, h int) (Ratio, bool) {
	k := reduce(w, h)
	for _, r := range rs {
		if reduce(r.W, r.H) == k {
			return r, true
		}
	}
	return Ratio{}, false
}

// prepare fills the precomputed fields Check relies on.
func prepare(m *Model) {
	m.ratioIdx = make(map[Size]int, len(m.Ratios))
	for i, r := range m.Ratios {
		m.ratioIdx[reduce(r.W, r.H)] = i
	}
	m.sizeSet = map[Size]int{}
	addCand := func(s Size, ratio string, nominal bool) {
		if _, ok := m.sizeSet[s]; ok || s.W <= 0 || s.H <= 0 {
			return
		}
		m.sizeSet[s] = len(m.candidates)
		m.candidates = append(m.candidates, newCandidate(s, ratio, nominal))
	}
	for _, r := range m.Ratios {
		addCand(r.Size, r.Name, !r.Documented && m.Free == nil)
	}
	for _, s := range m.Sizes {
		name := ""
		for _, r := range m.Ratios {
			if aspectMatches(s.W, s.H, r.W, r.H) {
				name = r.Name
				break
			}
		}
		if name == "" {
			name = commonRatioName(s.W, s.H)
		}
		addCand(s, name, false)
	}
	m.defaultRatio = m.ratioName(m.DefaultSize.W, m.DefaultSize.H)
	if i, ok := m.sizeSet[m.DefaultSize]; ok {
		m.defaultNom = m.candidates[i].nominal
	}
	m.defaultFormat = m.Formats[0]
	if m.SupportsFormat("png") {
		m.defaultFormat = "png"
	}
	m.msgSizes = describeSizes(m)
	m.msgRatios = describeRatios(m)
	m.msgFormats = strings.Join(m.Formats, ", ")
	m.msgQualities = strings.Join(m.Qualities, ", ")
	m.msgStyles = strings.Join(m.Styles, ", ")
	m.warnNegative = fmt.Sprintf("%s ignores negative prompts; the negative_prompt is not sent (models that honour one: any with negative=true in `bulkgen models`)", m.ID)
	m.warnSeed = fmt.Sprintf("%s ignores seeds; the image will not be reproducible from the seed", m.ID)
	if !m.Shutdown.IsZero() {
		m.warnShutdown = fmt.Sprintf("%s shuts down on %s", m.ID, m.Shutdown.Format(time.DateOnly))
		if m.Replacement != "" {
			m.warnShutdown += "; switch to " + m.Replacement
		}
	}
}

func describeSizes(m *Model) string {
	var list []string
	for _, c := range m.candidates {
		if c.nominal {
			list = append(list, c.size.String()+" ("+c.ratio+", nominal)")
		} else {
			list = append(list, c.size.String())
		}
	}
	if len(list) == 0 {
		for _, s := range m.Sizes {
			list = append(list, s.String())
		}
	}
	if m.Free != nil {
		s := m.Free.Describe()
		if len(list) > 0 {
			s += " (e.g. " + strings.Join(list, ", ") + ")"
		}
		return s
	}
	return strings.Join(list, ", ")
}

func describeRatios(m *Model) string {
	var names []string
	for _, r := range m.Ratios {
		names = append(names, r.Name)
	}
	list := strings.Join(names, ", ")
	if m.Free == nil {
		return list
	}
	var s string
	switch f := m.Free; {
	case f.MinAspectText != "" && f.MaxAspectText != "":
		s = "any ratio from " + f.MinAspectText + " to " + f.MaxAspectText
	default:
		s = "any ratio"
	}
	if list != "" {
		s += " (native: " + list + ")"
	}
	return s
}

func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date YYYY-MM-DD", s)
	}
	return t, nil
}

// decodeStrict decodes one JSON value, rejecting unknown fields and
// trailing data, and names the JSON path of a type error.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: got JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.Kind()))
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(data, se.Offset)
			return fmt.Errorf("line %d, column %d: %w", line, col, err)
		}
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// jsonKind names a Go kind in JSON terms for messages.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return k.String()
}

func decodeFields(fields map[string]json.RawMessage, v any) error {
	data, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return decodeStrict(data, v)
}

func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
