package queue

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

type noopArgs struct{}

func (noopArgs) Kind() string { return "queue_noop" }

type noopWorker struct{ river.WorkerDefaults[noopArgs] }

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

func TestRiverConfigDefaults(t *testing.T) {
	t.Parallel()
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	rc, err := riverConfig(Config{Queues: map[string]Queue{"openai": {MaxWorkers: 8}}}, workers, nil)
	if err != nil {
		t.Fatalf("riverConfig: %v", err)
	}
	if rc.MaxAttempts != DefaultMaxAttempts || rc.JobTimeout != DefaultJobTimeout ||
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
	if p, ok := rc.RetryPolicy.(RetryPolicy); !ok || p.Min != DefaultRetryMin || p.Max != DefaultRetryMax {
		t.Errorf("RetryPolicy = %#v, want RetryPolicy with the default bounds", rc.RetryPolicy)
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
		{"no workers", Config{}, nil},
		{"zero max workers", Config{Queues: map[string]Queue{"fal": {}}}, workers},
		{"poll below cooldown", Config{FetchCooldown: time.Second, FetchPollInterval: time.Millisecond}, workers},
		{"rescue before timeout", Config{JobTimeout: 10 * time.Minute, RescueStuckJobsAfter: 5 * time.Minute}, workers},
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

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{}
	wantCeilings := []time.Duration{
		2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second,
		64 * time.Second, 128 * time.Second, 180 * time.Second, 180 * time.Second,
	}
	for i, want := range wantCeilings {
		failures := i + 1
		if got := p.Ceiling(failures); got != want {
			t.Errorf("Ceiling(%d) = %s, want %s", failures, got, want)
		}
		for range 50 {
			d := p.Delay(failures)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", failures, d, want/2, want)
			}
		}
	}
	// Many failures must neither overflow nor exceed the cap.
	if got := p.Ceiling(10_000); got != DefaultRetryMax {
		t.Errorf("Ceiling(10000) = %s, want %s", got, DefaultRetryMax)
	}
	// Snoozes add no errors, so a job with two recorded errors waits as
	// after its third failure whatever its attempt number.
	before := time.Now()
	at := p.NextRetry(&rivertype.JobRow{Attempt: 7, Errors: make([]rivertype.AttemptError, 2)})
	if wait := at.Sub(before); wait < 4*time.Second || wait > 8*time.Second+time.Second {
		t.Errorf("NextRetry after 2 errors waits %s, want about [4s, 8s]", wait)
	}
}
