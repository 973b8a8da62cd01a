package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// runOptions are the flags of `bulkgen run`. They have no environment
// variable (a shell's exported BULKGEN_MODEL silently changing every run
// would surprise) except the catalogue, which serve shares.
var runOptions = []option{
	{flag: "output", alias: "o", arg: "DIR", only: []Command{RunCmd},
		usage: "output folder (required unless --dry-run)",
		set:   func(c *Config, v string) error { c.Run.Out = v; return nil }},
	{flag: "model", arg: "MODEL", only: []Command{RunCmd},
		usage: "model id or alias for rows without a model column (default: preview when no provider is configured; see 'bulkgen models')",
		set:   func(c *Config, v string) error { c.Run.Model = strings.TrimSpace(v); return nil }},
	{flag: "size", arg: "WxH", only: []Command{RunCmd},
		usage: "image size for rows without one",
		set:   func(c *Config, v string) error { c.Run.Size = strings.TrimSpace(v); return nil }},
	{flag: "aspect", arg: "W:H", only: []Command{RunCmd},
		usage: "aspect ratio for rows without one (mapped to the model's size)",
		set:   func(c *Config, v string) error { c.Run.Aspect = strings.TrimSpace(v); return nil }},
	{flag: "quality", arg: "QUALITY", only: []Command{RunCmd},
		usage: "quality for rows without one (model-specific: low, medium, high, …)",
		set:   func(c *Config, v string) error { c.Run.Quality = strings.TrimSpace(v); return nil }},
	{flag: "format", arg: "FORMAT", only: []Command{RunCmd},
		usage: "file format: png, jpeg or webp (default png)",
		set:   func(c *Config, v string) error { c.Run.Format = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{flag: "style", arg: "STYLE", only: []Command{RunCmd},
		usage: "style or preset for rows without one",
		set:   func(c *Config, v string) error { c.Run.Style = v; return nil }},
	{flag: "negative", arg: "TEXT", only: []Command{RunCmd},
		usage: "negative prompt for rows without one",
		set:   func(c *Config, v string) error { c.Run.Negative = v; return nil }},
	{flag: "n", arg: "N", only: []Command{RunCmd},
		usage: "images per row for rows without an n column",
		set: func(c *Config, v string) error {
			if err := parseInt(v, &c.Run.N); err != nil || c.Run.N < 1 {
				return fmt.Errorf("%q: want a whole number, 1 or more", v)
			}
			return nil
		},
		show: func(c Config) string { return strconv.Itoa(c.Run.N) }},
	{flag: "seed", arg: "SEED", only: []Command{RunCmd},
		usage: "base seed for rows without one (default: derived from each row, stable across runs)",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%q: want a whole number, 0 or more", v)
			}
			c.Run.Seed = &n
			return nil
		}},
	{flag: "opt", arg: "KEY=VALUE", only: []Command{RunCmd},
		usage: "provider option for every row (repeatable), e.g. --opt latency=300ms for the preview engine",
		set: func(c *Config, v string) error {
			k, val, ok := strings.Cut(v, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("want key=value, got %q", v)
			}
			if c.Run.Options == nil {
				c.Run.Options = map[string]string{}
			}
			c.Run.Options[strings.TrimSpace(k)] = val
			return nil
		}},
	{flag: "template", arg: "TEMPLATE", only: []Command{RunCmd},
		usage: `prompt template for every row, e.g. "Studio photo of a {color} {product}"`,
		set:   func(c *Config, v string) error { c.Run.Template = v; return nil }},
	{flag: "name", arg: "TEMPLATE", only: []Command{RunCmd},
		usage: `file name template, e.g. "{sku}-{n}" (default "{row}-{n}"); fields {row} {n} {seed} {model} {date} and any column`,
		set:   func(c *Config, v string) error { c.Run.Name = v; return nil }},
	{flag: "wildcards", arg: "DIR", only: []Command{RunCmd},
		usage: "folder of NAME.txt files for __NAME__ wildcards",
		set:   func(c *Config, v string) error { c.Run.Wildcards = v; return nil }},
	{flag: "combinatorial", isBool: true, only: []Command{RunCmd},
		usage: "make every combination of {a|b} variants instead of drawing them for each image",
		set:   func(c *Config, v string) error { return parseBool(v, &c.Run.Combinatorial) }},
	{flag: "max-images", arg: "N", only: []Command{RunCmd},
		usage: "refuse a row that would make more images than this (prompts × n; default 10000)",
		set: func(c *Config, v string) error {
			if err := parseInt(v, &c.Run.MaxPerRow); err != nil || c.Run.MaxPerRow < 1 {
				return fmt.Errorf("%q: want a whole number, 1 or more", v)
			}
			return nil
		}},
	{flag: "dry-run", isBool: true, only: []Command{RunCmd},
		usage: "parse, expand, validate and estimate; print the plan; generate and write nothing",
		set:   func(c *Config, v string) error { return parseBool(v, &c.Run.DryRun) }},
	{flag: "max-cost", arg: "CREDITS", only: []Command{RunCmd},
		usage: "refuse to start when the estimate is above this many credits (1 credit = $0.001)",
		set: func(c *Config, v string) error {
			if err := parseInt64(v, &c.Run.MaxCost); err != nil || c.Run.MaxCost < 0 {
				return fmt.Errorf("%q: want a whole number of credits", v)
			}
			return nil
		}},
	{flag: "confirm-above", arg: "CREDITS", only: []Command{RunCmd},
		usage: "on a terminal, ask before starting a run estimated above this many credits",
		set: func(c *Config, v string) error {
			if err := parseInt64(v, &c.Run.ConfirmAbove); err != nil || c.Run.ConfirmAbove < 0 {
				return fmt.Errorf("%q: want a whole number of credits", v)
			}
			return nil
		},
		show: func(c Config) string { return strconv.FormatInt(c.Run.ConfirmAbove, 10) }},
	{flag: "yes", alias: "y", isBool: true, only: []Command{RunCmd},
		usage: "start without asking, whatever the estimate",
		set:   func(c *Config, v string) error { return parseBool(v, &c.Run.Yes) }},
	{flag: "concurrency", arg: "N", only: []Command{RunCmd},
		usage: "images in flight at once (default: the model's provider default)",
		set: func(c *Config, v string) error {
			if err := parseInt(v, &c.Run.Concurrency); err != nil || c.Run.Concurrency < 0 {
				return fmt.Errorf("%q: want a whole number, 0 or more", v)
			}
			return nil
		}},
	{flag: "retries", arg: "N", only: []Command{RunCmd},
		usage: "attempts per image for retryable errors; a provider's rate limit uses none (default 6)",
		set: func(c *Config, v string) error {
			if err := parseInt(v, &c.Run.Retries); err != nil || c.Run.Retries < 1 {
				return fmt.Errorf("%q: want a whole number, 1 or more", v)
			}
			return nil
		}},
	{flag: "retry-delay", arg: "DURATION", only: []Command{RunCmd},
		usage: "first retry delay; it doubles each failure up to 2 minutes, with jitter (default 2s)",
		set:   func(c *Config, v string) error { return parseDuration(v, &c.Run.RetryDelay) }},
	{flag: "json", isBool: true, only: []Command{RunCmd},
		usage: "print progress as JSON lines on stdout",
		set:   func(c *Config, v string) error { return parseBool(v, &c.Run.JSON) }},
	{flag: "delimiter", arg: "CHAR", only: []Command{RunCmd},
		usage: `CSV delimiter (default: detected among , ; tab |); "tab" for a tab`,
		set: func(c *Config, v string) error {
			if v == "tab" || v == `\t` {
				v = "\t"
			}
			r, size := utf8.DecodeRuneInString(v)
			if v == "" || size != len(v) {
				return fmt.Errorf("%q: want one character", v)
			}
			c.Run.Delimiter = r
			return nil
		}},
	{flag: "input-format", arg: "FORMAT", only: []Command{RunCmd},
		usage: "input format: txt, csv, jsonl or manifest (default: from the file name)",
		set:   func(c *Config, v string) error { c.Run.InputFormat = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{flag: "catalog", arg: "FILE", env: "BULKGEN_CATALOG", only: []Command{RunCmd},
		usage: "model catalogue file merged over the built-in one",
		set:   func(c *Config, v string) error { c.Catalog = v; return nil }},
}
