package expand

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// collect runs Expand and returns every prompt, checking the indexes.
func collect(tb testing.TB, e *Expander, src string, vars map[string]string, seed int64) ([]string, error) {
	tb.Helper()
	tpl, err := Parse(src)
	if err != nil {
		tb.Fatalf("Parse(%q): %v", src, err)
	}
	var got []string
	err = e.Expand(tpl, vars, seed, func(i int, p string) bool {
		if i != len(got) {
			tb.Errorf("index %d, want %d", i, len(got))
		}
		got = append(got, p)
		return true
	})
	return got, err
}

func TestExpandSeeded(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"color": "red", "Product": "mug", " size ": "large", "braces": "{a|b} __color__"}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "literal", src: "a lighthouse", want: "a lighthouse"},
		{name: "empty", src: "", want: ""},
		{name: "variables", src: "{color} {product}", want: "red mug"},
		{name: "case and space insensitive", src: "{COLOR} {  product } {Size}", want: "red mug large"},
		{name: "values are not parsed again", src: "x {braces}", want: "x {a|b} __color__"},
		{name: "escapes", src: `\{color\} \| \\ \_\_x__`, want: `{color} | \ __x__`},
		{name: "stray backslash", src: `a\b`, want: `a\b`},
		{name: "docs: escaped wildcard", src: `\__init__`, want: "__init__"},
		{name: "single-option variants", src: "{a|a} {b|b|b}", want: "a b"},
		{name: "variable inside variant", src: "{{color}|{color}} cup", want: "red cup"},
		{name: "bar outside braces", src: "a | b", want: "a | b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := collect(t, &Expander{}, tt.src, vars, 42)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("got %q, want [%q]", got, tt.want)
			}
		})
	}
}

func TestExpandCombinatorial(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"color": "green"}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{name: "literal", src: "plain", want: []string{"plain"}},
		{name: "two variants in reading order", src: "{a|b} {x|y}", want: []string{"a x", "a y", "b x", "b y"}},
		{name: "nested", src: "{a|{b|c}}", want: []string{"a", "b", "c"}},
		{name: "nested with tail", src: "<{a|{b|c}d}>", want: []string{"<a>", "<bd>", "<cd>"}},
		{name: "variable in variant", src: "{red {color}|blue} car", want: []string{"red green car", "blue car"}},
		{name: "empty alternative", src: "cat{| hat}", want: []string{"cat", "cat hat"}},
		{name: "escaped bar in alternative", src: `{a\|b|c}`, want: []string{"a|b", "c"}},
		{name: "docs: optional words", src: "cat{| with a hat}", want: []string{"cat", "cat with a hat"}},
		{name: "docs: nested share", src: "{oil|{water|gouache} colour} painting", want: []string{"oil painting", "water colour painting", "gouache colour painting"}},
		{name: "deep nesting", src: "{1|{2|{3|{4|5}}}}-{x|y}", want: []string{"1-x", "1-y", "2-x", "2-y", "3-x", "3-y", "4-x", "4-y", "5-x", "5-y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := &Expander{Combinatorial: true}
			got, err := collect(t, e, tt.src, vars, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			tpl, _ := Parse(tt.src)
			n, err := e.Count(tpl, vars)
			if err != nil || n != int64(len(tt.want)) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(tt.want))
			}
		})
	}
}

func TestExpandStopsWhenYieldReturnsFalse(t *testing.T) {
	t.Parallel()
	tpl, _ := Parse("{a|b|c} {x|y}")
	var got []string
	err := (&Expander{Combinatorial: true}).Expand(tpl, nil, 0, func(_ int, p string) bool {
		got = append(got, p)
		return len(got) < 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a x", "a y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSeededChoiceIsDeterministicAndSpread(t *testing.T) {
	t.Parallel()
	tpl, err := Parse("{a|b|c}")
	if err != nil {
		t.Fatal(err)
	}
	e := &Expander{}
	counts := map[string]int{}
	const seeds = 3000
	for seed := int64(0); seed < seeds; seed++ {
		var first, second string
		_ = e.Expand(tpl, nil, seed, func(_ int, p string) bool { first = p; return true })
		_ = e.Expand(tpl, nil, seed, func(_ int, p string) bool { second = p; return true })
		if first != second {
			t.Fatalf("seed %d gave %q then %q", seed, first, second)
		}
		counts[first]++
	}
	if len(counts) != 3 {
		t.Fatalf("choices seen: %v, want a, b and c", counts)
	}
	for choice, n := range counts {
		// A fair three-way choice gives 1000 ± ~26 (one sigma); 800 only
		// fails for a badly skewed chooser.
		if n < 800 {
			t.Errorf("choice %q picked %d times out of %d, want about a third", choice, n, seeds)
		}
	}
}

func TestSeededVariantsChooseIndependently(t *testing.T) {
	t.Parallel()
	// With the same seed, two variants must not always pick the same
	// position, or "{a|b}{c|d}" could only ever give "ac" and "bd".
	tpl, _ := Parse("{a|b}{c|d}")
	seen := map[string]bool{}
	for seed := int64(1); seed <= 200; seed++ {
		_ = (&Expander{}).Expand(tpl, nil, seed, func(_ int, p string) bool { seen[p] = true; return true })
	}
	for _, want := range []string{"ac", "ad", "bc", "bd"} {
		if !seen[want] {
			t.Errorf("combination %q never chosen in 200 seeds (saw %v)", want, seen)
		}
	}
}

func TestUnknownVariable(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"product": "mug", "color": "red"}
	for _, src := range []string{"{colour} mug", "{a|{colour}}", "a {colour}"} {
		for _, comb := range []bool{false, true} {
			e := &Expander{Combinatorial: comb}
			got, err := collect(t, e, src, vars, 0)
			var ue *UnknownVarError
			if !errors.As(err, &ue) {
				t.Fatalf("%q (combinatorial %v): error = %v, want *UnknownVarError", src, comb, err)
			}
			if len(got) != 0 {
				t.Errorf("%q: yielded %q before the error", src, got)
			}
			if ue.Name != "colour" || !reflect.DeepEqual(ue.Available, []string{"color", "product"}) {
				t.Errorf("got %+v, want colour with [color product]", ue)
			}
			if msg := err.Error(); !strings.Contains(msg, `"colour"`) || !strings.Contains(msg, "color, product") {
				t.Errorf("message %q should name the column and list the available ones", msg)
			}
			tpl, _ := Parse(src)
			if _, err := e.Count(tpl, vars); !errors.As(err, &ue) {
				t.Errorf("Count error = %v, want *UnknownVarError", err)
			}
		}
	}
	_, err := collect(t, &Expander{}, "{x}", nil, 0)
	if err == nil || !strings.Contains(err.Error(), "no columns") {
		t.Errorf("no vars: error = %v, want one saying the row has no columns", err)
	}
}

func TestAmbiguousVariableIsDeterministic(t *testing.T) {
	t.Parallel()
	// All three keys match {colOR}; the smallest key (" color") must win
	// every time, whatever the map's iteration order.
	vars := map[string]string{"Color ": "one", " color": "two", "COLOR": "three"}
	for range 50 {
		got, err := collect(t, &Expander{}, "{colOR}", vars, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != "two" {
			t.Fatalf("got %q, want %q", got[0], "two")
		}
	}
}

func TestCap(t *testing.T) {
	t.Parallel()
	ten := "{0|1|2|3|4|5|6|7|8|9}"
	tests := []struct {
		name     string
		src      string
		max      int
		count    string // "" when allowed
		overflow bool
	}{
		{name: "five by ten refused", src: strings.Repeat(ten, 5), max: 10_000, count: "100000"},
		{name: "default cap", src: strings.Repeat(ten, 5), max: 0, count: "100000"},
		{name: "four by ten allowed", src: strings.Repeat(ten, 4), max: 10_000},
		{name: "exactly at the cap", src: "{a|b}{c|d}", max: 4},
		{name: "one over", src: "{a|b}{c|d|e}", max: 5, count: "6"},
		{name: "overflow", src: strings.Repeat(ten, 40), max: 10_000, count: ">1000000000000000000", overflow: true},
		{name: "nested sums", src: "{a|{b|c|d}}{e|{f|g}}", max: 8, count: "12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			e := &Expander{Combinatorial: true, MaxImages: tt.max}
			_, err = e.Count(tpl, nil)
			calls := 0
			expErr := e.Expand(tpl, nil, 0, func(int, string) bool { calls++; return true })
			if tt.count == "" {
				if err != nil || expErr != nil {
					t.Fatalf("Count: %v, Expand: %v; want both allowed", err, expErr)
				}
				return
			}
			var te *TooManyError
			if !errors.As(err, &te) {
				t.Fatalf("Count error = %v, want *TooManyError", err)
			}
			if te.CountString() != tt.count || te.Overflow != tt.overflow {
				t.Errorf("count %s (overflow %v), want %s (%v)", te.CountString(), te.Overflow, tt.count, tt.overflow)
			}
			if !strings.Contains(te.Error(), tt.count) {
				t.Errorf("message %q lacks the count %s", te.Error(), tt.count)
			}
			if !errors.As(expErr, &te) || calls != 0 {
				t.Errorf("Expand: %v after %d prompts, want *TooManyError before any", expErr, calls)
			}
			// Seeded mode produces one prompt whatever the variant count.
			if n, err := (&Expander{MaxImages: tt.max}).Count(tpl, nil); n != 1 || err != nil {
				t.Errorf("seeded Count = %d, %v; want 1", n, err)
			}
		})
	}
}
