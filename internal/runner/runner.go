// Package runner is `bulkgen run`: it plans a batch from input files into
// the resume state in the output folder, generates every image that is not
// already there with a pool of workers, writes each file atomically, and
// writes manifest.csv and manifest.jsonl. Stopping it at any point and
// running the same command again picks up where it stopped.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/expand"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/manifest"
	"bulkgen/internal/provider"
	"bulkgen/internal/runstate"
)

// Input is one input file. Open is called once, during planning; its error
// is reported as it is, so it should name the file, as os.Open's does.
type Input struct {
	Name string
	Open func() (io.ReadCloser, error)
}

// Config is one run.
type Config struct {
	Inputs       []Input
	InputOptions input.Options
	OutDir       string
	Planner      *batch.Planner
	Generator    *generate.Generator
	// Concurrency is the number of images in flight (default 4).
	Concurrency int
	// Policy is the retry policy (zero fields: generate.DefaultPolicy's).
	Policy generate.Policy
	DryRun bool
	// Approve, when set, is asked once the batch is planned and before any
	// image is made, with the plan (its estimate, its outliers); an error
	// stops the run there, the plan kept for the next one.
	Approve func(Summary, batch.Summary) error
	// DryRunShow is how many expanded items a dry run prints (default 10).
	DryRunShow int
	// Command is recorded in the state for the user's reference.
	Command  string
	Progress Reporter
	// Problems receives one line per invalid row ("file:line: message").
	Problems io.Writer
	// Out receives the plan (dry run) and the summary.
	Out io.Writer
}

// Summary is the outcome of a run.
type Summary struct {
	Rows        int            `json:"rows"`
	InvalidRows int            `json:"invalid_rows"`
	Images      int            `json:"images"`
	Succeeded   int            `json:"succeeded"`
	Failed      int            `json:"failed"`
	Cached      int            `json:"cached"`
	Pending     int            `json:"pending"`
	Cost        int64          `json:"cost"`
	Estimated   int64          `json:"estimated_cost"`
	PerModel    map[string]int `json:"per_model"`
	Interrupted bool           `json:"interrupted"`
}

// OK reports whether every row produced its images.
func (s Summary) OK() bool {
	return s.InvalidRows == 0 && s.Failed == 0 && s.Pending == 0 && !s.Interrupted
}

// Run executes the batch. soft is cancelled on the first interrupt (stop
// taking new work, let in-flight images finish); hard on the second (abort
// in-flight images). Run returns the summary and an error only for failures
// of the run itself (unreadable input, unwritable folder), not for images
// that failed.
func Run(soft, hard context.Context, cfg Config) (Summary, error) {
	cfg.defaults()
	if cfg.DryRun {
		return dryRun(soft, cfg)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("create output folder: %w", err)
	}
	unlock, err := lock(cfg.OutDir)
	if err != nil {
		return Summary{}, err
	}
	defer unlock()
	st, err := runstate.Open(hard, cfg.OutDir, cfg.Command)
	if err != nil {
		return Summary{}, err
	}
	defer st.Close()
	root, err := os.OpenRoot(cfg.OutDir)
	if err != nil {
		return Summary{}, fmt.Errorf("open output folder: %w", err)
	}
	defer root.Close()

	sum := Summary{PerModel: map[string]int{}}
	if err := plan(soft, cfg, st, &sum); err != nil {
		return sum, err
	}
	if soft.Err() != nil {
		sum.Interrupted = true
		return sum, writeManifests(hard, root, st, &sum)
	}
	if cfg.Approve != nil {
		if err := cfg.Approve(sum, cfg.Planner.Summary()); err != nil {
			return sum, err
		}
	}
	err = execute(soft, hard, cfg, st, root, &sum)
	if soft.Err() != nil {
		sum.Interrupted = true
	}
	if merr := writeManifests(context.WithoutCancel(hard), root, st, &sum); merr != nil && err == nil {
		err = merr
	}
	return sum, err
}

func (cfg *Config) defaults() {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	cfg.Policy = cfg.Policy.Normalized()
	if cfg.DryRunShow <= 0 {
		cfg.DryRunShow = 10
	}
	if cfg.Progress == nil {
		cfg.Progress = nopReporter{}
	}
	if cfg.Problems == nil {
		cfg.Problems = io.Discard
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
}

// forEachRequest streams every input through the planner (the planning
// loop of package batch), printing each problem as it is found and each
// row's catalogue warnings once.
func forEachRequest(ctx context.Context, cfg Config, fn func(generate.Request) error) error {
	onProblem := func(p batch.Problem) { fmt.Fprintln(cfg.Problems, p.Error()) }
	for _, in := range cfg.Inputs {
		rc, err := in.Open()
		if err != nil {
			return err
		}
		rd, err := input.Open(in.Name, rc, cfg.InputOptions)
		if err != nil {
			rc.Close()
			return err // input's errors start with the file name
		}
		err = cfg.Planner.PlanRows(ctx, rd, onProblem, func(req generate.Request) error {
			if req.Index == 1 {
				for _, w := range req.Warnings {
					fmt.Fprintf(cfg.Problems, "%s:%d: warning: %s\n", req.SourceFile, req.SourceLine, w)
				}
			}
			return fn(req)
		})
		rc.Close()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil // interrupted: what was planned so far runs
		}
		if err != nil {
			return nameFile(in.Name, err)
		}
	}
	return nil
}

// nameFile puts the file name in front of err, unless it is there already:
// the input reader's errors (a read error, a runaway quoted field) start
// with it, the planner's own ("the file has no prompt column") do not.
func nameFile(name string, err error) error {
	if strings.HasPrefix(err.Error(), name+":") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// entry is what the resume state keeps of one image: its request and,
// once it ran, what happened.
type entry struct {
	Request generate.Request `json:"request"`
	Outcome *outcome         `json:"outcome,omitempty"`
}

// outcome is the result of one image's run.
type outcome struct {
	Status     string     `json:"status"`
	Error      string     `json:"error,omitempty"`
	ErrorClass string     `json:"error_class,omitempty"`
	Attempts   int        `json:"attempts,omitempty"`
	Width      int        `json:"width,omitempty"`
	Height     int        `json:"height,omitempty"`
	Format     string     `json:"format,omitempty"`
	Seed       int64      `json:"seed"`
	Bytes      int64      `json:"bytes,omitempty"`
	SHA256     string     `json:"sha256,omitempty"`
	RequestID  string     `json:"request_id,omitempty"`
	LatencyMS  int64      `json:"latency_ms,omitempty"`
	Preview    bool       `json:"preview,omitempty"`
	Cost       int64      `json:"cost"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// record is e's manifest line for the image file named file.
func (e entry) record(file string) manifest.Record {
	r := e.Request
	rec := manifest.Record{
		SourceFile: r.SourceFile, SourceLine: r.SourceLine, Index: r.Index, ImageFile: file,
		Status: manifest.StatusPending, Prompt: r.Prompt, NegativePrompt: r.NegativePrompt,
		Model: r.Model, Provider: r.Provider, Width: r.Width, Height: r.Height, AspectRatio: r.AspectRatio,
		Quality: r.Quality, Style: r.Style, Format: r.Format, Seed: r.Seed, Cost: r.Price, Vars: r.Vars,
	}
	if o := e.Outcome; o != nil {
		rec.Status, rec.Error, rec.ErrorClass, rec.Attempts = o.Status, o.Error, o.ErrorClass, o.Attempts
		rec.RequestID, rec.Cost, rec.StartedAt, rec.FinishedAt = o.RequestID, o.Cost, o.StartedAt, o.FinishedAt
		if o.Status == manifest.StatusSucceeded {
			rec.Width, rec.Height, rec.Format, rec.Seed = o.Width, o.Height, o.Format, o.Seed
			rec.Bytes, rec.SHA256, rec.LatencyMS, rec.Preview = o.Bytes, o.SHA256, o.LatencyMS, o.Preview
		}
	}
	return rec
}

func plan(ctx context.Context, cfg Config, st *runstate.State, sum *Summary) error {
	cl, err := st.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Rollback() }()
	pending := 0
	err = forEachRequest(ctx, cfg, func(req generate.Request) error {
		b, err := json.Marshal(entry{Request: req})
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		if _, err := cl.Claim(ctx, req.Key(), req.Name, b, expand.NextCandidate); err != nil {
			return err
		}
		pending++
		if pending >= 2000 {
			if err := cl.Commit(); err != nil {
				return fmt.Errorf("save plan: %w", err)
			}
			if cl, err = st.Begin(ctx); err != nil {
				return err
			}
			pending = 0
		}
		return nil
	})
	p := cfg.Planner.Summary()
	sum.Rows, sum.InvalidRows, sum.Images, sum.Estimated = p.Rows, p.InvalidRows, p.Images, p.Cost
	for m, mp := range p.PerModel {
		sum.PerModel[m] = mp.Images
	}
	if err != nil {
		return err
	}
	if err := cl.Commit(); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

type result struct {
	row    runstate.Row
	entry  entry
	out    generate.Output
	file   string
	err    error
	tries  int
	cached bool
}

func execute(soft, hard context.Context, cfg Config, st *runstate.State, root *os.Root, sum *Summary) error {
	work := make(chan result)
	// Buffered so a worker hands its result over and takes the next image
	// at once, while the collector records finished images in groups.
	results := make(chan result, 2*cfg.Concurrency)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				results <- generateOne(soft, hard, cfg, root, w)
			}
		}()
	}
	feedErr := make(chan error, 1)
	go func() {
		defer close(work)
		feedErr <- feed(soft, hard, st, root, work, results)
	}()
	go func() {
		// The feeder may still be sending cached results after workers
		// finish, so close results only when both are done.
		wg.Wait()
		close(results)
	}()
	cfg.Progress.Start(sum.Images)
	firstErr := collect(soft, hard, cfg, st, results, sum)
	if err := <-feedErr; err != nil && firstErr == nil {
		firstErr = err
	}
	done := sum.Succeeded + sum.Failed
	if p := sum.Images - done; p > sum.Pending {
		sum.Pending = p
	}
	cfg.Progress.Finish()
	return firstErr
}

// feed pages through the run's state in order: an image already made
// (its file there with the recorded hash) goes straight to results, every
// other one to the workers, until the state is read or soft is done.
func feed(soft, hard context.Context, st *runstate.State, root *os.Root, work, results chan<- result) error {
	var after int64
	for {
		rows, err := st.Page(hard, after, 500)
		if err != nil || len(rows) == 0 {
			return err
		}
		for _, row := range rows {
			after = row.Seq
			var e entry
			if err := json.Unmarshal(row.Record, &e); err != nil {
				return fmt.Errorf("state entry %s: %w", row.Key, err)
			}
			r := result{row: row, entry: e, file: row.Name + generate.Extension(e.Request.Format)}
			if row.Status == manifest.StatusSucceeded && intact(root, row.File, row.SHA256) {
				r.cached = true
				results <- r
				continue
			}
			select {
			case work <- r:
			case <-soft.Done():
				return nil
			}
		}
	}
}

// collect counts the results as they come and records them in the state,
// whatever else has finished by then in the same transaction. It returns
// the first error recording them.
func collect(soft, hard context.Context, cfg Config, st *runstate.State, results <-chan result, sum *Summary) error {
	var firstErr error
	var outs []runstate.Outcome
	for r := range results {
		group := []result{r}
	drain:
		for len(group) < 256 {
			select {
			case more, ok := <-results:
				if !ok {
					break drain
				}
				group = append(group, more)
			default:
				break drain
			}
		}
		outs = outs[:0]
		for _, r := range group {
			if o, ok := account(soft, r, sum, cfg.Progress); ok {
				outs = append(outs, o)
			}
		}
		if len(outs) > 0 {
			if err := st.Finish(context.WithoutCancel(hard), outs...); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// account counts one result and returns the state update it needs, if any.
func account(soft context.Context, r result, sum *Summary, progress Reporter) (runstate.Outcome, bool) {
	switch {
	case r.cached:
		sum.Cached++
		sum.Succeeded++
		progress.Cached(r.file)
		return runstate.Outcome{}, false
	case r.err != nil && (errors.Is(r.err, context.Canceled) || soft.Err() != nil && provider.ClassOf(r.err) == provider.Retryable):
		// Interrupted before it could finish: stays pending for the next run.
		sum.Pending++
		return runstate.Outcome{}, false
	case r.err != nil:
		sum.Failed++
		o := &outcome{Status: manifest.StatusFailed, Error: r.err.Error(), ErrorClass: string(provider.ClassOf(r.err)),
			Attempts: r.tries, Seed: r.entry.Request.Seed}
		var pe *provider.Error
		if errors.As(r.err, &pe) {
			o.RequestID = pe.RequestID
		}
		r.entry.Outcome = o
		b, _ := json.Marshal(r.entry) // an entry always encodes
		progress.Done(r.file, false, o.Error)
		return runstate.Outcome{Key: r.row.Key, Status: manifest.StatusFailed, Record: b}, true
	default:
		sum.Succeeded++
		out := r.out
		started, finished := out.StartedAt, out.FinishedAt
		r.entry.Outcome = &outcome{Status: manifest.StatusSucceeded, Attempts: r.tries, Width: out.Width, Height: out.Height,
			Format: out.Format, Seed: out.Seed, Bytes: int64(len(out.Data)), SHA256: out.SHA256, RequestID: out.RequestID,
			LatencyMS: out.Latency.Milliseconds(), Preview: out.Preview, Cost: r.entry.Request.Price,
			StartedAt: &started, FinishedAt: &finished}
		sum.Cost += r.entry.Request.Price
		b, _ := json.Marshal(r.entry)
		progress.Done(r.file, true, "")
		return runstate.Outcome{Key: r.row.Key, Status: manifest.StatusSucceeded, File: r.file, SHA256: out.SHA256, Record: b}, true
	}
}

// generateOne makes one image, retrying as cfg.Policy says, and writes it.
// r.tries counts provider calls; only failures without a provider-given
// delay count against the policy's MaxAttempts.
func generateOne(soft, hard context.Context, cfg Config, root *os.Root, r result) result {
	failures, throttled := 0, 0
	for {
		r.tries++
		out, err := cfg.Generator.Generate(hard, r.entry.Request)
		if err == nil {
			if werr := writeFile(root, r.file, out.Data); werr != nil {
				r.err = werr
				return r
			}
			r.out = out
			r.err = nil
			return r
		}
		r.err = err
		if provider.ClassOf(err) != provider.Retryable || soft.Err() != nil {
			return r
		}
		delay := time.Duration(0)
		if provider.RetryAfterOf(err) > 0 && throttled < cfg.Policy.MaxThrottled {
			// The generator has paused the provider for the requested time;
			// the next call waits for that pause in its rate budget.
			throttled++
		} else {
			failures++
			if failures >= cfg.Policy.MaxAttempts {
				return r
			}
			delay = cfg.Policy.Delay(failures)
		}
		select {
		case <-time.After(delay):
		case <-soft.Done():
			return r
		}
	}
}

// writeFile writes data to name inside root atomically: a temporary file in
// the same folder, renamed over the final name, so a reader (or a crash)
// never sees half a file under the final name. It does not fsync: after a
// power loss the resume check hashes every recorded file and remakes any
// that did not reach the disk, and an fsync per image would hold a worker
// slot for the disk's flush time and cut throughput.
func writeFile(root *os.Root, name string, data []byte) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create folder for %s: %w", name, err)
		}
	}
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+fmt.Sprintf(".%d.tmp", rand.Int64()))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// writeManifests writes manifest.csv and manifest.jsonl from the state, in
// input order, each through a temporary file so a reader never sees half.
func writeManifests(ctx context.Context, root *os.Root, st *runstate.State, sum *Summary) error {
	csvTmp, err := root.Create(".manifest.csv.tmp")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	defer csvTmp.Close()
	jsonTmp, err := root.Create(".manifest.jsonl.tmp")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	defer jsonTmp.Close()
	cw, err := manifest.NewCSVWriter(csvTmp)
	if err != nil {
		return err
	}
	jw := manifest.NewJSONLWriter(jsonTmp)
	var after int64
	for {
		rows, err := st.Page(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		for _, row := range rows {
			after = row.Seq
			var e entry
			if err := json.Unmarshal(row.Record, &e); err != nil {
				return fmt.Errorf("state entry %s: %w", row.Key, err)
			}
			rec := e.record(row.Name + generate.Extension(e.Request.Format))
			if err := cw.Write(&rec); err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
			if err := jw.Write(&rec); err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
		}
	}
	if err := cw.Flush(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	for _, f := range []*os.File{csvTmp, jsonTmp} {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
	}
	if err := root.Rename(".manifest.csv.tmp", "manifest.csv"); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := root.Rename(".manifest.jsonl.tmp", "manifest.jsonl"); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}
