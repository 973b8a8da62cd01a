package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// fakeClock advances one second per reading, so rates and ETAs are exact.
func fakeClock() func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestJSONReporter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	j := NewJSON(&buf, 0)
	j.c.now = fakeClock()
	j.Start(3)
	j.Done("a.png", true, "")
	j.Done("b.png", false, "boom")
	j.Finish()
	var events []Event
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	if len(events) < 4 || events[0].Event != "start" || events[0].Total != 3 {
		t.Fatalf("events %+v", events)
	}
	var failed *Event
	for i := range events {
		if events[i].Event == "image" && events[i].Status == "failed" {
			failed = &events[i]
		}
	}
	if failed == nil || failed.File != "b.png" || failed.Error != "boom" || failed.Failed != 1 || failed.Done != 1 {
		t.Errorf("failed event %+v", failed)
	}
	last := events[len(events)-1]
	if last.Event != "progress" || last.Remaining != 1 || last.Rate <= 0 || last.ETASecs <= 0 {
		t.Errorf("last event %+v", last)
	}
}

func TestLinesReporter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := NewLines(&buf, time.Hour)
	l.c.now = fakeClock()
	l.Start(2)
	l.Done("a.png", true, "")
	l.Done("b.png", false, "rejected by provider")
	l.Finish()
	out := buf.String()
	for _, want := range []string{"generating 2 images", "failed b.png: rejected by provider", "progress: 1/2 done, 1 failed, 0 remaining, "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "progress:") != 1 {
		t.Errorf("interval not honoured:\n%s", out)
	}
}

// TestProgressWording: what a person reads. A rerun that finds every image
// made reports no rate (it generated nothing; it used to say "4374.7
// img/s"), and a rate counts only the images generated in this run.
func TestProgressWording(t *testing.T) {
	t.Parallel()
	type step struct {
		file   string
		cached bool
		ok     bool
	}
	tests := []struct {
		name  string
		total int
		steps []step
		want  string
	}{
		{"all made before", 3, []step{{"a", true, true}, {"b", true, true}, {"c", true, true}},
			"progress: 3/3 done (3 already made), 0 failed, 0 remaining\n"},
		{"nothing yet", 4, nil, "progress: 0/4 done, 0 failed, 4 remaining\n"},
		// The fake clock ticks a second a reading: two at Start, one per
		// event, one for the rate and one more for the time left, so one
		// image made in 4s is 0.25/s, then 0.2/s for the 2 left: 10s.
		{"some made before", 4, []step{{"a", true, true}, {"b", false, true}},
			"progress: 2/4 done (1 already made), 0 failed, 2 remaining, 0.2 images/s, about 10s left\n"},
		{"failures count as tried", 2, []step{{"a", false, true}, {"b", false, false}},
			"progress: 1/2 done, 1 failed, 0 remaining, 0.5 images/s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			l := NewLines(&buf, time.Hour)
			l.c.now = fakeClock()
			l.Start(tt.total)
			for _, s := range tt.steps {
				if s.cached {
					l.Cached(s.file)
				} else {
					l.Done(s.file, s.ok, "boom")
				}
			}
			buf.Reset()
			l.Finish()
			if got := buf.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
