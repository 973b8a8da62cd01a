package providertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	t.Parallel()
	var q Queue[Fault]
	if v, ok := q.Next(); ok || v != None {
		t.Fatalf("empty queue: Next = %v, %v; want none, false", v, ok)
	}
	q.Push(RateLimit, 2)
	q.Push(Slow, 1)
	q.Push(BadAuth, 0)
	for i, want := range []Fault{RateLimit, RateLimit, Slow} {
		if v, ok := q.Next(); !ok || v != want {
			t.Fatalf("Next #%d = %v, %v; want %v, true", i, v, ok, want)
		}
	}
	if _, ok := q.Next(); ok {
		t.Fatal("queue not empty after taking every item")
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	tests := []struct {
		name      string
		at        time.Duration // after start
		wantOK    bool
		wantUsed  int
		wantReset time.Duration
	}{
		{"first", 0, true, 1, 0},
		{"second", 10 * time.Second, true, 2, 50 * time.Second},
		{"over the limit", 20 * time.Second, false, 2, 40 * time.Second},
		{"first left the window", 60 * time.Second, true, 2, 10 * time.Second},
		{"over again", 61 * time.Second, false, 2, 9 * time.Second},
	}
	w := NewWindow(2, time.Minute)
	for _, tt := range tests { // in order: each step builds on the last
		ok, used, reset := w.Admit(start.Add(tt.at))
		if ok != tt.wantOK || used != tt.wantUsed || reset != tt.wantReset {
			t.Errorf("%s: Admit = %v, %d, %v; want %v, %d, %v", tt.name, ok, used, reset, tt.wantOK, tt.wantUsed, tt.wantReset)
		}
	}
	if got := w.Refused(); got != 2 {
		t.Errorf("Refused = %d, want 2", got)
	}
}

func TestWindowUnlimited(t *testing.T) {
	t.Parallel()
	w := NewWindow(0, time.Minute)
	now := time.Unix(1000, 0)
	for i := range 5 {
		if ok, used, _ := w.Admit(now); !ok || used != i+1 {
			t.Fatalf("call %d: Admit = %v, %d; want true, %d", i, ok, used, i+1)
		}
	}
	if w.Refused() != 0 {
		t.Fatal("an unlimited window refused a call")
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	open := make(chan struct{})
	closed := make(chan struct{})
	close(closed)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	tests := []struct {
		name string
		r    *http.Request
		done chan struct{}
		d    time.Duration
		want bool
	}{
		{"no wait", req, closed, 0, true},
		{"elapsed", req, open, time.Millisecond, true},
		{"server closing", req, closed, time.Hour, false},
		{"client gone", req.WithContext(canceled), open, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Sleep(tt.r, tt.done, tt.d); got != tt.want {
				t.Errorf("Sleep = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWriteRaw(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ctype, wantType string
		h                     http.Header
	}{
		{"default type", "application/json", "application/json", nil},
		{"header wins", "application/json", "text/plain", http.Header{"Content-Type": {"text/plain"}}},
		{"no default", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			WriteRaw(rec, 429, tt.h, `{"x":1}`, tt.ctype)
			if rec.Code != 429 || rec.Body.String() != `{"x":1}` {
				t.Errorf("got %d %q", rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	if got := RandomHex(8); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(got) {
		t.Errorf("RandomHex(8) = %q", got)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if a, b := UUID(), UUID(); !uuid.MatchString(a) || a == b {
		t.Errorf("UUID() = %q, %q", a, b)
	}
}
