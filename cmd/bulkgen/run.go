package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/config"
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

func cmdRun(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := config.Bind(fs, config.RunCmd)
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		config.PrintOptions(stderr, config.RunCmd)
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	cfg, err := cf.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "bulkgen run: %v\n", err)
		return exitCode(2)
	}
	f := cfg.Run
	switch {
	case len(files) == 0:
		fmt.Fprintln(stderr, "bulkgen run: no input file given")
		fs.Usage()
		return errUsage
	case f.Out == "" && !f.DryRun:
		fmt.Fprintln(stderr, "bulkgen run: -o DIR is required (or use --dry-run)")
		return errUsage
	}
	cat, err := catalog.Open(cfg.Catalog)
	if err != nil {
		return err
	}
	reg, err := registry.Build(registry.Config{Getenv: getenv, Catalog: cat})
	if err != nil {
		return err
	}
	planner, err := runPlanner(f, cat, reg)
	if err != nil {
		// A setting no row could use: said once, before anything is
		// written, as a usage error.
		fmt.Fprintf(stderr, "bulkgen run: %v\n", err)
		return exitCode(2)
	}

	var inputs []runner.Input
	for _, name := range files {
		if name == "-" {
			inputs = append(inputs, runner.Input{Name: "stdin", Open: func() (io.ReadCloser, error) { return io.NopCloser(stdin), nil }})
			continue
		}
		inputs = append(inputs, runner.Input{Name: name, Open: func() (io.ReadCloser, error) { return os.Open(name) }})
	}
	concurrency := f.Concurrency
	if concurrency == 0 {
		concurrency = reg.DefaultConcurrency(planner.Config().Defaults.Model)
	}
	var progress runner.Reporter
	switch {
	case f.JSON:
		progress = runner.NewJSON(stdout, time.Second)
	case isTerminal(stderr):
		progress = runner.NewBar(stderr)
	default:
		progress = runner.NewLines(stderr, 5*time.Second)
	}
	summaryOut := stdout
	if f.JSON {
		summaryOut = stderr
	}

	soft, hard, stop := interrupts(ctx, stderr, "interrupted: finishing the images in flight (press Ctrl-C again to abort them)")
	defer stop()
	rcfg := runner.Config{
		Inputs:       inputs,
		InputOptions: input.Options{Format: f.InputFormat, Delimiter: f.Delimiter},
		OutDir:       f.Out,
		Planner:      planner,
		Generator:    &generate.Generator{Providers: reg, Limits: reg.Limits()},
		Concurrency:  concurrency,
		Policy:       generate.Policy{MaxAttempts: f.Retries, RetryMin: f.RetryDelay},
		DryRun:       f.DryRun,
		Command:      "bulkgen run " + shellQuote(args),
		Progress:     progress,
		Problems:     stderr,
		Out:          stdout,
		Approve:      approver(f, stdin, stderr),
	}
	sum, err := runner.Run(soft, hard, rcfg)
	if errors.Is(err, errNotApproved) {
		return exitCode(1)
	}
	if err != nil {
		return err
	}
	if f.DryRun {
		warnOutliers(stderr, planner.Summary())
	}
	printSummary(summaryOut, f, sum, args)
	if !sum.OK() {
		return exitCode(1)
	}
	return nil
}

// runPlanner builds the run's planner from its settings: the preview
// engine is the default model when no provider is configured, as in the
// server (registry.DefaultModel).
func runPlanner(f config.Run, cat *catalog.Catalog, reg *registry.Registry) (*batch.Planner, error) {
	model := f.Model
	if model == "" {
		if model = reg.DefaultModel(); model == "" {
			return nil, fmt.Errorf("providers are configured (%s): choose a model with --model (see 'bulkgen models'), or --model preview to rehearse",
				strings.Join(reg.Configured(), ", "))
		}
	}
	defaults := batch.Defaults{Model: model, Size: f.Size, AspectRatio: f.Aspect, Quality: f.Quality, Format: f.Format,
		Style: f.Style, NegativePrompt: f.Negative, N: f.N, Options: f.Options}
	if f.Seed != nil {
		defaults.Seed, defaults.HasSeed = *f.Seed, true
	}
	var wc *expand.Wildcards
	if f.Wildcards != "" {
		var err error
		if wc, err = expand.NewWildcards(f.Wildcards); err != nil {
			return nil, fmt.Errorf("--wildcards: %w", err)
		}
	}
	p, err := batch.NewPlanner(batch.Config{Catalog: cat, Wildcards: wc, Available: reg.Available, DryRun: f.DryRun,
		Template: f.Template, NameTemplate: f.Name, Defaults: defaults, Combinatorial: f.Combinatorial, MaxPerRow: f.MaxPerRow})
	return p, flagError(err)
}

// errNotApproved ends a run whose estimate was refused: by --max-cost, or
// by the person at the terminal.
var errNotApproved = errors.New("run not approved")

// approver checks a planned run before it spends anything: it warns of
// rows with an outlying n, refuses an estimate above --max-cost, and asks
// on a terminal before an estimate above --confirm-above (--yes, or a
// stdin that is not a terminal, never asks).
func approver(f config.Run, stdin io.Reader, stderr io.Writer) func(runner.Summary, batch.Summary) error {
	return func(sum runner.Summary, plan batch.Summary) error {
		warnOutliers(stderr, plan)
		if f.MaxCost > 0 && sum.Estimated > f.MaxCost {
			fmt.Fprintf(stderr, "bulkgen run: the run is estimated at %s, more than --max-cost %s; nothing was generated\n",
				runner.FormatCredits(sum.Estimated), runner.FormatCredits(f.MaxCost))
			return errNotApproved
		}
		in, ok := stdin.(*os.File)
		if f.Yes || sum.Estimated <= f.ConfirmAbove || !ok || !term.IsTerminal(int(in.Fd())) {
			return nil
		}
		fmt.Fprintf(stderr, "This run will make %d images for an estimated %s. Start? [y/N] ", sum.Images, runner.FormatCredits(sum.Estimated))
		answer, _ := bufio.NewReader(in).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a == "y" || a == "yes" {
			return nil
		}
		fmt.Fprintln(stderr, "Not started. Run again with --yes to skip this question, or --dry-run to see the plan.")
		return errNotApproved
	}
}

// warnOutliers prints the rows whose image count stands far above the
// others', the sign of a typo in n.
func warnOutliers(w io.Writer, plan batch.Summary) {
	for _, r := range plan.Outliers() {
		fmt.Fprintf(w, "%s:%d: warning: this row makes %d images, far more than the other rows; check its n\n", r.File, r.Line, r.Images)
	}
}

func printSummary(w io.Writer, f config.Run, sum runner.Summary, args []string) {
	if f.DryRun {
		if sum.InvalidRows > 0 {
			fmt.Fprintf(w, "%d invalid rows would be skipped.\n", sum.InvalidRows)
		}
		return
	}
	fmt.Fprintf(w, "%d images: %d succeeded (%d already done), %d failed, %d pending; %d rows skipped as invalid; cost %s\n",
		sum.Images, sum.Succeeded, sum.Cached, sum.Failed, sum.Pending, sum.InvalidRows, runner.FormatCredits(sum.Cost))
	fmt.Fprintf(w, "images and manifest.csv / manifest.jsonl are in %s\n", f.Out)
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
	"defaults.n": "--n", "defaults.seed": "--seed", "defaults.model": "--model", "defaults.size": "--size",
	"defaults.aspect_ratio": "--aspect", "defaults.format": "--format",
}

// flagError says which flag a refused setting came from.
func flagError(err error) error {
	if err == nil {
		return nil
	}
	be, ok := batch.AsError(err)
	if !ok || runFlagOf[be.Field] == "" {
		return err
	}
	return fmt.Errorf("%s: %s", runFlagOf[be.Field], strings.TrimPrefix(be.Message, be.Field+": "))
}
