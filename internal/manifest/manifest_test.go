package manifest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEscapeCell(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"a cat", "a cat"},
		{"=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"},
		{"+1+1", "'+1+1"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"-2+3", "'-2+3"},
		{"-42", "-42"},
		{"-1.5", "-1.5"},
		{"\tcmd", "'\tcmd"},
		{"\r=1", "'\r=1"},
		{"a=b", "a=b"},
	}
	for _, tt := range tests {
		if got := EscapeCell(tt.in); got != tt.want {
			t.Errorf("EscapeCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCSVWriter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := NewCSVWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	rec := Record{
		SourceFile: "in.csv", SourceLine: 3, Index: 2, ImageFile: "sub/a.png", Status: StatusSucceeded,
		Prompt: "=cmd|' /C calc'!A0", NegativePrompt: "line one\nline \"two\"", Model: "preview", Provider: "preview",
		Width: 64, Height: 32, Format: "png", Seed: 7, Bytes: 100, SHA256: "ab", Cost: 3, Preview: true,
		StartedAt: &at, Vars: map[string]string{"sku": "-A1", "color": "red"},
	}
	if err := w.Write(&rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("manifest is not valid CSV: %v", err)
	}
	if len(rows) != 2 || len(rows[0]) != len(Columns) || len(rows[1]) != len(Columns) {
		t.Fatalf("rows %d, widths %d/%d", len(rows), len(rows[0]), len(rows[1]))
	}
	got := map[string]string{}
	for i, c := range rows[0] {
		got[c] = rows[1][i]
	}
	if got["prompt"] != "'=cmd|' /C calc'!A0" {
		t.Errorf("formula not escaped: %q", got["prompt"])
	}
	if got["negative_prompt"] != "line one\nline \"two\"" {
		t.Errorf("newline/quote cell: %q", got["negative_prompt"])
	}
	if got["started_at"] != "2026-11-28T10:00:00Z" || got["finished_at"] != "" {
		t.Errorf("times %q %q", got["started_at"], got["finished_at"])
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(got["vars"]), &vars); err != nil || vars["sku"] != "-A1" {
		t.Errorf("vars %q: %v", got["vars"], err)
	}
	if got["image_file"] != "sub/a.png" {
		t.Errorf("image_file %q", got["image_file"])
	}
}

func TestJSONLWriterRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewJSONLWriter(&buf)
	in := Record{SourceFile: "a.txt", SourceLine: 1, Index: 1, Prompt: "<b>&</b> 中文", Status: StatusFailed, Error: "boom", ErrorClass: "rejected"}
	if err := w.Write(&in); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 || strings.Contains(buf.String(), `\u003c`) {
		t.Fatalf("line %q", buf.String())
	}
	var out Record
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Prompt != in.Prompt || out.ErrorClass != "rejected" {
		t.Errorf("round trip: %+v", out)
	}
}
