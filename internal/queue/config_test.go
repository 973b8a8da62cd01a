package queue

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"bulkgen/internal/generate"
)

type noopArgs struct{}

func (noopArgs) Kind() string { return "queue_noop" }

type noopWorker struct{ river.WorkerDefaults[noopArgs] }

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

func TestRiverConfigDefaults(t *testing.T) {
	t.Parallel()
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	retry := generate.Policy{}
	rc, err := riverConfig(Config{Queues: map[string]Queue{"openai": {MaxWorkers: 8}}, MaxAttempts: 3, Retry: retry}, workers, nil)
	if err != nil {
		t.Fatalf("riverConfig: %v", err)
	}
	if rc.MaxAttempts != 3 || rc.JobTimeout != DefaultJobTimeout ||
		rc.RescueStuckJobsAfter != DefaultRescueStuckJobsAfter || rc.FetchCooldown != DefaultFetchCooldown ||
		rc.FetchPollInterval != DefaultFetchPollInterval {
		t.Errorf("defaults not applied: %+v", rc)
	}
	if got := rc.Queues["openai"].MaxWorkers; got != 8 {
		t.Errorf("openai MaxWorkers = %d, want 8", got)
	}
	if got := rc.Queues[river.QueueDefault].MaxWorkers; got != DefaultQueueMaxWorkers {
		t.Errorf("default queue MaxWorkers = %d, want %d", got, DefaultQueueMaxWorkers)
	}
	if rc.RetryPolicy != retry {
		t.Errorf("RetryPolicy = %#v, want the one given", rc.RetryPolicy)
	}

	insertOnly, err := riverConfig(Config{InsertOnly: true, Queues: map[string]Queue{"openai": {MaxWorkers: 1}}}, nil, nil)
	if err != nil {
		t.Fatalf("riverConfig(InsertOnly): %v", err)
	}
	if len(insertOnly.Queues) != 0 {
		t.Errorf("insert-only client has queues %v, want none", insertOnly.Queues)
	}
}

func TestRiverConfigRejects(t *testing.T) {
	t.Parallel()
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	tests := []struct {
		name    string
		cfg     Config
		workers *river.Workers
	}{
		{"no workers", Config{MaxAttempts: 3, Retry: generate.Policy{}}, nil},
		{"no max attempts", Config{Retry: generate.Policy{}}, workers},
		{"no retry policy", Config{MaxAttempts: 3}, workers},
		{"zero max workers", Config{MaxAttempts: 3, Retry: generate.Policy{}, Queues: map[string]Queue{"fal": {}}}, workers},
		{"poll below cooldown", Config{MaxAttempts: 3, Retry: generate.Policy{}, FetchCooldown: time.Second, FetchPollInterval: time.Millisecond}, workers},
		{"rescue before timeout", Config{MaxAttempts: 3, Retry: generate.Policy{}, JobTimeout: 10 * time.Minute, RescueStuckJobsAfter: 5 * time.Minute}, workers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := riverConfig(tt.cfg, tt.workers, nil); err == nil {
				t.Errorf("riverConfig(%+v) succeeded, want an error", tt.cfg)
			}
		})
	}
}
