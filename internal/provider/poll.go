package provider

import (
	"context"
	"time"
)

// PollConfig is the pacing of Poll.
type PollConfig struct {
	// Initial is the wait before the first step.
	Initial time.Duration
	// Max caps the wait between steps, which grows by half each time.
	Max time.Duration
}

// Poll drives an asynchronous provider task: it waits, calls step, and
// repeats with a wait half as long again (up to cfg.Max) until step reports
// done or fails. It returns step's error unchanged, or ctx.Err() when ctx
// ends while waiting.
//
// Poll does not inspect ctx after a step: a step that must tell a
// cancelled poll from a failed one checks ctx itself. Deadlines, remote
// cancellation and the wording of timeout errors stay with the adapter,
// because each provider documents them differently.
func Poll(ctx context.Context, cfg PollConfig, step func(ctx context.Context) (done bool, err error)) error {
	interval := cfg.Initial
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		done, err := step(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		interval = min(interval*3/2, cfg.Max)
		timer.Reset(interval)
	}
}
