package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestBenchRateLimitSmall runs both modes of `bulkgen-bench ratelimit` on a
// small batch. A one-second server window (20 requests) makes the
// unlimited mode run into the server's limit with a few dozen images.
// Rates are not asserted: they depend on the machine. The headroom is
// wider than the command's default because on a loaded test machine (the
// suite runs packages in parallel) scheduling can delay a request by far
// more than the 20 ms that 2% of a one-second window is: at 25% headroom
// about 4 requests (a quarter of a second of delay) of slack remain.
func TestBenchRateLimitSmall(t *testing.T) {
	t.Parallel()
	b := rateBench{Images: 30, RPM: 1200, Window: time.Second, Latency: 10 * time.Millisecond,
		Concurrency: 16, Headroom: 0.25, Retries: 50, Progress: io.Discard}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results, err := b.run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	lim, free := results[0], results[1]
	if lim.Limit.RPM <= 0 || lim.Limit.RPM > float64(b.RPM) || free.Limit.RPM != 0 {
		t.Errorf("limits: configured %+v, unlimited %+v", lim.Limit, free.Limit)
	}
	if lim.Throttled != 0 {
		t.Errorf("with the limit configured the server sent %d 429s, want 0", lim.Throttled)
	}
	if lim.Calls != b.Images || lim.MaxAttempts != 1 {
		t.Errorf("with the limit: %d calls, most attempts %d; want %d and 1", lim.Calls, lim.MaxAttempts, b.Images)
	}
	for _, r := range results {
		if r.Succeeded != b.Images || r.Failed != 0 {
			t.Errorf("%s: %d succeeded, %d failed; want all %d", r.Mode, r.Succeeded, r.Failed, b.Images)
		}
	}
	// 20 requests fit in the server's window; the other 10 of the burst
	// are refused and retried after the pause.
	if free.Throttled == 0 || free.Calls != b.Images+free.Throttled {
		t.Errorf("without a limit: %d 429s, %d calls; want some 429s and calls = images + 429s", free.Throttled, free.Calls)
	}
}

func TestBenchRateLimitCommand(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	args := []string{"ratelimit", "--images", "4", "--rpm", "600", "--latency", "1ms", "--concurrency", "2"}
	// Exit status 1 means a target was missed; four images are too few for
	// the rate target to mean anything, so only the report is checked.
	var ec exitCode
	if err := cmdBench(context.Background(), args, nil, &out, &errb); err != nil && !errors.As(err, &ec) {
		t.Fatalf("bench ratelimit: %v\n%s\n%s", err, out.String(), errb.String())
	}
	if n := strings.Count(out.String(), " 4/4 "); n != 2 {
		t.Errorf("%d modes report 4/4 images, want 2:\n%s", n, out.String())
	}
	for _, want := range []string{"limit configured", "no limit", "zero 429s (met)", "every image completes (met)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := cmdBench(context.Background(), []string{"ratelimit", "--rpm", "0"}, nil, &out, &errb); err == nil {
		t.Error("--rpm 0 accepted")
	}
}
