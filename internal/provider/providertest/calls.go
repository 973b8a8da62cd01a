package providertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"bulkgen/internal/provider"
)

// Checks that adapter tests share beyond the conformance suite.

// Generate calls p.Generate with a generous deadline, so that a test whose
// adapter hangs fails instead of blocking the whole package run.
func Generate(tb testing.TB, p provider.Provider, req provider.Request) (provider.Result, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p.Generate(ctx, req)
}

// Poller is the contract server of an asynchronous provider whose tasks
// the adapter polls and cancels remotely when the caller gives up (fal,
// Replicate).
type Poller interface {
	Controller
	// Polls reports how many status calls the server has received.
	Polls() int
	// Cancels reports how many cancel calls the server has received.
	Cancels() int
}

// CheckCancelMidPoll makes the next task Slow, cancels the caller's
// context once polling has started, and checks that Generate ends with an
// error wrapping context.Canceled after cancelling the task remotely once.
func CheckCancelMidPoll(t *testing.T, p provider.Provider, srv Poller, req provider.Request) {
	t.Helper()
	srv.Inject(Slow, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Generate(ctx, req)
		done <- err
	}()
	for srv.Polls() < 2 { // polling has started
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if srv.Cancels() != 1 {
		t.Errorf("cancels = %d, want 1", srv.Cancels())
	}
}

// CheckPollTimeout makes the next task Slow and checks that p, configured
// with a Timeout far shorter than that, gives up with a Retryable error
// wrapping provider.ErrTimeout after cancelling the task remotely once.
func CheckPollTimeout(t *testing.T, p provider.Provider, srv Poller, req provider.Request) {
	t.Helper()
	srv.Inject(Slow, 1)
	_, err := p.Generate(context.Background(), req)
	if !errors.Is(err, provider.ErrTimeout) || provider.ClassOf(err) != provider.Retryable {
		t.Fatalf("err = %v, want retryable wrapping provider.ErrTimeout", err)
	}
	if srv.Cancels() != 1 {
		t.Errorf("cancels = %d, want 1 (the timed-out task is cancelled)", srv.Cancels())
	}
}

// CheckDownloadError checks the error of a call whose output download was
// refused or failed: a *provider.Error that wraps want when want is set,
// and is Retryable with HTTP status status when status is not zero.
func CheckDownloadError(t *testing.T, err, want error, status int) {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *provider.Error", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("err = %v, want one wrapping %v", err, want)
	}
	if status != 0 && (pe.Status != status || pe.Class != provider.Retryable) {
		t.Errorf("err = %v, want retryable HTTP %d", err, status)
	}
}
