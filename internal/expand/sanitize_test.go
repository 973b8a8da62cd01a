package expand

import (
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"cat", "cat"},
		{"", ""},
		{"..", ""},
		{"   ", ""},
		{"../../etc/passwd", "_._etc_passwd"},
		{"/abs", "_abs"},
		{`a\b`, "a_b"},
		{`<>:"|?*`, "_______"},
		{"a:b", "a_b"},
		{"name.", "name"},
		{"name. . ", "name"},
		{" .hidden", "hidden"},
		{"a..b...c", "a.b.c"},
		{"CON", "_CON"},
		{"con", "_con"},
		{"Con.png", "_Con.png"},
		{"CON .txt", "_CON .txt"},
		{"nul.tar.gz", "_nul.tar.gz"},
		{"COM1", "_COM1"},
		{"com9.jpg", "_com9.jpg"},
		{"LPT¹", "_LPT¹"},
		{"CONSOLE", "CONSOLE"},
		{"COM10", "COM10"},
		{"a\x00b\x1fc\x7fd", "a_b_c_d"},
		{"tab\there", "tab_here"},
		{"line\nbreak", "line_break"},
		{"bad\xffutf8", "bad_utf8"},
		{"photo\u202egnp.exe", "photo_gnp.exe"},
		{"🐱 cat", "🐱 cat"},
		{"猫の写真", "猫の写真"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := Sanitize(tt.in); got != tt.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitizeLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "ascii 400", in: strings.Repeat("x", 400), want: strings.Repeat("x", 150)},
		{name: "emoji not cut", in: strings.Repeat("a", 148) + "🐱🐱", want: strings.Repeat("a", 148)},
		{name: "trailing dot after cut", in: strings.Repeat("a", 149) + ". b", want: strings.Repeat("a", 149)},
		{name: "reserved prefix stays in the cap", in: "CON." + strings.Repeat("x", 200), want: "_CON." + strings.Repeat("x", 145)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Sanitize(tt.in); got != tt.want {
				t.Errorf("got %d bytes %q, want %d bytes", len(got), got, len(tt.want))
			}
		})
	}
}
