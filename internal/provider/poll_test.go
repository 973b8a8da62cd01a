package provider_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"bulkgen/internal/provider"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	errStep := errors.New("step failed")
	cfg := provider.PollConfig{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	tests := []struct {
		name      string
		doneAt    int   // step number that reports done; 0 never
		failAt    int   // step number that fails; 0 never
		cancelAt  int   // step number after which ctx is cancelled; 0 never
		wantErr   error // nil for success
		wantSteps int
	}{
		{"done at once", 1, 0, 0, nil, 1},
		{"done after pending", 4, 0, 0, nil, 4},
		{"step error ends polling", 0, 3, 0, errStep, 3},
		{"cancelled while waiting", 0, 0, 2, context.Canceled, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			steps := 0
			err := provider.Poll(ctx, cfg, func(context.Context) (bool, error) {
				steps++
				if steps == tt.cancelAt {
					cancel()
				}
				if steps == tt.failAt {
					return false, errStep
				}
				return steps == tt.doneAt, nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Poll = %v, want %v", err, tt.wantErr)
			}
			if steps != tt.wantSteps {
				t.Errorf("steps = %d, want %d", steps, tt.wantSteps)
			}
		})
	}
}

func TestPollCancelledBeforeFirstStep(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := provider.Poll(ctx, provider.PollConfig{Initial: time.Hour, Max: time.Hour}, func(context.Context) (bool, error) {
		t.Error("step called after cancellation")
		return true, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Poll = %v, want context.Canceled", err)
	}
}
