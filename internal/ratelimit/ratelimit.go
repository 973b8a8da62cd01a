// Package ratelimit keeps bulkgen inside each provider's rate budget within
// one process: a concurrency limit, a requests-per-minute budget and a shared
// pause that a 429 with Retry-After imposes on every caller of that provider.
//
// A Limiter is one budget. A Set holds the limiters of a process, one per
// provider, plus one per model where a provider limits per model (OpenAI and
// Gemini count per model). Budgets shared by several nodes live in the
// database; this package is the in-process half.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limits configures one Limiter. Zero values mean "unlimited".
type Limits struct {
	// Concurrency is the most calls in flight at once; 0 = unlimited.
	Concurrency int
	// RPM is the request budget per minute; 0 = unlimited.
	RPM float64
	// Burst is how many requests may start back to back after an idle
	// period. The default (0 → 1) spreads requests evenly over the minute:
	// providers count their windows in ways we cannot see (Stability uses
	// 10-second windows, others sliding minutes), and an even spacing of
	// 60/RPM seconds stays inside every such window, whereas a burst of N
	// can exceed a short window even when the per-minute total is right.
	Burst int
}

// Limiter is one rate budget: a semaphore for concurrency, a token bucket
// for requests per minute and a pause-until time shared by every caller.
// It is safe for concurrent use. The zero value is not usable; call New.
type Limiter struct {
	limits Limits
	rpm    *rate.Limiter // nil when RPM is unlimited
	sem    chan struct{} // nil when concurrency is unlimited

	// epoch anchors pausedUntil on the monotonic clock, so that a wall
	// clock step cannot shorten or stretch a pause.
	epoch time.Time
	// pausedUntil is the end of the pause in nanoseconds since epoch; 0 =
	// never paused. Read without a lock on the hot path.
	pausedUntil atomic.Int64

	// parent, when set, is the provider-wide limiter of a per-model
	// limiter: its pause applies here too (an account-wide 429 stops every
	// model), while its concurrency and RPM do not.
	parent *Limiter
}

// noRelease is returned for unlimited concurrency so that Acquire does not
// allocate on the hot path.
func noRelease() {}

// New returns a Limiter enforcing l.
func New(l Limits) *Limiter {
	lim := &Limiter{limits: l, epoch: time.Now()}
	if l.Concurrency > 0 {
		lim.sem = make(chan struct{}, l.Concurrency)
	}
	if l.RPM > 0 {
		burst := l.Burst
		if burst <= 0 {
			burst = 1
		}
		lim.rpm = rate.NewLimiter(rate.Limit(l.RPM/60), burst)
	}
	return lim
}

// Limits returns the configuration the limiter was built with.
func (l *Limiter) Limits() Limits { return l.limits }

// Acquire waits until a call may start: the pause (this limiter's and its
// provider's) has passed, a concurrency slot is free and an RPM token is
// available. It returns a release func that the caller must call exactly
// once when the call has finished, or ctx's error (wrapped) if ctx ends
// first; nothing is held when an error is returned.
//
// The order matters. The pause is waited out first, so that no slot or
// token is taken while the provider has asked us to stop. The slot comes
// before the RPM token because a token taken and then held while waiting
// for a slot would be spent later in a clump, undoing the even spacing.
// If a pause begins while waiting for the token, the caller waits it out
// again before starting (the token is spent, but nothing is sent).
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if err := l.waitPause(ctx); err != nil {
		return nil, err
	}
	release = noRelease
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("ratelimit: wait for a concurrency slot: %w", ctx.Err())
		}
		var once sync.Once
		release = func() { once.Do(func() { <-l.sem }) }
	}
	if l.rpm != nil {
		if err := l.rpm.Wait(ctx); err != nil {
			release()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("ratelimit: wait for an RPM token: %w", ctx.Err())
			}
			// rate reports a wait that cannot end before ctx's deadline
			// without waiting; say so in terms callers can test for.
			return nil, fmt.Errorf("ratelimit: next RPM token comes after the deadline: %w", context.DeadlineExceeded)
		}
		if err := l.waitPause(ctx); err != nil {
			release()
			return nil, err
		}
	}
	return release, nil
}

// waitPause blocks until neither this limiter nor its parent is paused.
// A pause that is extended while waiting is honoured, since the loop reads
// the pause again after every wake-up.
func (l *Limiter) waitPause(ctx context.Context) error {
	for {
		until := l.PausedUntil()
		if l.parent != nil {
			if pu := l.parent.PausedUntil(); pu.After(until) {
				until = pu
			}
		}
		if until.IsZero() {
			return nil // never paused: the hot path, no clock read
		}
		d := time.Until(until)
		if d <= 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("ratelimit: paused until %s: %w", until.Format(time.RFC3339), err)
		}
		// Waiting past the caller's deadline is pointless: return now, as
		// rate.Limiter.Wait does, so that a job can be snoozed instead.
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			return fmt.Errorf("ratelimit: paused until %s, after the deadline: %w",
				until.Format(time.RFC3339), context.DeadlineExceeded)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("ratelimit: paused until %s: %w", until.Format(time.RFC3339), ctx.Err())
		case <-t.C:
		}
	}
}

// Pause stops every Acquire on this limiter (and on the per-model limiters
// under it) for d from now. It extends a pause already in force and never
// shortens one, because a later, shorter Retry-After from one request does
// not cancel the account-wide wait another request was told about.
func (l *Limiter) Pause(d time.Duration) {
	if d <= 0 {
		return
	}
	until := int64(time.Since(l.epoch) + d)
	for {
		cur := l.pausedUntil.Load()
		if cur >= until || l.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// PausedUntil returns the end of this limiter's own pause, or the zero time
// if it was never paused. A time in the past means the pause is over.
func (l *Limiter) PausedUntil() time.Time {
	n := l.pausedUntil.Load()
	if n == 0 {
		return time.Time{}
	}
	return l.epoch.Add(time.Duration(n))
}
