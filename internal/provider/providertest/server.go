package providertest

// The scaffolding every contract server (package <name>test) needs besides
// its wire format: a queue of injected answers, a sliding-window request
// limit, held answers that end when the client or the server goes away,
// and small reply helpers. Each server keeps its own error envelopes and
// exported API; only the mechanics live here.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Queue is a first-in first-out list of injected answers, safe for
// concurrent use. The zero value is an empty queue. T is whatever a server
// injects: a Fault, or its own struct of a fault and a canned reply.
type Queue[T any] struct {
	mu    sync.Mutex
	items []T
}

// Push appends v n times.
func (q *Queue[T]) Push(v T, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.items = append(q.items, v)
	}
}

// Next removes and returns the oldest item; ok is false (and v the zero
// value) when the queue is empty.
func (q *Queue[T]) Next() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return v, false
	}
	v = q.items[0]
	q.items = q.items[1:]
	return v, true
}

// Window is a requests-per-window limit over a sliding window, the way
// providers enforce RPM: a call is admitted while fewer than Limit calls
// were admitted in the last Span. Refused calls do not use up the budget.
// Safe for concurrent use.
type Window struct {
	limit int
	span  time.Duration

	mu       sync.Mutex
	admitted []time.Time
	refused  int
}

// NewWindow returns a limit of limit calls per span; a limit of zero or
// less admits every call (and still counts them, for headers).
func NewWindow(limit int, span time.Duration) *Window {
	return &Window{limit: limit, span: span}
}

// Admit decides on a call made at now. It reports whether the call is
// admitted, how many calls the window holds afterwards, and how long until
// the oldest of the calls admitted before this one leaves the window (zero
// when there were none).
func (w *Window) Admit(now time.Time) (ok bool, used int, reset time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cut := 0
	for cut < len(w.admitted) && now.Sub(w.admitted[cut]) >= w.span {
		cut++
	}
	w.admitted = w.admitted[cut:]
	if len(w.admitted) > 0 {
		reset = w.span - now.Sub(w.admitted[0])
	}
	if w.limit > 0 && len(w.admitted) >= w.limit {
		w.refused++
		return false, len(w.admitted), reset
	}
	w.admitted = append(w.admitted, now)
	return true, len(w.admitted), reset
}

// Refused reports how many calls Admit has refused.
func (w *Window) Refused() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

// Sleep holds a handler for d. It returns false when the client went away
// or done (the server's shutdown signal) closed first: the handler should
// then return without answering. A d of zero or less returns true at once.
func Sleep(r *http.Request, done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-done:
		return false
	}
}

// WriteJSON answers status with v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteRaw answers status with body verbatim. Headers in h are set first;
// contentType is used when h names none (empty: no Content-Type is added).
func WriteRaw(w http.ResponseWriter, status int, h http.Header, body, contentType string) {
	for k, v := range h {
		w.Header()[k] = v
	}
	if contentType != "" && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// RandomHex returns n random bytes in hex, for request and task ids.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// UUID returns a random (version 4) UUID in its usual text form.
func UUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
