package app

import (
	"testing"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
)

// TestProviderQueues: each provider's queue runs its catalogue concurrency
// plus headroom unless --workers says otherwise.
func TestProviderQueues(t *testing.T) {
	t.Parallel()
	cat := catalog.Default()
	for _, tt := range []struct {
		name    string
		workers int
		want    func(p catalog.ProviderInfo) int
	}{
		{"catalogue concurrency plus headroom", 0, func(p catalog.ProviderInfo) int {
			if p.Concurrency <= 0 {
				return defaultProviderWorkers
			}
			return p.Concurrency + max(2, p.Concurrency/2)
		}},
		{"--workers", 7, func(catalog.ProviderInfo) int { return 7 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			qs := ProviderQueues(cat, tt.workers)
			for _, p := range cat.Providers() {
				if got, want := qs[batch.QueueFor(p.Name)].MaxWorkers, tt.want(p); got != want {
					t.Errorf("%s (concurrency %d): %d workers, want %d", p.Name, p.Concurrency, got, want)
				}
			}
			if qs[batch.QueueFor("preview")].MaxWorkers < 1 {
				t.Error("no preview queue")
			}
		})
	}
}
