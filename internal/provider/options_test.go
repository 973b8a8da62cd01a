package provider_test

import (
	"reflect"
	"testing"

	"bulkgen/internal/provider"
)

func TestOptionValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want any
	}{
		{"true", true},
		{"false", false},
		{"True", "True"},
		{"42", int64(42)},
		{"-7", int64(-7)},
		{"0.25", 0.25},
		{"Inf", "Inf"},
		{"NaN", "NaN"},
		{`"42"`, "42"},
		{`"unterminated`, `"unterminated`},
		{`[1,"a"]`, []any{1.0, "a"}},
		{`{"k":true}`, map[string]any{"k": true}},
		{"[not json", "[not json"},
		{"square_hd", "square_hd"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := provider.OptionValue(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("OptionValue(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}
