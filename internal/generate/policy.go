package generate

import (
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Policy is the one retry and throttling policy of image requests: the
// CLI's worker pool (package runner) follows it between its own calls, and
// the server follows it through the queue (it is River's retry policy for
// image jobs, and ImageWorker reads MaxThrottled). The README's "Retries"
// paragraph describes it.
//
// Two kinds of failure are told apart. A retryable error (a timeout, a 5xx,
// a dropped connection) uses up one of MaxAttempts and waits a growing
// delay. A provider's rate-limit answer with a Retry-After waits exactly
// that long and uses up no attempt, since the limit is the account's and
// not the request's fault; MaxThrottled bounds those waits so that a
// provider that never stops throttling cannot keep an image alive forever.
// Other errors (rejected content, an invalid request, refused credentials)
// are never retried.
type Policy struct {
	// MaxAttempts is how many calls one image may make while failing with
	// retryable errors.
	MaxAttempts int
	// RetryMin is the ceiling of the delay after the first failure; each
	// further failure doubles it, up to RetryMax. The delay is between half
	// the ceiling and all of it ("equal jitter"), so that many images
	// failing together do not retry together.
	RetryMin, RetryMax time.Duration
	// MaxThrottled bounds the Retry-After waits of one image.
	MaxThrottled int
}

// DefaultPolicy is the policy unless a setting changes it
// (`bulkgen run --retries --retry-delay`).
var DefaultPolicy = Policy{MaxAttempts: 6, RetryMin: 2 * time.Second, RetryMax: 2 * time.Minute, MaxThrottled: 30}

// withDefaults fills the zero fields from DefaultPolicy.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.RetryMin <= 0 {
		p.RetryMin = d.RetryMin
	}
	if p.RetryMax <= 0 {
		p.RetryMax = max(d.RetryMax, p.RetryMin)
	}
	if p.RetryMax < p.RetryMin {
		p.RetryMax = p.RetryMin
	}
	if p.MaxThrottled <= 0 {
		p.MaxThrottled = d.MaxThrottled
	}
	return p
}

// Normalized returns p with its zero fields set to DefaultPolicy's.
func (p Policy) Normalized() Policy { return p.withDefaults() }

// Delay returns the wait after the given number of retryable failures (1
// for the first), jitter included.
func (p Policy) Delay(failures int) time.Duration {
	ceiling := p.Ceiling(failures)
	half := ceiling / 2
	return half + rand.N(ceiling-half+1)
}

// Ceiling returns the largest delay Delay can return after the given
// number of failures: RetryMin×2^(failures-1) capped at RetryMax.
func (p Policy) Ceiling(failures int) time.Duration {
	p = p.withDefaults()
	d := p.RetryMin
	for i := 1; i < failures && d < p.RetryMax; i++ {
		d *= 2
	}
	return min(d, p.RetryMax)
}

// NextRetry implements river.ClientRetryPolicy. Counting the job's recorded
// errors rather than its attempt number keeps snoozes (Retry-After waits,
// which use no attempt) out of the backoff.
func (p Policy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.Delay(len(job.Errors) + 1))
}

// Interface guard.
var _ river.ClientRetryPolicy = Policy{}
