package ratelimit

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestSetFor(t *testing.T) {
	t.Parallel()
	s := NewSet(map[string]Limits{
		"openai":             {Concurrency: 5, RPM: 5},
		"openai/gpt-image-2": {Concurrency: 2, RPM: 20},
		"replicate/black-forest-labs/flux-schnell": {Concurrency: 3},
	})
	tests := []struct {
		name            string
		provider, model string
		want            Limits
	}{
		{"provider only", "openai", "", Limits{Concurrency: 5, RPM: 5}},
		{"model without own budget", "openai", "gpt-image-1", Limits{Concurrency: 5, RPM: 5}},
		{"model with own budget", "openai", "gpt-image-2", Limits{Concurrency: 2, RPM: 20}},
		{"model id with slashes", "replicate", "black-forest-labs/flux-schnell", Limits{Concurrency: 3}},
		{"replicate provider unconfigured", "replicate", "other/model", Limits{}},
		{"unknown provider is unlimited", "nobody", "x", Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := s.For(tt.provider, tt.model)
			if got := l.Limits(); got != tt.want {
				t.Fatalf("For(%q, %q).Limits() = %+v, want %+v", tt.provider, tt.model, got, tt.want)
			}
			if again := s.For(tt.provider, tt.model); again != l {
				t.Fatal("For returned a different limiter for the same key")
			}
		})
	}
	if got, want := s.For("openai", "gpt-image-1"), s.For("openai", ""); got != want {
		t.Fatal("a model without its own budget must share the provider's limiter")
	}
	if got, want := s.For("openai", "gpt-image-2"), s.For("openai", ""); got == want {
		t.Fatal("a model with its own budget must not share the provider's limiter")
	}
	want := []string{"openai", "openai/gpt-image-2", "replicate/black-forest-labs/flux-schnell"}
	if got := s.Keys(); !slices.Equal(got, want) {
		t.Fatalf("Keys() = %v, want %v", got, want)
	}
}

func TestSetProviderPauseReachesModels(t *testing.T) {
	t.Parallel()
	s := NewSet(map[string]Limits{"openai/gpt-image-2": {Concurrency: 1}})
	model := s.For("openai", "gpt-image-2")
	s.PauseProvider("openai", time.Hour)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := model.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("model Acquire during a provider pause: got %v, want DeadlineExceeded", err)
	}

	// A model-level pause stays with the model.
	other := NewSet(map[string]Limits{"openai/gpt-image-2": {}})
	other.For("openai", "gpt-image-2").Pause(time.Hour)
	release, err := other.For("openai", "gpt-image-1").Acquire(t.Context())
	if err != nil {
		t.Fatalf("sibling model Acquire during a model pause: %v", err)
	}
	release()
}

func BenchmarkSetFor(b *testing.B) {
	s := NewSet(map[string]Limits{"openai": {Concurrency: 5}, "openai/gpt-image-2": {Concurrency: 2}})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.For("openai", "gpt-image-2")
		_ = s.For("openai", "gpt-image-1")
	}
}
