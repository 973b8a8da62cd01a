package generate

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
)

func TestPolicyBackoff(t *testing.T) {
	t.Parallel()
	p := Policy{RetryMin: 2 * time.Second, RetryMax: 3 * time.Minute}
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
	if got := p.Ceiling(10_000); got != 3*time.Minute {
		t.Errorf("Ceiling(10000) = %s, want %s", got, 3*time.Minute)
	}
	// Snoozes add no errors, so a job with two recorded errors waits as
	// after its third failure whatever its attempt number.
	before := time.Now()
	at := p.NextRetry(&rivertype.JobRow{Attempt: 7, Errors: make([]rivertype.AttemptError, 2)})
	if wait := at.Sub(before); wait < 4*time.Second || wait > 8*time.Second+time.Second {
		t.Errorf("NextRetry after 2 errors waits %s, want about [4s, 8s]", wait)
	}
}
