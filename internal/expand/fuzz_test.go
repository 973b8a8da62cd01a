package expand

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that the parser never panics and that whatever parses
// also expands without panicking, in both modes, with the promised number
// of prompts. Seed corpus: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "plain", "{color} {product}", "{a|b|c}", "{a|{b|c}}", "{red {color}|blue}",
		`\{ \} \| \\ \_`, "{}", "{a", "a}", "__color__ __animals/cat__", "{|}", "{{a|b}|}",
	} {
		f.Add(s)
	}
	w, err := NewWildcards("testdata/wildcards")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = w.Close() })
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("Parse(%q) error %v: want *SyntaxError with an offset inside the source", src, err)
			}
			return
		}
		vars := map[string]string{}
		for _, v := range tpl.Vars() {
			vars[v] = "{x|y} __color__" // values must come out verbatim
		}
		for _, comb := range []bool{false, true} {
			e := &Expander{Combinatorial: comb, MaxImages: 64, Wildcards: w}
			count, countErr := e.Count(tpl, vars)
			got := 0
			err := e.Expand(tpl, vars, 7, func(i int, p string) bool {
				if i != got {
					t.Fatalf("index %d, want %d", i, got)
				}
				got++
				return true
			})
			if (err == nil) != (countErr == nil) && !tpl.literal && !tpl.simple {
				t.Fatalf("Count error %v but Expand error %v", countErr, err)
			}
			if err == nil && countErr == nil && int64(got) != count {
				t.Fatalf("%q (combinatorial %v): Count %d but %d prompts", src, comb, count, got)
			}
		}
		if tpl.IsLiteral() && strings.ContainsAny(src, "{}") && !strings.Contains(src, `\`) {
			t.Fatalf("%q parsed as literal despite unescaped braces", src)
		}
	})
}

// FuzzName checks the promises of rendered file names: never empty, never
// absolute, never containing "..", a backslash or NUL, whatever the
// template and the substituted values. Seed corpus: testdata/fuzz/FuzzName.
func FuzzName(f *testing.F) {
	for _, s := range [][2]string{
		{"{row}-{n}", ""}, {"{v}", "../../etc/passwd"}, {"{v}/{n}", ".."}, {"{v}", "CON"},
		{"{v}", "a:b"}, {"{v}", "name."}, {"{model}/{v}", "/abs"}, {"x/{v}", "\x00"},
		{"{date}_{v}", strings.Repeat("🐱", 120)}, {"..{v}", "."}, {"a/{v}/b", `\`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		if got := Sanitize(value); strings.ContainsAny(got, "/\\\x00") || strings.Contains(got, "..") || len(got) > maxSegment {
			t.Fatalf("Sanitize(%q) = %q", value, got)
		}
		nt, err := ParseName(tmpl)
		if err != nil {
			return
		}
		vars := map[string]string{}
		for _, v := range nt.Vars() {
			vars[v] = value
		}
		fields := NameFields{Row: 1, N: 2, Seed: 3, Model: value, Date: value}
		name, err := nt.Render(fields, vars)
		if err != nil {
			t.Fatalf("Render(%q) with every column set: %v", tmpl, err)
		}
		checkName(t, name)
	})
}
