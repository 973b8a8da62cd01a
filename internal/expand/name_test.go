package expand

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseNameErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		msg  string
	}{
		{name: "empty", src: "  ", msg: "empty"},
		{name: "absolute", src: "/etc/{row}", msg: "relative"},
		{name: "parent", src: "../{row}", msg: `".."`},
		{name: "parent in the middle", src: "a/../{row}", msg: `".."`},
		{name: "dot folder", src: "./{row}", msg: `"."`},
		{name: "trailing slash", src: "{row}/", msg: "end with"},
		{name: "variant", src: "{a|b}", msg: "not allowed"},
		{name: "nested", src: "{a{b}}", msg: "inside"},
		{name: "unclosed", src: "x{row", msg: "unclosed"},
		{name: "stray close", src: "x}", msg: "unexpected"},
		{name: "empty braces", src: "x{}", msg: "empty braces"},
		{name: "bad padding", src: "{row:0}", msg: "padding"},
		{name: "padding too wide", src: "{n:99}", msg: "padding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseName(tt.src)
			var se *SyntaxError
			if !errors.As(err, &se) || !strings.Contains(se.Msg, tt.msg) {
				t.Fatalf("ParseName(%q) error = %v, want *SyntaxError containing %q", tt.src, err, tt.msg)
			}
		})
	}
}

func TestRenderName(t *testing.T) {
	t.Parallel()
	fields := NameFields{Row: 7, N: 2, Seed: 12345, Model: "openai/gpt-image-1", Date: "2025-06-01"}
	tests := []struct {
		name  string
		tmpl  string
		value string // the {v} column
		want  string
	}{
		{name: "default", tmpl: DefaultNameTemplate, want: "7-2"},
		{name: "all fields", tmpl: "{date}_{model}_{row}_{n}_{seed}", want: "2025-06-01_openai_gpt-image-1_7_2_12345"},
		{name: "padding", tmpl: "{row:4}-{n:2}-{ seed:3 }", want: "0007-02-12345"},
		{name: "column", tmpl: "{v}-{n}", value: "red mug", want: "red mug-2"},
		{name: "column case-insensitive", tmpl: "{ V }", value: "x", want: "x"},
		{name: "sub-folders from the template", tmpl: "{date}/{v}/{n}", value: "cats", want: "2025-06-01/cats/2"},
		{name: "traversal in value", tmpl: "{v}", value: "../../etc/passwd", want: "_._etc_passwd"},
		{name: "traversal in folder value", tmpl: "{v}/{n}", value: "..", want: "2"},
		{name: "absolute value", tmpl: "{v}", value: "/abs", want: "_abs"},
		{name: "backslash value", tmpl: `{v}`, value: `..\..\win`, want: "_._win"},
		{name: "reserved", tmpl: "{v}", value: "CON", want: "_CON"},
		{name: "reserved with extension", tmpl: "{v}", value: "lpt1.txt", want: "_lpt1.txt"},
		{name: "reserved folder", tmpl: "{v}/{n}", value: "aux", want: "_aux/2"},
		{name: "colon", tmpl: "{v}", value: "a:b", want: "a_b"},
		{name: "trailing dot", tmpl: "{v}", value: "name.", want: "name"},
		{name: "dots around", tmpl: "..{v}..", value: "x", want: "x"},
		{name: "dot-dot inside", tmpl: "{v}", value: "v1..2", want: "v1.2"},
		{name: "NUL", tmpl: "{v}", value: "a\x00b", want: "a_b"},
		{name: "emoji kept", tmpl: "{v}", value: "cat 🐱 hat", want: "cat 🐱 hat"},
		{name: "empty value falls back", tmpl: "{v}", value: "", want: "image-7-2"},
		{name: "only dots falls back", tmpl: "{v}", value: "...", want: "image-7-2"},
		{name: "empty last segment falls back in folder", tmpl: "out/{v}", value: " . ", want: "out/image-7-2"},
		{name: "empty middle segment dropped", tmpl: "a/{v}/b", value: "", want: "a/b"},
		{name: "literal backslash is not a folder", tmpl: `a\b`, want: "a_b"},
		{name: "escaped brace", tmpl: `\{row\}`, want: "{row}"},
		{name: "windows drive", tmpl: "C:/x", want: "C_/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nt, err := ParseName(tt.tmpl)
			if err != nil {
				t.Fatalf("ParseName(%q): %v", tt.tmpl, err)
			}
			got, err := nt.Render(fields, map[string]string{"v": tt.value})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			checkName(t, got)
		})
	}
}

func TestRenderNameLongValue(t *testing.T) {
	t.Parallel()
	nt, _ := ParseName("{v}/{v}")
	long := strings.Repeat("é", 200) // 400 bytes, two per rune
	got, err := nt.Render(NameFields{}, map[string]string{"v": long})
	if err != nil {
		t.Fatal(err)
	}
	segs := strings.Split(got, "/")
	if len(segs) != 2 {
		t.Fatalf("got %d segments, want 2", len(segs))
	}
	for _, s := range segs {
		if len(s) != maxSegment || !utf8.ValidString(s) {
			t.Errorf("segment of %d bytes (valid UTF-8 %v), want %d", len(s), utf8.ValidString(s), maxSegment)
		}
	}
	odd := strings.Repeat("a", 149) + "é" // the cut would split é
	got, _ = nt.Render(NameFields{}, map[string]string{"v": odd})
	if want := strings.Repeat("a", 149); !strings.HasPrefix(got, want+"/") || !utf8.ValidString(got) {
		t.Errorf("got %q, want segments of 149 a's", got)
	}
}

func TestRenderNameUnknownColumn(t *testing.T) {
	t.Parallel()
	nt, err := ParseName("{product}-{n}")
	if err != nil {
		t.Fatal(err)
	}
	if got := nt.Vars(); !reflect.DeepEqual(got, []string{"product"}) {
		t.Errorf("Vars() = %q, want [product]", got)
	}
	_, err = nt.Render(NameFields{}, map[string]string{"color": "red"})
	var ue *UnknownVarError
	if !errors.As(err, &ue) || ue.Name != "product" {
		t.Fatalf("error = %v, want *UnknownVarError for product", err)
	}
}

func TestBuiltinFieldsWinOverColumns(t *testing.T) {
	t.Parallel()
	nt, _ := ParseName("{model}-{row}")
	got, err := nt.Render(NameFields{Row: 3, Model: "flux"}, map[string]string{"model": "csv", "row": "99"})
	if err != nil || got != "flux-3" {
		t.Errorf("got %q, %v; want flux-3", got, err)
	}
	if vars := nt.Vars(); len(vars) != 0 {
		t.Errorf("Vars() = %q, want none", vars)
	}
}

// checkName asserts the invariants every rendered name must hold.
func checkName(tb testing.TB, name string) {
	tb.Helper()
	switch {
	case name == "":
		tb.Errorf("empty name")
	case strings.HasPrefix(name, "/"):
		tb.Errorf("name %q is absolute", name)
	case strings.Contains(name, ".."):
		tb.Errorf("name %q contains ..", name)
	case strings.ContainsAny(name, "\x00\\"):
		tb.Errorf("name %q contains NUL or backslash", name)
	case !utf8.ValidString(name):
		tb.Errorf("name %q is not valid UTF-8", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || len(seg) > maxSegment {
			tb.Errorf("name %q has a bad segment %q", name, seg)
		}
	}
}
