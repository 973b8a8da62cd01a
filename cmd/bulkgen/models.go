package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"bulkgen/internal/catalog"
	"bulkgen/internal/provider"
)

func cmdModels(_ context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("models", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "also list models of unconfigured providers and retired models")
	catFile := fs.String("catalog", getenv("BULKGEN_CATALOG"), "model catalogue `file` merged over the built-in one (env BULKGEN_CATALOG; docs/catalog.md)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: bulkgen models [--all] [--catalog FILE]\n\nLists the models available with the current configuration: provider, id, sizes, ratios,\nformats, max n, price per image, whether negative prompts and seeds are honoured.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	cat, err := catalog.Open(*catFile)
	if err != nil {
		return err
	}
	avail := cat.Availability(getenv)
	now := time.Now()

	fmt.Fprintln(stdout, "Providers:")
	pw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for _, p := range cat.Providers() {
		status := "configured"
		if why := avail[p.Name]; why != "" {
			status = "not configured: " + why
		} else if key := firstSet(getenv, p.Env); key != "" {
			status = "configured (" + key + "=" + provider.MaskKey(getenv(key)) + ")"
		}
		limits := "no limit"
		if p.Concurrency > 0 || p.RPM > 0 {
			limits = fmt.Sprintf("concurrency %s, %s/min", orUnlimited(float64(p.Concurrency)), orUnlimited(p.RPM))
		}
		fmt.Fprintf(pw, "  %s\t%s\t%s\t%s\n", p.Name, p.Title, status, limits)
	}
	pw.Flush()

	fmt.Fprintln(stdout, "\nModels (price in credits per image; 1 credit = $0.001):")
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tPROVIDER\tSIZES\tRATIOS\tFORMATS\tMAX N\tPRICE\tNEG\tSEED\tSTATUS")
	hidden := 0
	for _, m := range cat.Models() {
		status := "available"
		switch {
		case m.RetiredAt(now):
			status = "retired " + m.Shutdown.Format("2006-01-02")
			if m.Replacement != "" {
				status += ", use " + m.Replacement
			}
		case avail[m.Provider] != "":
			status = "unavailable: " + avail[m.Provider]
		case !m.Shutdown.IsZero():
			status = "shuts down " + m.Shutdown.Format("2006-01-02")
		}
		if !*all && status != "available" && !strings.HasPrefix(status, "shuts down") {
			hidden++
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.Provider, shorten(m.SupportedSizes(), 40),
			shorten(m.SupportedRatios(), 40), strings.Join(m.Formats, ","), m.MaxN, price(m), yes(m.Negative), yes(m.Seed), status)
	}
	tw.Flush()
	if hidden > 0 {
		fmt.Fprintf(stdout, "\n%d more models are retired or need a provider key: 'bulkgen models --all' lists them.\n", hidden)
	}
	return nil
}

func firstSet(getenv env, names []string) string {
	for _, n := range names {
		if getenv(n) != "" {
			return n
		}
	}
	return ""
}

func orUnlimited(v float64) string {
	if v <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g", v)
}

func price(m *catalog.Model) string {
	s := fmt.Sprint(m.Price.Base)
	if len(m.Price.ByQuality) > 0 {
		var parts []string
		for _, q := range slices.Sorted(maps.Keys(m.Price.ByQuality)) {
			parts = append(parts, fmt.Sprintf("%s=%d", q, m.Price.ByQuality[q]))
		}
		s += " (" + strings.Join(parts, " ") + ")"
	}
	if len(m.Price.Tiers) > 0 {
		s += " (by size)"
	}
	return s
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
