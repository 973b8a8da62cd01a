package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Reporter shows progress. The runner calls it from one goroutine.
type Reporter interface {
	// Start is called once with the number of images in the batch.
	Start(total int)
	// Done is called once per image made or tried: ok, or failed with a
	// message.
	Done(file string, ok bool, errMsg string)
	// Cached is called once per image an earlier run already made. It
	// counts as done, but not towards the rate: nothing was generated.
	Cached(file string)
	// Finish is called once at the end.
	Finish()
}

type nopReporter struct{}

func (nopReporter) Start(int)                 {}
func (nopReporter) Done(string, bool, string) {}
func (nopReporter) Cached(string)             {}
func (nopReporter) Finish()                   {}

// counter tracks done, failed, rate and ETA for the reporters.
type counter struct {
	total        int
	done, failed int
	cached       int // of done, the images an earlier run made
	start        time.Time
	lastDraw     time.Time
	now          func() time.Time
	every        time.Duration
}

func (c *counter) begin(total int) {
	c.total = total
	if c.now == nil {
		c.now = time.Now
	}
	c.start = c.now()
}

// rate is images generated (or tried) per second since the start; images
// found already made do not count, or a rerun would report thousands of
// images a second for finding files.
func (c *counter) rate() float64 {
	el := c.now().Sub(c.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(c.done-c.cached+c.failed) / el
}

// status is the progress as a person says it: "5/8 done (3 already made),
// 0 failed, 3 remaining, 2.5 images/s, about 1s left". The rate appears
// once an image has been generated, the time left while some remain.
func (c *counter) status() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d done", c.done, c.total)
	if c.cached > 0 {
		fmt.Fprintf(&b, " (%d already made)", c.cached)
	}
	rem := c.total - c.done - c.failed
	fmt.Fprintf(&b, ", %d failed, %d remaining", c.failed, rem)
	if c.done-c.cached+c.failed > 0 {
		fmt.Fprintf(&b, ", %.1f images/s", c.rate())
		if rem > 0 {
			fmt.Fprintf(&b, ", about %s left", c.eta())
		}
	}
	return b.String()
}

func (c *counter) eta() time.Duration {
	r := c.rate()
	rem := c.total - c.done - c.failed
	if r <= 0 || rem <= 0 {
		return 0
	}
	return time.Duration(float64(rem) / r * float64(time.Second)).Round(time.Second)
}

// due reports whether enough time has passed to draw again.
func (c *counter) due() bool {
	now := c.now()
	if now.Sub(c.lastDraw) < c.every {
		return false
	}
	c.lastDraw = now
	return true
}

// Bar draws a one-line progress bar on a terminal.
type Bar struct {
	W io.Writer
	c counter
}

// NewBar returns a terminal progress bar.
func NewBar(w io.Writer) *Bar { return &Bar{W: w, c: counter{every: 100 * time.Millisecond}} }

// Start implements Reporter.
func (b *Bar) Start(total int) { b.c.begin(total); b.draw() }

// Done implements Reporter.
func (b *Bar) Done(file string, ok bool, errMsg string) {
	if ok {
		b.c.done++
	} else {
		b.c.failed++
		fmt.Fprintf(b.W, "\r\033[K✗ %s: %s\n", file, errMsg)
	}
	if b.c.due() {
		b.draw()
	}
}

// Cached implements Reporter.
func (b *Bar) Cached(string) {
	b.c.done++
	b.c.cached++
	if b.c.due() {
		b.draw()
	}
}

// Finish implements Reporter.
func (b *Bar) Finish() { b.draw(); fmt.Fprintln(b.W) }

func (b *Bar) draw() {
	const width = 30
	c := &b.c
	fill := 0
	if c.total > 0 {
		fill = (c.done + c.failed) * width / c.total
	}
	bar := make([]rune, width)
	for i := range bar {
		bar[i] = '░'
		if i < fill {
			bar[i] = '█'
		}
	}
	fmt.Fprintf(b.W, "\r\033[K%s %s", string(bar), c.status())
}

// Lines prints a plain progress line every few seconds and one line per
// failure, for logs and pipes.
type Lines struct {
	W io.Writer
	c counter
}

// NewLines returns a line-by-line reporter printing at most every interval.
func NewLines(w io.Writer, interval time.Duration) *Lines {
	return &Lines{W: w, c: counter{every: interval}}
}

// Start implements Reporter.
func (l *Lines) Start(total int) {
	l.c.begin(total)
	l.c.lastDraw = l.c.now()
	fmt.Fprintf(l.W, "generating %d images\n", total)
}

// Done implements Reporter.
func (l *Lines) Done(file string, ok bool, errMsg string) {
	if ok {
		l.c.done++
	} else {
		l.c.failed++
		fmt.Fprintf(l.W, "failed %s: %s\n", file, errMsg)
	}
	if l.c.due() {
		l.line()
	}
}

// Cached implements Reporter.
func (l *Lines) Cached(string) {
	l.c.done++
	l.c.cached++
	if l.c.due() {
		l.line()
	}
}

// Finish implements Reporter.
func (l *Lines) Finish() { l.line() }

func (l *Lines) line() { fmt.Fprintf(l.W, "progress: %s\n", l.c.status()) }

// JSON writes one JSON object a line: an "image" event per image and a
// "progress" event at most every interval.
type JSON struct {
	W   io.Writer
	c   counter
	enc *json.Encoder
}

// NewJSON returns a machine-readable reporter.
func NewJSON(w io.Writer, interval time.Duration) *JSON {
	return &JSON{W: w, c: counter{every: interval}, enc: json.NewEncoder(w)}
}

// Event is one line of --json output.
type Event struct {
	Event     string  `json:"event"`
	File      string  `json:"file,omitempty"`
	Status    string  `json:"status,omitempty"`
	Error     string  `json:"error,omitempty"`
	Total     int     `json:"total"`
	Done      int     `json:"done"`
	Cached    int     `json:"cached"` // of done, made by an earlier run
	Failed    int     `json:"failed"`
	Remaining int     `json:"remaining"`
	Rate      float64 `json:"rate"`
	ETASecs   float64 `json:"eta_seconds"`
}

func (j *JSON) event(kind, file, status, msg string) {
	c := &j.c
	_ = j.enc.Encode(Event{Event: kind, File: file, Status: status, Error: msg, Total: c.total, Done: c.done, Cached: c.cached, Failed: c.failed,
		Remaining: c.total - c.done - c.failed, Rate: c.rate(), ETASecs: c.eta().Seconds()})
}

// Start implements Reporter.
func (j *JSON) Start(total int) { j.c.begin(total); j.event("start", "", "", "") }

// Done implements Reporter.
func (j *JSON) Done(file string, ok bool, errMsg string) {
	status := "succeeded"
	if ok {
		j.c.done++
	} else {
		j.c.failed++
		status = "failed"
	}
	j.event("image", file, status, errMsg)
	if j.c.due() {
		j.event("progress", "", "", "")
	}
}

// Cached implements Reporter: an "image" event with status "cached".
func (j *JSON) Cached(file string) {
	j.c.done++
	j.c.cached++
	j.event("image", file, "cached", "")
	if j.c.due() {
		j.event("progress", "", "", "")
	}
}

// Finish implements Reporter.
func (j *JSON) Finish() { j.event("progress", "", "", "") }
