package ratelimit

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// Set holds the limiters of one process, keyed by provider, or by
// provider + "/" + model for models configured with their own budget.
// It is safe for concurrent use.
type Set struct {
	provDefaults  map[string]Limits
	modelDefaults map[string]map[string]Limits // provider → model → limits
	keys          []string

	mu        sync.RWMutex
	providers map[string]*providerLimiters
}

type providerLimiters struct {
	lim    *Limiter
	models map[string]*Limiter // only models with their own Limits
}

// NewSet returns a Set. defaults maps a provider name ("openai") or a
// provider and model ("openai/gpt-image-2") to its Limits. The model part is
// the provider's own model id (the catalogue's remote_id, which may itself
// contain slashes: "replicate/black-forest-labs/flux-schnell"). A provider
// without an entry is unlimited.
func NewSet(defaults map[string]Limits) *Set {
	s := &Set{
		provDefaults:  map[string]Limits{},
		modelDefaults: map[string]map[string]Limits{},
		providers:     map[string]*providerLimiters{},
	}
	for k, v := range defaults {
		s.keys = append(s.keys, k)
		provider, model, perModel := strings.Cut(k, "/")
		if !perModel || model == "" {
			s.provDefaults[provider] = v
			continue
		}
		if s.modelDefaults[provider] == nil {
			s.modelDefaults[provider] = map[string]Limits{}
		}
		s.modelDefaults[provider][model] = v
	}
	sort.Strings(s.keys)
	return s
}

// For returns the limiter to use for a call to model at provider: the
// model's own limiter when one is configured, else the provider's. The same
// key always yields the same *Limiter, so every caller shares its budget.
func (s *Set) For(provider, model string) *Limiter {
	s.mu.RLock()
	p := s.providers[provider]
	if p != nil {
		if m, ok := p.models[model]; ok {
			s.mu.RUnlock()
			return m
		}
		if _, perModel := s.modelDefaults[provider][model]; !perModel {
			s.mu.RUnlock()
			return p.lim
		}
	}
	s.mu.RUnlock()
	return s.slowFor(provider, model)
}

// slowFor creates limiters on first use.
func (s *Set) slowFor(provider, model string) *Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.providers[provider]
	if p == nil {
		p = &providerLimiters{lim: New(s.provDefaults[provider]), models: map[string]*Limiter{}}
		s.providers[provider] = p
	}
	if model == "" {
		return p.lim
	}
	if m, ok := p.models[model]; ok {
		return m
	}
	l, ok := s.modelDefaults[provider][model]
	if !ok {
		return p.lim
	}
	m := New(l)
	m.parent = p.lim
	p.models[model] = m
	return m
}

// PauseProvider pauses every call to provider, whichever model it is for:
// the account-wide reaction to a 429. Pausing the limiter returned by For
// pauses only that model when the model has its own budget.
func (s *Set) PauseProvider(provider string, d time.Duration) {
	s.For(provider, "").Pause(d)
}

// Keys lists the configured keys, sorted, for logging the effective budgets.
func (s *Set) Keys() []string { return append([]string(nil), s.keys...) }
