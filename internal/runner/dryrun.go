package runner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"bulkgen/internal/generate"
)

// dryRun parses, expands, validates and estimates, prints the plan, and
// writes nothing.
func dryRun(ctx context.Context, cfg Config) (Summary, error) {
	sum := Summary{PerModel: map[string]int{}}
	err := forEachRequest(ctx, cfg, func(generate.Request) error { return nil })
	p := cfg.Planner.Summary()
	sum.Rows, sum.InvalidRows, sum.Images, sum.Estimated = p.Rows, p.InvalidRows, p.Images, p.Cost
	costs := map[string]int64{}
	for m, mp := range p.PerModel {
		sum.PerModel[m] = mp.Images
		costs[m] = mp.Cost
	}
	shown := p.First[:min(len(p.First), cfg.DryRunShow)]
	if err != nil {
		return sum, err
	}
	w := cfg.Out
	fmt.Fprintf(w, "Plan (dry run: nothing is generated or written)\n")
	if sum.InvalidRows > 0 {
		fmt.Fprintf(w, "  rows:    %d (%d invalid, listed above, would be skipped)\n", sum.Rows, sum.InvalidRows)
	} else {
		fmt.Fprintf(w, "  rows:    %d\n", sum.Rows)
	}
	fmt.Fprintf(w, "  images:  %d\n", sum.Images)
	fmt.Fprintf(w, "  cost:    %s\n", FormatCredits(sum.Estimated))
	if len(sum.PerModel) > 0 {
		fmt.Fprintf(w, "  per model:\n")
		for _, m := range slices.Sorted(maps.Keys(sum.PerModel)) {
			fmt.Fprintf(w, "    %-40s %8d images  %s\n", m, sum.PerModel[m], FormatCredits(costs[m]))
		}
	}
	if len(shown) > 0 {
		fmt.Fprintf(w, "  first %d images:\n", len(shown))
		for _, it := range shown {
			fmt.Fprintf(w, "    %s:%d #%d  %s%s  %s %dx%d seed %d\n      %s\n", it.SourceFile, it.SourceLine, it.Index,
				it.Name, generate.Extension(it.Format), it.Model, it.Width, it.Height, it.Seed, oneLine(it.Prompt, 160))
			for _, warn := range it.Warnings {
				fmt.Fprintf(w, "      warning: %s\n", warn)
			}
		}
	}
	return sum, nil
}

// FormatCredits shows credits with their dollar value (1 credit = $0.001).
func FormatCredits(c int64) string {
	return fmt.Sprintf("%d credits ($%d.%03d)", c, c/1000, c%1000)
}

func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		return string(r[:limit-1]) + "…"
	}
	return s
}
