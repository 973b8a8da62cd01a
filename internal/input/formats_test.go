package input

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string, opt Options) result {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return readAll(t, name, f, opt)
}

func TestFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file       string
		wantFormat string
		wantLines  []int
		want       []vals
		wantErrs   []string
	}{
		{
			file:       "excel-unicode.txt",
			wantFormat: FormatCSV,
			wantLines:  []int{2, 3},
			want: []vals{
				{"prompt": "a café in {City}", "negative_prompt": "blurry", "City": "Paris"},
				{"prompt": "quoted\ttab", "negative_prompt": "", "City": "Rome 🏛"},
			},
		},
		{
			file:       "utf16be-bom.csv",
			wantFormat: FormatCSV,
			want:       []vals{{"prompt": "こんにちは 世界", "seed": "7"}},
		},
		{
			file:       "utf16le-nobom.csv",
			wantFormat: FormatCSV,
			want:       []vals{{"prompt": "no bom here", "seed": "8"}},
		},
		{
			file:       "utf8-bom-crlf.csv",
			wantFormat: FormatCSV,
			want:       []vals{{"prompt": "sunset", "style": "warm, soft"}},
		},
		{
			file:       "prompts.txt",
			wantFormat: FormatTXT,
			wantLines:  []int{2, 4, 5, 6},
			want: []vals{
				{"prompt": "a lighthouse at dusk", "negative_prompt": "blurry, text", "seed": "42", "aspect_ratio": "3:2", "n": "2"},
				{"prompt": "a sign that says --stop--", "size": "1024x1024"},
				{"prompt": "a sign that says --stop-- verbatim"},
				{"prompt": "a poster", "opt.steps": "30", "name": "posters/one"},
			},
			wantErrs: []string{"prompts.txt:7:15: unknown option --sed"},
		},
		{
			file:       "prompts.jsonl",
			wantFormat: FormatJSONL,
			wantLines:  []int{1, 2, 8},
			want: []vals{
				{"prompt": "a cat", "seed": "18446744073709551615", "n": "2", "hd": "true"},
				{"prompt": "a dog", "opt.steps": "30", "opt.sampler": "euler", "City": "Rome"},
				{"prompt": "last"},
			},
			wantErrs: []string{
				"prompts.jsonl:4: tags: nested objects and arrays are not allowed",
				"prompts.jsonl:5:1: line is not a JSON object",
				"prompts.jsonl:6:1: line is not a JSON object",
				`prompts.jsonl:7: keys "prompt" and "text" both mean prompt`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got := readFixture(t, tt.file, Options{})
			if got.format != tt.wantFormat {
				t.Errorf("format = %q, want %q", got.format, tt.wantFormat)
			}
			checkResult(t, got, tt.wantLines, tt.want, tt.wantErrs)
			for _, row := range got.rows {
				if row.File != tt.file || row.Literal {
					t.Errorf("row File %q Literal %v, want %q and false", row.File, row.Literal, tt.file)
				}
			}
		})
	}
}

func TestManifest(t *testing.T) {
	t.Parallel()
	want := []vals{
		{
			"prompt": `a cat in Paris, "best"`, "negative_prompt": "blurry", "model": "gpt-image-1", "size": "1024x1024",
			"aspect_ratio": "1:1", "quality": "high", "style": "", "format": "png", "seed": "42", "n": "1",
			"name": "cats/001", "city": "Paris", "opt.steps": "30", "count": "3",
		},
		{
			"prompt": "a dog", "negative_prompt": "", "model": "flux", "size": "", "aspect_ratio": "16:9",
			"quality": "", "style": "vivid", "format": "webp", "seed": "", "n": "1", "name": "dogs/v1.2/dog",
		},
	}
	for _, file := range []string{"manifest.csv", "manifest.jsonl"} {
		for _, format := range []string{"", FormatManifest} {
			t.Run(file+"/"+format, func(t *testing.T) {
				t.Parallel()
				got := readFixture(t, file, Options{Format: format})
				if got.format != FormatManifest {
					t.Errorf("format = %q, want manifest", got.format)
				}
				lines := []int{2, 3} // the manifest's own lines, after the header
				if file == "manifest.jsonl" {
					lines = []int{1, 2}
				}
				checkResult(t, got, lines, want, nil)
				for _, row := range got.rows {
					if !row.Literal || row.File != file {
						t.Errorf("row Literal %v File %q, want true and %q", row.Literal, row.File, file)
					}
				}
			})
		}
	}
}

func TestManifestRowErrors(t *testing.T) {
	t.Parallel()
	head := "source_file,source_line,image_file,sha256,prompt,vars\n"
	data := head +
		"a.csv,1,x.png,00,p1,\"{\"\"k\"\": [1]}\"\n" +
		"a.csv,2,x.png,00,p2,\"{\"\"prompt\"\": \"\"y\"\"}\"\n" +
		"a.csv,3,x.png,00,p3,not json\n" +
		"a.csv,4,.hidden,00,p4,\n"
	got := readString(t, "m.csv", data, Options{})
	checkResult(t, got, []int{5},
		[]vals{{"prompt": "p4", "negative_prompt": "", "model": "", "size": "", "aspect_ratio": "", "quality": "",
			"style": "", "format": "", "seed": "", "n": "1", "name": ".hidden"}},
		[]string{"m.csv:2: vars.k: nested", `m.csv:3: vars: "prompt" is a field name`, "m.csv:4: vars: not a JSON object"})
}

func TestFormatDetection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, data string
		opt              Options
		want             string
	}{
		{name: "csv by extension without prompt", file: "a.CSV", data: "city\nParis\n", want: FormatCSV},
		{name: "tsv", file: "a.tsv", data: "prompt,x\ta\n", want: FormatCSV},
		{name: "txt by extension", file: "a.txt", data: "prompt,size\n", want: FormatTXT},
		{name: "jsonl by extension", file: "a.ndjson", data: "{}\n", want: FormatJSONL},
		{name: "sniff jsonl", file: "-", data: "\n  {\"prompt\":\"x\"}\n", want: FormatJSONL},
		{name: "sniff csv", file: "-", data: "Prompt;Size\nx;1x1\n", want: FormatCSV},
		{name: "sniff single prompt column", file: "-", data: "prompt\nx\n", want: FormatCSV},
		{name: "sniff manifest", file: "stdin", data: "source_file,source_line,image_file,sha256\n", want: FormatManifest},
		{name: "sniff txt with commas", file: "-", data: "a cat, sitting, on a mat\n", want: FormatTXT},
		{name: "sniff txt mentioning size", file: "", data: "a cat; size\n", want: FormatTXT},
		{name: "explicit txt", file: "a.csv", data: "prompt,size\n", opt: Options{Format: FormatTXT}, want: FormatTXT},
		{name: "explicit csv on txt name", file: "a.txt", data: "x\n", opt: Options{Format: FormatCSV}, want: FormatCSV},
		{name: "csv extension with manifest header", file: "m.csv", data: "sha256,image_file,source_line,source_file\n", want: FormatManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rd, err := Open(tt.file, strings.NewReader(tt.data), tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if rd.Format() != tt.want {
				t.Errorf("Format() = %q, want %q", rd.Format(), tt.want)
			}
		})
	}
	rd, err := Open("a.tsv", strings.NewReader("prompt,x\ta\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rd.Header(), "|"); got != "prompt,x|a" {
		t.Errorf("tsv header = %q, want tab-separated", got)
	}
}

func TestCanonicalField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Prompt", "prompt", true},
		{" positive prompt ", "prompt", true},
		{"TEXT", "prompt", true},
		{"negativePrompt", "negative_prompt", true},
		{"Negative-Prompt", "negative_prompt", true},
		{"neg", "negative_prompt", true},
		{"Aspect Ratio", "aspect_ratio", true},
		{"ar", "aspect_ratio", true},
		{"ratio", "aspect_ratio", true},
		{"Dimensions", "size", true},
		{"resolution", "size", true},
		{"num_images", "n", true},
		{"Count", "n", true},
		{"images", "n", true},
		{"File Name", "name", true},
		{"file", "name", true},
		{"output_format", "format", true},
		{"model", "model", true},
		{"quality", "quality", true},
		{"seed", "seed", true},
		{"style", "style", true},
		{"OPT.cfg_Scale ", "opt.cfg_Scale", true},
		{"opt.", "", false},
		{"opt", "", false},
		{"city", "", false},
		{"number", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := CanonicalField(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalField(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestJSONLMisc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		data     string
		opt      Options
		want     []vals
		wantErrs []string
	}{
		{name: "CRLF and blank lines", data: "\r\n{\"prompt\":\"a\"}\r\n\r\n{\"prompt\":\"b\"}", want: []vals{{"prompt": "a"}, {"prompt": "b"}}},
		{name: "syntax error has a column", data: "{\"prompt\": \"a\",}\n{\"prompt\":\"b\"}\n",
			want: []vals{{"prompt": "b"}}, wantErrs: []string{"x.jsonl:1:16: invalid JSON"}},
		{name: "two objects on a line", data: `{"prompt":"a"} {"prompt":"b"}`, wantErrs: []string{"x.jsonl:1:16: invalid JSON"}},
		{name: "NUL escape", data: "{\"prompt\":\"a\\u0000b\"}\n", wantErrs: []string{"prompt: NUL character"}},
		{name: "bad opt key", data: `{"prompt":"a","opt":{"bad key":1}}`, wantErrs: []string{`opt: key "bad key"`}},
		{name: "opt object with nested value", data: `{"prompt":"a","opt":{"k":{"x":1}}}`, wantErrs: []string{"opt.k: nested"}},
		{name: "opt clash", data: `{"prompt":"a","opt":{"s":1},"opt.s":2}`, wantErrs: []string{`keys "opt.s" and "opt{s}" both mean opt.s`}},
		{name: "too many keys", data: `{"a":1,"b":2,"c":3}`, opt: Options{MaxColumns: 2}, wantErrs: []string{"3 keys, more than the limit of 2"}},
		{name: "long line resumes", data: `{"prompt":"` + strings.Repeat("x", 100) + "\"}\n{\"prompt\":\"ok\"}\n",
			opt: Options{MaxRecordBytes: 50}, want: []vals{{"prompt": "ok"}}, wantErrs: []string{"x.jsonl:1: line is longer than 50 bytes"}},
		{name: "invalid UTF-8", data: "{\"prompt\":\"\xff\"}\n", wantErrs: []string{"x.jsonl:1:12: invalid UTF-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkResult(t, readString(t, "x.jsonl", tt.data, tt.opt), nil, tt.want, tt.wantErrs)
		})
	}
}
