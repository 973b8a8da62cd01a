package provider

import (
	"errors"
	"fmt"
	"time"
)

// Class says what the pipeline should do about a failed call.
type Class string

const (
	// Retryable: timeouts, connection errors, 5xx, 429. Retry with backoff,
	// honouring RetryAfter when the provider gave one.
	Retryable Class = "retryable"
	// Rejected: the provider's content policy refused the prompt or output.
	// Shown to the user, refunded, never retried unchanged.
	Rejected Class = "rejected"
	// Invalid: our request was wrong (a bug or an unsupported combination
	// that validation missed). Logged loudly, not retried.
	Invalid Class = "invalid"
	// Auth: key missing, wrong or revoked, or the account is out of credit.
	// The provider is paused and the user told; not retried.
	Auth Class = "auth"
)

// Error is the only error type adapters return for a failed call.
type Error struct {
	Class Class
	// Provider is the adapter name, for messages.
	Provider string
	// Status is the HTTP status, when there was one.
	Status int
	// Code is the provider's own error code or type ("moderation_blocked").
	Code string
	// Message is the provider's own message, kept verbatim (keys masked).
	Message string
	// RetryAfter is the provider's requested delay; zero if none was given.
	RetryAfter time.Duration
	// RequestID is the provider's identifier for the failed call.
	RequestID string
	// Err is an underlying cause (network error, decode error), if any.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	s := string(e.Class)
	if e.Provider != "" {
		s = e.Provider + ": " + s
	}
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.Status)
		if e.Code != "" {
			s += " " + e.Code
		}
		s += ")"
	} else if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if msg != "" {
		s += ": " + msg
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err: the Class of an *Error in its chain,
// Retryable for context deadline errors (the call took too long), and
// Invalid for anything else, so that unknown failures are loud rather than
// retried forever.
func ClassOf(err error) Class {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	if errors.Is(err, errTimeout) {
		return Retryable
	}
	return Invalid
}

// RetryAfterOf returns the delay requested by the provider, or zero.
func RetryAfterOf(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}

var errTimeout = errors.New("provider call timed out")

// ErrTimeout is wrapped by adapters when their own overall deadline (a
// polling limit) passes; it classifies as Retryable.
var ErrTimeout = errTimeout

// Errorf builds an *Error with a formatted message.
func Errorf(class Class, provider string, format string, args ...any) *Error {
	return &Error{Class: class, Provider: provider, Message: fmt.Sprintf(format, args...)}
}

// ClassForStatus is the default mapping of an HTTP status to a class, for
// adapters whose provider has no more specific signal.
func ClassForStatus(status int) Class {
	switch {
	case status == 401 || status == 402 || status == 403:
		return Auth
	case status == 408 || status == 409 || status == 425 || status == 429 || status >= 500:
		return Retryable
	default:
		return Invalid
	}
}
