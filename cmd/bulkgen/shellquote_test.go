package main

import (
	"os/exec"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"plain words", []string{"run", "prompts.csv", "-o", "out/", "--opt", "latency=300ms"}, `run prompts.csv -o out/ --opt latency=300ms`},
		{"spaces", []string{"--template", "Studio photo of a {color} {product}"}, `--template 'Studio photo of a {color} {product}'`},
		{"single quote", []string{"it's"}, `'it'\''s'`},
		{"double quote", []string{`say "hi"`}, `'say "hi"'`},
		{"dollar and backquote", []string{"$HOME", "`id`", "$(id)"}, `'$HOME' '` + "`id`" + `' '$(id)'`},
		{"history bang", []string{"wow!"}, `'wow!'`},
		{"empty", []string{"--negative", ""}, `--negative ''`},
		{"unicode", []string{"café", "日本"}, `'café' '日本'`},
		{"glob and tilde", []string{"*.csv", "~/x", "[a]"}, `'*.csv' '~/x' '[a]'`},
		{"newline and tab", []string{"a\nb", "c\td"}, "'a\nb' 'c\td'"},
		{"backslash", []string{`C:\out`}, `'C:\out'`},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := shellQuote(tt.args); got != tt.want {
				t.Errorf("shellQuote(%q) = %s, want %s", tt.args, got, tt.want)
			}
		})
	}
}

// TestShellQuoteRoundTrip has a real shell read the quoted line back: each
// word must arrive as it was, whatever it holds.
func TestShellQuoteRoundTrip(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	args := []string{"", " ", "it's", `a "b"`, "$HOME", "`id`", "$(id)", "wow!", "!!", "café ☕", "*", "~", "a\nb", `\`, "'", "''", "--template", "{a|b} {c}", "x;y&z|w", "#c", "a=b"}
	// printf prints each word, then a NUL, so the words can be compared.
	script := "printf '%s\\0' " + shellQuote(args)
	for _, shell := range []string{sh, "bash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-c", script).Output()
		if err != nil {
			t.Fatalf("%s -c %s: %v", shell, script, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if len(got) != len(args) {
			t.Fatalf("%s read %d words, want %d: %q", shell, len(got), len(args), got)
		}
		for i := range args {
			if got[i] != args[i] {
				t.Errorf("%s: word %d = %q, want %q", shell, i, got[i], args[i])
			}
		}
	}
}
