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
	for _, want := range []string{"generating 2 images", "failed b.png: rejected by provider", "progress: 1/2 done, 1 failed, 0 remaining"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "progress:") != 1 {
		t.Errorf("interval not honoured:\n%s", out)
	}
}
