// Package registry builds the provider adapters that the configuration
// enables (a key or URL in the environment or config file), together with
// their rate budgets. It is the one place that knows every adapter.
package registry

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"bulkgen/internal/catalog"
	"bulkgen/internal/provider"
	"bulkgen/internal/provider/preview"
	"bulkgen/internal/ratelimit"
)

// Config is what the registry is built from.
type Config struct {
	// Getenv reads configuration variables (OPENAI_API_KEY, …).
	Getenv  func(string) string
	Catalog *catalog.Catalog
	// Preview configures the built-in engine.
	Preview preview.Config
	// Limits overrides provider rate budgets by provider name.
	Limits map[string]ratelimit.Limits
}

// Registry holds the configured providers.
type Registry struct {
	providers map[string]provider.Provider
	missing   map[string]string // provider → why it is not configured
	cat       *catalog.Catalog
	limits    *ratelimit.Set
}

// builder makes one adapter from the environment; ok is false when the
// provider is not configured (reason says what to set).
type builder func(getenv func(string) string) (p provider.Provider, ok bool, reason string, err error)

// spec is how one provider is configured: the variables that enable it, in
// the order the catalogue's "env" list names them (the first is the one
// "set X" asks for), and its builder.
type spec struct {
	env   []string
	build builder
	// baseVars are the variables overriding a hosted API's base URL; when
	// none is set, the catalogue's base_url for the provider is used, so a
	// catalogue file can point a provider elsewhere too.
	baseVars []string
}

// builders lists every adapter except preview, which is always present.
var builders = map[string]spec{}

// Build returns the registry for cfg.
func Build(cfg Config) (*Registry, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	r := &Registry{providers: map[string]provider.Provider{}, missing: map[string]string{}, cat: cfg.Catalog}
	pv, err := preview.New(cfg.Preview)
	if err != nil {
		return nil, fmt.Errorf("preview engine: %w", err)
	}
	r.providers["preview"] = pv
	for name, b := range builders {
		penv := getenv
		if info, ok := catalogProvider(cfg.Catalog, name); ok && info.BaseURL != "" && len(b.baseVars) > 0 {
			penv = func(k string) string {
				if k == b.baseVars[0] {
					if _, v := firstVar(getenv, b.baseVars...); v != "" {
						return v
					}
					return info.BaseURL
				}
				return getenv(k)
			}
		}
		p, ok, reason, err := b.build(penv)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		if !ok {
			r.missing[name] = reason
			continue
		}
		r.providers[name] = p
	}
	defaults := map[string]ratelimit.Limits{}
	if cfg.Catalog != nil {
		for key, b := range cfg.Catalog.RateBudgets() {
			defaults[key] = ratelimit.Limits{Concurrency: b.Concurrency, RPM: b.RPM}
		}
	}
	for name, l := range cfg.Limits {
		defaults[name] = l
	}
	r.limits = ratelimit.NewSet(defaults)
	return r, nil
}

func catalogProvider(c *catalog.Catalog, name string) (catalog.ProviderInfo, bool) {
	if c == nil {
		return catalog.ProviderInfo{}, false
	}
	return c.Provider(name)
}

// Get returns the adapter for a provider name, or an Auth-class error
// saying how to configure it.
func (r *Registry) Get(name string) (provider.Provider, error) {
	if p, ok := r.providers[name]; ok {
		return p, nil
	}
	if why, ok := r.missing[name]; ok {
		return nil, &provider.Error{Class: provider.Auth, Provider: name, Message: "provider is not configured: " + why}
	}
	return nil, &provider.Error{Class: provider.Invalid, Provider: name, Message: "unknown provider"}
}

// Available reports whether a provider is configured, with the reason
// (which variable to set) when it is not.
func (r *Registry) Available(name string) error {
	if _, ok := r.providers[name]; ok {
		return nil
	}
	if why, ok := r.missing[name]; ok {
		return fmt.Errorf("provider %s is not configured (%s)", name, why)
	}
	return fmt.Errorf("unknown provider %s", name)
}

// Set adds or replaces an adapter (tests and embedding programs).
func (r *Registry) Set(p provider.Provider) {
	r.providers[p.Name()] = p
	delete(r.missing, p.Name())
}

// Configured lists the configured providers other than preview.
func (r *Registry) Configured() []string {
	var names []string
	for n := range r.providers {
		if n != "preview" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// HasHosted reports whether any provider besides preview is configured.
func (r *Registry) HasHosted() bool { return len(r.Configured()) > 0 }

// DefaultModel is the model of a batch row that names none: the preview
// engine when no other provider is configured (so a fresh install works
// without keys, in the CLI and the server alike), and none otherwise, since
// spending on a model nobody chose would surprise.
func (r *Registry) DefaultModel() string {
	if r.HasHosted() {
		return ""
	}
	return "preview"
}

// Missing returns why each unconfigured provider is unavailable.
func (r *Registry) Missing() map[string]string { return r.missing }

// Limits returns the shared rate budgets.
func (r *Registry) Limits() *ratelimit.Set { return r.limits }

// DefaultConcurrency is the provider's concurrency default for a model id,
// or 8 when the provider sets none (the preview engine) or is unknown.
func (r *Registry) DefaultConcurrency(modelID string) int {
	const fallback = 8
	if r.cat == nil {
		return fallback
	}
	m, err := r.cat.Lookup(modelID)
	if err != nil {
		return fallback
	}
	if info, ok := r.cat.Provider(m.Provider); ok && info.Concurrency > 0 {
		return info.Concurrency
	}
	return fallback
}

// String names the configured providers and why the others are not. It is
// what fmt and log print for a Registry, so that printing one can never
// show an adapter's configuration (keys are provider.Secret, which masks
// itself, but a future field might not be).
func (r *Registry) String() string {
	var b strings.Builder
	b.WriteString("registry{configured: ")
	b.WriteString(strings.Join(append([]string{"preview"}, r.Configured()...), ", "))
	if len(r.missing) > 0 {
		b.WriteString("; not configured: ")
		for i, name := range slices.Sorted(maps.Keys(r.missing)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name + " (" + r.missing[name] + ")")
		}
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so that %#v does not print the adapters either.
func (r *Registry) GoString() string { return r.String() }
