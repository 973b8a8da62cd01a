// Package catalog is bulkgen's model catalogue: every provider's models with
// their real sizes, aspect ratios, formats, image counts, prompt limits and
// prices, kept as data in an embedded JSON file (models.json, documented in
// docs/catalog.md) that a user file can override or extend.
//
// Check validates one image request (a row after expansion) against a
// model and resolves it to what the provider will be asked for: a size the
// model accepts, a format, a quality and a price. It runs once per row of
// files with hundreds of thousands of rows, so its happy path neither
// allocates nor formats; everything it needs is precomputed at load.
package catalog

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed models.json
var defaultJSON []byte

// DefaultJSON returns the embedded default catalogue file, e.g. for
// `bulkgen models --json` or as the base of a user's override.
func DefaultJSON() []byte { return slices.Clone(defaultJSON) }

// Catalog is a loaded, immutable model catalogue, safe for concurrent use.
type Catalog struct {
	models    []*Model                // sorted by provider, id
	byKey     map[string]keyEntry     // lower-case id or alias → model(s)
	providers map[string]ProviderInfo // by name
	dynamic   map[string]*Model       // provider → template ("replicate")
	disabled  map[string]string       // lower-case id → where it was disabled
	ids       []string                // every id and alias, for suggestions

	dynCache sync.Map // dynamic id as given → *Model
	dynCount atomic.Int64

	// loadErr is set only on the empty catalogue Default returns when the
	// embedded file is broken.
	loadErr error
}

type keyEntry struct {
	model *Model
	// ambiguous lists every model sharing this alias; empty when unique.
	ambiguous []*Model
}

// ProviderInfo describes one provider: how it is enabled and its default
// rate budget.
type ProviderInfo struct {
	// Name is the provider's key ("openai").
	Name string
	// Title is the display name.
	Title string
	// Env lists environment variables that enable the provider; any one
	// set (or its _FILE form) is enough. Empty means always available.
	Env []string
	// BaseURL is the default API base.
	BaseURL string
	// Concurrency and RPM are the default rate budget (0 = unlimited),
	// from the provider's lowest published tier.
	Concurrency int
	RPM         float64
	// Docs links the provider's reference for its limits or API.
	Docs string
	// Notes explain the defaults.
	Notes string
}

func newCatalog() *Catalog {
	return &Catalog{
		byKey:     map[string]keyEntry{},
		providers: map[string]ProviderInfo{},
		dynamic:   map[string]*Model{},
		disabled:  map[string]string{},
	}
}

var loadDefault = sync.OnceValues(func() (*Catalog, error) { return Load(defaultJSON) })

// Default returns the embedded catalogue. It never panics: should the
// embedded file be broken (a test prevents that), it returns an empty
// catalogue whose lookups all fail with the load error.
func Default() *Catalog {
	c, err := loadDefault()
	if err != nil {
		empty := newCatalog()
		empty.loadErr = err
		return empty
	}
	return c
}

// LoadFile returns the embedded catalogue overridden by the user file at
// path (same format as models.json; see docs/catalog.md).
func LoadFile(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	return Load(defaultJSON, f)
}

// Open returns the catalogue a --catalog setting names: the embedded one
// for "", or the embedded one merged with the file at path.
func Open(path string) (*Catalog, error) {
	if path == "" {
		return Default(), nil
	}
	return LoadFile(path)
}

// index sorts the models and builds the lookup maps.
func (c *Catalog) index() {
	slices.SortFunc(c.models, func(a, b *Model) int {
		if a.Provider != b.Provider {
			return strings.Compare(a.Provider, b.Provider)
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, m := range c.models {
		c.byKey[strings.ToLower(m.ID)] = keyEntry{model: m}
		c.ids = append(c.ids, m.ID)
	}
	for _, m := range c.models {
		for _, a := range m.Aliases {
			k := strings.ToLower(a)
			e, ok := c.byKey[k]
			switch {
			case !ok:
				c.byKey[k] = keyEntry{model: m}
				c.ids = append(c.ids, a)
			case e.model == m:
			case strings.EqualFold(e.model.ID, a):
				// An id always wins over another model's alias.
			default:
				if len(e.ambiguous) == 0 {
					e.ambiguous = []*Model{e.model}
				}
				e.ambiguous = append(e.ambiguous, m)
				c.byKey[k] = e
			}
		}
	}
}

// Models returns the enabled models, sorted by provider then id.
func (c *Catalog) Models() []*Model { return slices.Clone(c.models) }

// Provider returns the named provider's information.
func (c *Catalog) Provider(name string) (ProviderInfo, bool) {
	p, ok := c.providers[strings.ToLower(name)]
	return p, ok
}

// Providers returns every provider, sorted by name.
func (c *Catalog) Providers() []ProviderInfo {
	out := make([]ProviderInfo, 0, len(c.providers))
	for _, k := range sortedKeys(c.providers) {
		out = append(out, c.providers[k])
	}
	return out
}

// Availability reports for each provider whether it is configured: "" if
// it is, else what to do ("set OPENAI_API_KEY"). Any variable of the
// provider's env list, or its _FILE form, enables it. Used by
// `bulkgen models`; getenv is os.Getenv in production.
func (c *Catalog) Availability(getenv func(string) string) map[string]string {
	out := make(map[string]string, len(c.providers))
	for name, p := range c.providers {
		out[name] = availability(p, getenv)
	}
	return out
}

func availability(p ProviderInfo, getenv func(string) string) string {
	if len(p.Env) == 0 {
		return ""
	}
	for _, e := range p.Env {
		if getenv(e) != "" || getenv(e+"_FILE") != "" {
			return ""
		}
	}
	return "set " + p.Env[0]
}

// UnknownModelError is returned for a model id or alias that the catalogue
// does not know.
type UnknownModelError struct {
	ID string
	// Suggestions are close matches, best first (may be empty).
	Suggestions []string
	// Known lists every model id, for messages when nothing is close.
	Known []string
	// Disabled names where the model was disabled, if it was.
	Disabled string
	// Ambiguous lists the models sharing the alias, if that is the problem.
	Ambiguous []string
}

func (e *UnknownModelError) Error() string {
	switch {
	case e.Disabled != "":
		return fmt.Sprintf("model %q is disabled (%s)", e.ID, e.Disabled)
	case len(e.Ambiguous) > 0:
		return fmt.Sprintf("model %q is ambiguous: it is an alias of %s; use the full id",
			e.ID, strings.Join(e.Ambiguous, ", "))
	case len(e.Suggestions) > 0:
		return fmt.Sprintf("unknown model %q; did you mean %s?", e.ID, strings.Join(e.Suggestions, ", "))
	case e.ID == "":
		return "no model given; known models: " + strings.Join(e.Known, ", ")
	default:
		return fmt.Sprintf("unknown model %q; known models: %s", e.ID, strings.Join(e.Known, ", "))
	}
}

// RetiredError is returned for a model whose shutdown date has passed.
type RetiredError struct {
	Model *Model
	// Replacement is the model to use instead, if the catalogue names one.
	Replacement string
}

func (e *RetiredError) Error() string {
	s := fmt.Sprintf("model %s was shut down on %s", e.Model.ID, e.Model.Shutdown.Format(time.DateOnly))
	if e.Replacement != "" {
		s += "; use " + e.Replacement + " instead"
	}
	return s
}

// Lookup finds a model by id or unique alias, ignoring case, as of now.
// See LookupAt.
func (c *Catalog) Lookup(id string) (*Model, error) { return c.LookupAt(id, time.Now()) }

// LookupAt finds a model by id or unique alias, ignoring case.
//
//   - "replicate:owner/name[:version]" yields a dynamic Replicate model
//     with the generic limits of the catalogue's dynamic section.
//   - An unknown id returns *UnknownModelError with close matches.
//   - A model retired at now returns the model AND a *RetiredError naming
//     its replacement, so that listings can still show it.
func (c *Catalog) LookupAt(id string, now time.Time) (*Model, error) {
	m, err := c.find(id)
	if err != nil {
		return nil, err
	}
	if m.RetiredAt(now) {
		return m, &RetiredError{Model: m, Replacement: m.Replacement}
	}
	return m, nil
}

// find is the allocation-free lookup behind LookupAt and Check: ids are
// stored lower-case, and a lower-case query (the usual case) hits directly.
func (c *Catalog) find(id string) (*Model, error) {
	if c.loadErr != nil {
		return nil, fmt.Errorf("catalog not loaded: %w", c.loadErr)
	}
	e, ok := c.byKey[id]
	if !ok {
		if lower := strings.ToLower(id); lower != id {
			e, ok = c.byKey[lower]
		}
	}
	if ok {
		if len(e.ambiguous) > 0 {
			var ids []string
			for _, m := range e.ambiguous {
				ids = append(ids, m.ID)
			}
			return nil, &UnknownModelError{ID: id, Ambiguous: ids}
		}
		return e.model, nil
	}
	if prov, rest, ok := strings.Cut(id, ":"); ok {
		if tmpl := c.dynamic[strings.ToLower(prov)]; tmpl != nil {
			return c.dynamicModel(tmpl, id, rest)
		}
	}
	return nil, c.unknown(id)
}

func (c *Catalog) unknown(id string) error {
	if where, ok := c.disabled[strings.ToLower(id)]; ok {
		return &UnknownModelError{ID: id, Disabled: where}
	}
	e := &UnknownModelError{ID: id, Suggestions: suggest(id, c.ids, c.byKey)}
	if len(e.Suggestions) == 0 {
		for _, m := range c.models {
			e.Known = append(e.Known, m.ID)
		}
	}
	return e
}

// maxDynamic bounds the cache of dynamic models, so that a file naming
// endless distinct versions cannot grow memory without limit.
const maxDynamic = 4096

// dynamicModel builds (or reuses) the model for "replicate:owner/name[:v]".
func (c *Catalog) dynamicModel(tmpl *Model, id, ref string) (*Model, error) {
	if v, ok := c.dynCache.Load(id); ok {
		return v.(*Model), nil
	}
	if err := checkReplicateRef(ref); err != nil {
		return nil, fmt.Errorf("model %q: %w", id, err)
	}
	m := *tmpl
	m.ID = id
	m.RemoteID = ref
	m.Name = ref
	m.Aliases = nil
	if c.dynCount.Load() < maxDynamic {
		if v, loaded := c.dynCache.LoadOrStore(id, &m); loaded {
			return v.(*Model), nil
		}
		c.dynCount.Add(1)
	}
	return &m, nil
}

// checkReplicateRef accepts "owner/name" or "owner/name:version".
func checkReplicateRef(ref string) error {
	name, version, hasVersion := strings.Cut(ref, ":")
	owner, model, ok := strings.Cut(name, "/")
	if !ok || owner == "" || model == "" || strings.Contains(model, "/") || (hasVersion && version == "") {
		return errors.New(`want replicate:owner/name or replicate:owner/name:version`)
	}
	if strings.ContainsAny(ref, " \t\r\n?#") {
		return errors.New("model reference contains spaces or URL characters")
	}
	return nil
}

// Budget is a default rate budget from the catalogue (0 = unlimited).
type Budget struct {
	Concurrency int
	RPM         float64
}

// RateBudgets returns the catalogue's default rate budgets keyed the way
// ratelimit.NewSet expects: the provider name, plus provider + "/" +
// remote_id for each model that sets its own concurrency or rpm. Disabled
// providers are left out.
func (c *Catalog) RateBudgets() map[string]Budget {
	out := make(map[string]Budget, len(c.providers))
	for name, p := range c.providers {
		out[name] = Budget{Concurrency: p.Concurrency, RPM: p.RPM}
	}
	for _, m := range c.models {
		if m.Concurrency == 0 && m.RPM == 0 {
			continue
		}
		if _, ok := c.providers[m.Provider]; ok {
			out[m.Provider+"/"+m.RemoteID] = Budget{Concurrency: m.Concurrency, RPM: m.RPM}
		}
	}
	return out
}
