package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/expand"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/provider/registry"
	"bulkgen/internal/runner"
)

const runUsage = `Usage: bulkgen run FILE... -o DIR [flags]

Generates an image for every prompt in FILE (TXT: one prompt a line; CSV
with a header row; JSONL; or a manifest.csv/manifest.jsonl of an earlier
run). "-" reads standard input. Running the same command again resumes:
images already in DIR with their recorded hash are not made again.

Flags:
`

// optFlag collects repeated --opt key=value flags.
type optFlag map[string]string

func (o optFlag) String() string { return "" }
func (o optFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	o[strings.TrimSpace(k)] = v
	return nil
}

type runFlags struct {
	out, model, size, aspect, quality, format, style, negative string
	n                                                          int
	seed                                                       string
	template, name, wildcards                                  string
	combinatorial, dryRun, jsonOut                             bool
	maxImages, concurrency, retries                            int
	retryDelay                                                 time.Duration
	delimiter, inputFormat, catalogFile                        string
	opts                                                       optFlag
}

func cmdRun(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	f := runFlags{opts: optFlag{}}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.out, "o", "", "output `folder` (required unless --dry-run)")
	fs.StringVar(&f.out, "output", "", "same as -o")
	fs.StringVar(&f.model, "model", "", "model id or alias for rows without a model column (default: preview when no provider is configured; see 'bulkgen models')")
	fs.StringVar(&f.size, "size", "", "image size `WxH` for rows without one")
	fs.StringVar(&f.aspect, "aspect", "", "aspect `ratio` W:H for rows without one (mapped to the model's size)")
	fs.StringVar(&f.quality, "quality", "", "quality for rows without one (model-specific: low, medium, high, …)")
	fs.StringVar(&f.format, "format", "", "file format: png, jpeg or webp (default png)")
	fs.StringVar(&f.style, "style", "", "style or preset for rows without one")
	fs.StringVar(&f.negative, "negative", "", "negative prompt for rows without one")
	fs.IntVar(&f.n, "n", 1, "images per row for rows without an n column")
	fs.StringVar(&f.seed, "seed", "", "base seed for rows without one (default: derived from each row, stable across runs)")
	fs.StringVar(&f.template, "template", "", "prompt `template` for every row, e.g. \"Studio photo of a {color} {product}\"")
	fs.StringVar(&f.name, "name", "", "file name `template`, e.g. \"{sku}-{n}\" (default \"{row}-{n}\"); fields {row} {n} {seed} {model} {date} and any column")
	fs.StringVar(&f.wildcards, "wildcards", "", "`folder` of NAME.txt files for __NAME__ wildcards")
	fs.BoolVar(&f.combinatorial, "combinatorial", false, "expand every combination of {a|b} variants instead of one per row")
	fs.IntVar(&f.maxImages, "max-images", 10000, "refuse a row whose variants would make more images than this")
	fs.BoolVar(&f.dryRun, "dry-run", false, "parse, expand, validate and estimate; print the plan; generate and write nothing")
	fs.IntVar(&f.concurrency, "concurrency", 0, "images in flight at once (default: the model's provider default)")
	fs.IntVar(&f.retries, "retries", generate.DefaultPolicy.MaxAttempts, "attempts per image for retryable errors (a provider's rate limit uses none)")
	fs.DurationVar(&f.retryDelay, "retry-delay", generate.DefaultPolicy.RetryMin, "first retry delay; it doubles each failure up to "+generate.DefaultPolicy.RetryMax.String()+", with jitter")
	fs.BoolVar(&f.jsonOut, "json", false, "print progress as JSON lines on stdout")
	fs.StringVar(&f.delimiter, "delimiter", "", "CSV delimiter (default: detected among , ; tab |); \"tab\" for a tab")
	fs.StringVar(&f.inputFormat, "input-format", "", "input format: txt, csv, jsonl or manifest (default: from the file name)")
	fs.StringVar(&f.catalogFile, "catalog", getenv("BULKGEN_CATALOG"), "model catalogue override `file` (env BULKGEN_CATALOG)")
	fs.Var(f.opts, "opt", "provider option `key=value` for every row (repeatable), e.g. --opt latency=300ms for the preview engine")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "bulkgen run: no input file given")
		fs.Usage()
		return errUsage
	}
	if f.out == "" && !f.dryRun {
		fmt.Fprintln(stderr, "bulkgen run: -o DIR is required (or use --dry-run)")
		return errUsage
	}

	cat, err := catalog.Open(f.catalogFile)
	if err != nil {
		return err
	}
	reg, err := registry.Build(registry.Config{Getenv: getenv, Catalog: cat})
	if err != nil {
		return err
	}
	if f.model == "" {
		if reg.HasHosted() {
			return fmt.Errorf("providers are configured (%s): choose a model with --model (see 'bulkgen models'), or --model preview to rehearse", strings.Join(reg.Configured(), ", "))
		}
		f.model = "preview"
	}

	defaults := batch.Defaults{
		Model: f.model, Size: f.size, AspectRatio: f.aspect, Quality: f.quality, Format: strings.ToLower(f.format),
		Style: f.style, NegativePrompt: f.negative, N: f.n, Options: map[string]string(f.opts),
	}
	if len(f.opts) == 0 {
		defaults.Options = nil
	}
	if f.seed != "" {
		s, err := strconv.ParseInt(f.seed, 10, 64)
		if err != nil || s < 0 || s > batch.MaxSeed {
			return fmt.Errorf("--seed %q: want a whole number from 0 to %d", f.seed, batch.MaxSeed)
		}
		defaults.Seed, defaults.HasSeed = s, true
	}
	if f.n < 1 {
		return fmt.Errorf("--n %d: want 1 or more", f.n)
	}
	var wc *expand.Wildcards
	if f.wildcards != "" {
		if wc, err = expand.NewWildcards(f.wildcards); err != nil {
			return fmt.Errorf("--wildcards: %w", err)
		}
	}
	planner, err := batch.NewPlanner(batch.Config{Catalog: cat, Wildcards: wc, Available: reg.Available, DryRun: f.dryRun,
		Template: f.template, NameTemplate: f.name, Defaults: defaults, Combinatorial: f.combinatorial, MaxPerRow: f.maxImages})
	if err != nil {
		return flagError(err)
	}
	inOpts := input.Options{Format: f.inputFormat}
	if f.delimiter != "" {
		d := f.delimiter
		if d == "tab" || d == `\t` {
			d = "\t"
		}
		r, size := utf8.DecodeRuneInString(d)
		if size != len(d) {
			return fmt.Errorf("--delimiter %q: want one character", f.delimiter)
		}
		inOpts.Delimiter = r
	}

	var inputs []runner.Input
	for _, name := range files {
		if name == "-" {
			inputs = append(inputs, runner.Input{Name: "stdin", Open: func() (io.ReadCloser, error) { return io.NopCloser(stdin), nil }})
			continue
		}
		inputs = append(inputs, runner.Input{Name: name, Open: func() (io.ReadCloser, error) { return os.Open(name) }})
	}

	concurrency := f.concurrency
	if concurrency == 0 {
		concurrency = reg.DefaultConcurrency(f.model)
	}
	var progress runner.Reporter
	switch {
	case f.jsonOut:
		progress = runner.NewJSON(stdout, time.Second)
	case isTerminal(stderr):
		progress = runner.NewBar(stderr)
	default:
		progress = runner.NewLines(stderr, 5*time.Second)
	}
	summaryOut := stdout
	if f.jsonOut {
		summaryOut = stderr
	}

	soft, hard, stop := interrupts(ctx, stderr, "interrupted: finishing the images in flight (press Ctrl-C again to abort them)")
	defer stop()
	cfg := runner.Config{
		Inputs:       inputs,
		InputOptions: inOpts,
		OutDir:       f.out,
		Planner:      planner,
		Generator:    &generate.Generator{Providers: reg, Limits: reg.Limits()},
		Concurrency:  concurrency,
		Policy:       generate.Policy{MaxAttempts: f.retries, RetryMin: f.retryDelay},
		DryRun:       f.dryRun,
		Command:      strings.Join(append([]string{"bulkgen", "run"}, args...), " "),
		Progress:     progress,
		Problems:     stderr,
		Out:          stdout,
	}
	sum, err := runner.Run(soft, hard, cfg)
	if err != nil {
		return err
	}
	printSummary(summaryOut, f, sum, args)
	if !sum.OK() {
		return exitCode(1)
	}
	return nil
}

func printSummary(w io.Writer, f runFlags, sum runner.Summary, args []string) {
	if f.dryRun {
		if sum.InvalidRows > 0 {
			fmt.Fprintf(w, "%d invalid rows would be skipped.\n", sum.InvalidRows)
		}
		return
	}
	fmt.Fprintf(w, "%d images: %d succeeded (%d already done), %d failed, %d pending; %d rows skipped as invalid; cost %s\n",
		sum.Images, sum.Succeeded, sum.Cached, sum.Failed, sum.Pending, sum.InvalidRows, runner.FormatCredits(sum.Cost))
	fmt.Fprintf(w, "images and manifest.csv / manifest.jsonl are in %s\n", f.out)
	if sum.Interrupted || sum.Pending > 0 || sum.Failed > 0 {
		fmt.Fprintf(w, "to resume (failed and unfinished images are retried), run the same command again:\n  bulkgen run %s\n", shellQuote(args))
	}
}

// parseInterspersed lets flags come before, between and after file names,
// as users type them ("bulkgen run prompts.csv -o out/").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runFlagOf names the `bulkgen run` flag of a batch setting that
// batch.NewPlanner refused by its API field name.
var runFlagOf = map[string]string{
	"template": "--template", "name_template": "--name", "max_images": "--max-images",
	"defaults.n": "--n", "defaults.seed": "--seed",
}

// flagError says which flag a refused setting came from.
func flagError(err error) error {
	be, ok := batch.AsError(err)
	if !ok || runFlagOf[be.Field] == "" {
		return err
	}
	return fmt.Errorf("%s: %s", runFlagOf[be.Field], strings.TrimPrefix(be.Message, be.Field+": "))
}
