package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests below never assert that something happened quickly: the
// machine is shared and noisy. Elapsed times are only checked as lower
// bounds, which no amount of load can break.

func TestConcurrencyNeverExceeded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		limit int
	}{
		{"one", 1},
		{"three", 3},
		{"eight", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := New(Limits{Concurrency: tt.limit})
			var inFlight, peak atomic.Int64
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					release, err := lim.Acquire(t.Context())
					if err != nil {
						t.Errorf("Acquire: %v", err)
						return
					}
					n := inFlight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					time.Sleep(time.Millisecond)
					inFlight.Add(-1)
					release()
				})
			}
			wg.Wait()
			if got := peak.Load(); got > int64(tt.limit) {
				t.Errorf("peak in flight = %d, want at most %d", got, tt.limit)
			}
			if got := peak.Load(); got < 1 {
				t.Errorf("peak in flight = %d, want at least 1", got)
			}
		})
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	t.Parallel()
	lim := New(Limits{Concurrency: 1})
	release, err := lim.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	release()
	release() // a second call must not free a slot someone else holds

	hold, err := lim.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := lim.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with the only slot held: got %v, want context.Canceled", err)
	}
}

func TestPauseBlocksEveryAcquirer(t *testing.T) {
	t.Parallel()
	lim := New(Limits{Concurrency: 4})
	lim.Pause(300 * time.Millisecond)
	until := lim.PausedUntil()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			release, err := lim.Acquire(t.Context())
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			defer release()
			if now := time.Now(); now.Before(until) {
				t.Errorf("acquired at %v, before the pause ended at %v", now, until)
			}
		})
	}
	wg.Wait()
}

func TestPauseCancellation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		wantErr error
	}{
		{
			name: "cancelled while waiting",
			ctx: func(parent context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(parent)
				time.AfterFunc(20*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name: "deadline before the pause ends",
			ctx: func(parent context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(parent, 50*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded,
		},
		{
			name: "already cancelled",
			ctx: func(parent context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(parent)
				cancel()
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := New(Limits{Concurrency: 1, RPM: 60})
			lim.Pause(time.Hour)
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			release, err := lim.Acquire(ctx)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Acquire during a 1h pause: got %v, want %v", err, tt.wantErr)
			}
			if release != nil {
				t.Fatal("Acquire returned a release func with an error")
			}
			// The failed Acquire must not have kept the only slot.
			select {
			case lim.sem <- struct{}{}:
				<-lim.sem
			default:
				t.Fatal("concurrency slot leaked by a cancelled Acquire")
			}
		})
	}
}

func TestPauseNeverShortens(t *testing.T) {
	t.Parallel()
	lim := New(Limits{})
	if !lim.PausedUntil().IsZero() {
		t.Fatalf("new limiter PausedUntil = %v, want zero", lim.PausedUntil())
	}
	lim.Pause(time.Hour)
	long := lim.PausedUntil()
	lim.Pause(time.Second)
	if got := lim.PausedUntil(); !got.Equal(long) {
		t.Fatalf("after a shorter Pause, PausedUntil = %v, want unchanged %v", got, long)
	}
	lim.Pause(-time.Hour)
	lim.Pause(0)
	if got := lim.PausedUntil(); !got.Equal(long) {
		t.Fatalf("after non-positive Pause, PausedUntil = %v, want unchanged %v", got, long)
	}
	lim.Pause(2 * time.Hour)
	if got := lim.PausedUntil(); !got.After(long) {
		t.Fatalf("after a longer Pause, PausedUntil = %v, want after %v", got, long)
	}
}

func TestPauseDuringTokenWaitIsHonoured(t *testing.T) {
	t.Parallel()
	// One token per 200 ms: the second Acquire waits for a token, and a
	// pause that starts meanwhile must still hold it back.
	lim := New(Limits{RPM: 300})
	release, err := lim.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	release()
	done := make(chan time.Time, 1)
	go func() {
		release, err := lim.Acquire(t.Context())
		if err != nil {
			t.Errorf("Acquire: %v", err)
			done <- time.Time{}
			return
		}
		release()
		done <- time.Now()
	}()
	lim.Pause(400 * time.Millisecond)
	until := lim.PausedUntil()
	if got := <-done; got.Before(until) {
		t.Fatalf("acquired at %v, before the pause ended at %v", got, until)
	}
}

func TestRPMSpreadsRequests(t *testing.T) {
	t.Parallel()
	// 1200 RPM = one request per 50 ms with burst 1, so 21 acquisitions
	// need at least 20 intervals = 1 s. 0.85 s leaves room for clock
	// granularity; there is deliberately no upper bound.
	lim := New(Limits{RPM: 1200})
	start := time.Now()
	for range 21 {
		release, err := lim.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	if elapsed := time.Since(start); elapsed < 850*time.Millisecond {
		t.Fatalf("21 acquisitions at 1200 RPM took %v, want at least ~1s", elapsed)
	}
}

func TestRPMDeadlineTooShort(t *testing.T) {
	t.Parallel()
	lim := New(Limits{RPM: 1, Concurrency: 1})
	release, err := lim.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	release()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := lim.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire whose token comes after the deadline: got %v, want DeadlineExceeded", err)
	}
	select {
	case lim.sem <- struct{}{}:
		<-lim.sem
	default:
		t.Fatal("concurrency slot leaked by a failed token wait")
	}
}

func TestUnlimited(t *testing.T) {
	t.Parallel()
	lim := New(Limits{})
	for range 1000 {
		release, err := lim.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
}

func BenchmarkAcquireUnlimited(b *testing.B) {
	lim := New(Limits{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		release, err := lim.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

func BenchmarkAcquireConcurrency(b *testing.B) {
	lim := New(Limits{Concurrency: 64})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := lim.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			release()
		}
	})
}
