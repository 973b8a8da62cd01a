package expand

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		src       string
		vars      []string
		wildcards []string
		literal   bool
	}{
		{name: "plain text", src: "a lighthouse at dusk", literal: true},
		{name: "empty", src: "", literal: true},
		{name: "variables", src: "{color} {product}", vars: []string{"color", "product"}},
		{name: "trimmed name", src: "{ Color }", vars: []string{"Color"}},
		{name: "repeated variable once", src: "{a} {A} {a}", vars: []string{"a"}},
		{name: "variant", src: "{a|b|c}"},
		{name: "variable in variant", src: "{red {color}|blue}", vars: []string{"color"}},
		{name: "nested variant", src: "{a|{b|c}}"},
		{name: "empty alternative", src: "{a|}"},
		{name: "escaped braces", src: `\{x\} \| \\`, literal: true},
		{name: "bare bar is text", src: "a | b", literal: true},
		{name: "stray backslash kept", src: `C:\path`, literal: true},
		{name: "wildcard", src: "a __color__ car", wildcards: []string{"color"}},
		{name: "wildcard with folder", src: "__animals/cat__", wildcards: []string{"animals/cat"}},
		{name: "wildcard in variant", src: "{__color__|plain}", wildcards: []string{"color"}},
		{name: "underscores that are not wildcards", src: "snake_case __ not__this either_ __", literal: true},
		{name: "escaped wildcard", src: `\__color__`, literal: true},
		{name: "name chars only in braces", src: "{col:umn name}", vars: []string{"col:umn name"}},
		{name: "escaped bar in name", src: `{a\|b}`, vars: []string{"a|b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tpl, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			if got := tpl.Vars(); !reflect.DeepEqual(got, tt.vars) {
				t.Errorf("Vars() = %q, want %q", got, tt.vars)
			}
			if got := tpl.Wildcards(); !reflect.DeepEqual(got, tt.wildcards) {
				t.Errorf("Wildcards() = %q, want %q", got, tt.wildcards)
			}
			if got := tpl.IsLiteral(); got != tt.literal {
				t.Errorf("IsLiteral() = %v, want %v", got, tt.literal)
			}
			if tpl.String() != tt.src {
				t.Errorf("String() = %q, want %q", tpl.String(), tt.src)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		src    string
		offset int
		msg    string
	}{
		{name: "empty braces", src: "a {}", offset: 2, msg: "empty braces"},
		{name: "blank braces", src: "{  }", offset: 0, msg: "empty braces"},
		{name: "unclosed", src: "a {b", offset: 2, msg: "unclosed"},
		{name: "unclosed variant", src: "{a|b", offset: 0, msg: "unclosed"},
		{name: "unclosed outer", src: "xy {a|{b}", offset: 3, msg: "unclosed"},
		{name: "stray close", src: "a }", offset: 2, msg: "unexpected '}'"},
		{name: "stray close after group", src: "{a}}", offset: 3, msg: "unexpected '}'"},
		{name: "brace in variable name", src: "{a {b}}", offset: 3, msg: "inside a variable name"},
		{name: "bad wildcard name", src: "x __/etc__", offset: 2, msg: "bad wildcard name"},
		{name: "wildcard double slash", src: "__a//b__", offset: 0, msg: "bad wildcard name"},
		{name: "too deep", src: strings.Repeat("{a|", 40) + strings.Repeat("}", 40), offset: 3 * maxDepth, msg: "nested deeper"},
		{name: "error inside alternative", src: "{a|b {}}", offset: 5, msg: "empty braces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.src)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error = %v, want *SyntaxError", tt.src, err)
			}
			if se.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d (%v)", se.Offset, tt.offset, err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", se.Msg, tt.msg)
			}
		})
	}
}
