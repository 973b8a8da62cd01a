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
	// MaxAttempts per image for retryable errors (default 5).
	MaxAttempts int
	// RetryBase is the first backoff delay (default 1s); it doubles each
	// attempt up to RetryMax (default 1 minute), with ±50% jitter.
	RetryBase, RetryMax time.Duration
	DryRun              bool
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
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Minute
	}
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

// forEachItem streams every input through the planner.
func forEachItem(ctx context.Context, cfg Config, sum *Summary, fn func(batch.Item) error) error {
	for _, in := range cfg.Inputs {
		rc, err := in.Open()
		if err != nil {
			return err // names the file already (os.Open: "open NAME: …")
		}
		err = planFile(ctx, cfg, in.Name, rc, sum, fn)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func planFile(ctx context.Context, cfg Config, name string, r io.Reader, sum *Summary, fn func(batch.Item) error) error {
	// input's errors start with the file name: add nothing to them.
	rd, err := input.Open(name, r, cfg.InputOptions)
	if err != nil {
		return err
	}
	if cfg.Planner.Template == nil && rd.Header() != nil && !hasPrompt(rd.Header()) {
		return fmt.Errorf("%s: the file has no prompt column (columns: %s); give --template to build prompts from its columns", name, strings.Join(rd.Header(), ", "))
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var re *input.RowError
		if errors.As(err, &re) {
			sum.Rows++
			sum.InvalidRows++
			fmt.Fprintln(cfg.Problems, re.Error())
			continue
		}
		if err != nil {
			return err
		}
		sum.Rows++
		var ferr error
		problems := cfg.Planner.Plan(row, func(it batch.Item) bool {
			if it.Index == 1 {
				for _, w := range it.Warnings {
					fmt.Fprintf(cfg.Problems, "%s:%d: warning: %s\n", it.SourceFile, it.SourceLine, w)
				}
			}
			ferr = fn(it)
			return ferr == nil
		})
		if ferr != nil {
			return ferr
		}
		if len(problems) > 0 {
			sum.InvalidRows++
			for _, p := range problems {
				fmt.Fprintln(cfg.Problems, p.Error())
			}
		}
	}
}

func hasPrompt(header []string) bool {
	for _, h := range header {
		if h == "prompt" {
			return true
		}
	}
	return false
}

// JobFor turns a planned item into a generation job.
func JobFor(it batch.Item) generate.Job {
	return generate.Job{
		Provider:    it.Model.Provider,
		RemoteModel: it.Model.RemoteID,
		Request: provider.Request{
			Prompt:         it.Prompt,
			NegativePrompt: it.NegativePrompt,
			Width:          it.Width,
			Height:         it.Height,
			AspectRatio:    it.AspectRatio,
			Quality:        it.Quality,
			Style:          it.Style,
			Format:         it.Format,
			Seed:           it.Seed,
			HasSeed:        true,
			Count:          1,
			Options:        it.Options,
		},
		Record: manifest.Record{
			SourceFile:     it.SourceFile,
			SourceLine:     it.SourceLine,
			Index:          it.Index,
			Status:         manifest.StatusPending,
			Prompt:         it.Prompt,
			NegativePrompt: it.NegativePrompt,
			Model:          it.Model.ID,
			Provider:       it.Model.Provider,
			Width:          it.Width,
			Height:         it.Height,
			AspectRatio:    it.AspectRatio,
			Quality:        it.Quality,
			Style:          it.Style,
			Format:         it.Format,
			Seed:           it.Seed,
			Cost:           it.Price,
			Vars:           it.Vars,
		},
	}
}

func plan(ctx context.Context, cfg Config, st *runstate.State, sum *Summary) error {
	cl, err := st.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Rollback() }()
	pending := 0
	err = forEachItem(ctx, cfg, sum, func(it batch.Item) error {
		job := JobFor(it)
		key := generate.Key(job)
		job.Record.ImageFile = "" // set once the name is claimed
		job.Record.Vars = batch.RecordVars(it.Vars)
		b, err := json.Marshal(job)
		if err != nil {
			return fmt.Errorf("encode job: %w", err)
		}
		if _, err := cl.Claim(ctx, key, it.Name, b, expand.NextCandidate); err != nil {
			return err
		}
		sum.Images++
		sum.PerModel[it.Model.ID]++
		sum.Estimated += it.Price
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
	job    generate.Job
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
		var after int64
		for {
			rows, err := st.Page(hard, after, 500)
			if err != nil {
				feedErr <- err
				return
			}
			if len(rows) == 0 {
				feedErr <- nil
				return
			}
			for _, row := range rows {
				after = row.Seq
				var job generate.Job
				if err := json.Unmarshal(row.Record, &job); err != nil {
					feedErr <- fmt.Errorf("state entry %s: %w", row.Key, err)
					return
				}
				job.Record.ImageFile = row.Name + generate.Extension(job.Request.Format)
				r := result{row: row, job: job, file: job.Record.ImageFile}
				if row.Status == manifest.StatusSucceeded && intact(root, row.File, row.SHA256) {
					r.cached = true
					results <- r
					continue
				}
				select {
				case work <- r:
				case <-soft.Done():
					feedErr <- nil
					return
				}
			}
		}
	}()
	go func() {
		// The feeder may still be sending cached results after workers
		// finish, so close results only when both are done.
		wg.Wait()
		close(results)
	}()

	cfg.Progress.Start(sum.Images)
	var firstErr error
	var outs []runstate.Outcome
	for r := range results {
		// Take whatever else has finished too, and record it all in one
		// transaction.
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
		rec := r.job.Record
		rec.Status = manifest.StatusFailed
		rec.Error = r.err.Error()
		rec.ErrorClass = string(provider.ClassOf(r.err))
		rec.Attempts = r.tries
		var pe *provider.Error
		if errors.As(r.err, &pe) && pe.RequestID != "" {
			rec.RequestID = pe.RequestID
		}
		rec.Cost = 0
		r.job.Record = rec
		b, _ := json.Marshal(r.job) // a Job always encodes
		progress.Done(r.file, false, rec.Error)
		return runstate.Outcome{Key: r.row.Key, Status: manifest.StatusFailed, Record: b}, true
	default:
		sum.Succeeded++
		rec := r.out.Record
		rec.ImageFile = r.file
		rec.Attempts = r.tries
		sum.Cost += rec.Cost
		r.job.Record = rec
		b, _ := json.Marshal(r.job)
		progress.Done(r.file, true, "")
		return runstate.Outcome{Key: r.row.Key, Status: manifest.StatusSucceeded, File: r.file, SHA256: r.out.SHA256, Record: b}, true
	}
}

// maxThrottled bounds how many provider throttling answers (a Retry-After)
// one image may receive: they do not use up its attempts, since the limit
// is the account's and not the request's fault, but a provider that never
// stops throttling must not keep a batch alive forever.
const maxThrottled = 50

// generateOne makes one image with retries and writes it. r.tries counts
// provider calls; only failures without a provider-given delay count
// against MaxAttempts.
func generateOne(soft, hard context.Context, cfg Config, root *os.Root, r result) result {
	attempt, throttled := 0, 0
	for {
		r.tries++
		out, err := cfg.Generator.Generate(hard, r.job)
		if err == nil {
			out.Record.ImageFile = r.file
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
		if provider.RetryAfterOf(err) > 0 && throttled < maxThrottled {
			// The generator has paused the provider for the requested time;
			// the next call waits for that pause in its rate budget.
			throttled++
		} else {
			attempt++
			if attempt >= cfg.MaxAttempts {
				return r
			}
			delay = backoff(cfg.RetryBase, cfg.RetryMax, attempt)
		}
		select {
		case <-time.After(delay):
		case <-soft.Done():
			return r
		}
	}
}

func backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base << (attempt - 1)
	if d > limit || d <= 0 {
		d = limit
	}
	// ±50% jitter so that workers that failed together do not retry together.
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
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
			var job generate.Job
			if err := json.Unmarshal(row.Record, &job); err != nil {
				return fmt.Errorf("state entry %s: %w", row.Key, err)
			}
			rec := job.Record
			rec.ImageFile = row.Name + generate.Extension(job.Request.Format)
			if rec.Status == "" {
				rec.Status = manifest.StatusPending
			}
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
