package input

import (
	"errors"
	"strings"
	"testing"
)

func TestCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		data      string
		opt       Options
		wantLines []int
		want      []vals
		wantErrs  []string
	}{
		{
			name:      "simple",
			data:      "prompt,size\na cat,512x512\na dog,1024x1024\n",
			wantLines: []int{2, 3},
			want:      []vals{{"prompt": "a cat", "size": "512x512"}, {"prompt": "a dog", "size": "1024x1024"}},
		},
		{
			name: "aliases, options and variables",
			data: " Positive Prompt ,Negative Prompt,AR,Resolution,num_images,File Name,Output_Format,opt.Steps,City\n" +
				"a {City} street,blurry,16:9,1024x576,2,street,png,30,Paris\n",
			want: []vals{{
				"prompt": "a {City} street", "negative_prompt": "blurry", "aspect_ratio": "16:9",
				"size": "1024x576", "n": "2", "name": "street", "format": "png", "opt.Steps": "30", "City": "Paris",
			}},
		},
		{
			name: "RFC 4180 quoting with quotes, delimiters and newlines",
			data: "prompt,negative\n\"a \"\"big\"\" cat, sitting\",\"line one\nline two\"\nnext,x\n",
			// The second record starts on line 4 because the first spans two lines.
			wantLines: []int{2, 4},
			want: []vals{
				{"prompt": `a "big" cat, sitting`, "negative_prompt": "line one\nline two"},
				{"prompt": "next", "negative_prompt": "x"},
			},
		},
		{
			name: "CRLF inside quotes becomes LF",
			data: "prompt\r\n\"a\r\nb\"\r\nc\r\n",
			want: []vals{{"prompt": "a\nb"}, {"prompt": "c"}},
		},
		{
			name:      "mixed line endings",
			data:      "prompt,n\r\na,1\rb,2\nc,3\r\nd,4",
			wantLines: []int{2, 3, 4, 5},
			want:      []vals{{"prompt": "a", "n": "1"}, {"prompt": "b", "n": "2"}, {"prompt": "c", "n": "3"}, {"prompt": "d", "n": "4"}},
		},
		{
			name: "semicolon detected",
			data: "prompt;size;seed\na, b;1x1;3\n",
			want: []vals{{"prompt": "a, b", "size": "1x1", "seed": "3"}},
		},
		{
			name: "tab detected",
			data: "prompt\tstyle\na, b; c\tvivid\n",
			want: []vals{{"prompt": "a, b; c", "style": "vivid"}},
		},
		{
			name: "pipe detected",
			data: "prompt|seed\na, b|7\n",
			want: []vals{{"prompt": "a, b", "seed": "7"}},
		},
		{
			name: "delimiter inside quoted header does not count",
			data: "\"a;b;c\",prompt\nx,y\n",
			want: []vals{{"a;b;c": "x", "prompt": "y"}},
		},
		{
			name: "explicit delimiter",
			data: "prompt;x,y\na,b;c\n",
			opt:  Options{Delimiter: ';'},
			want: []vals{{"prompt": "a,b", "x,y": "c"}},
		},
		{
			name: "UTF-8 BOM",
			data: "\uFEFFprompt\nhi\n",
			want: []vals{{"prompt": "hi"}},
		},
		{
			name: "blanks trimmed outside quotes, kept inside",
			data: "prompt,style\n  a cat  ,  \"  b  \"  \n",
			want: []vals{{"prompt": "a cat", "style": "  b  "}},
		},
		{
			name: "quote inside an unquoted cell is literal",
			data: "prompt\na 12\" vinyl record\n",
			want: []vals{{"prompt": `a 12" vinyl record`}},
		},
		{
			name:     "text after a closing quote is a row error, next row fine",
			data:     "prompt,n\n\"a\"b,1\nc,2\n",
			want:     []vals{{"prompt": "c", "n": "2"}},
			wantErrs: []string{"x.csv:2:4: text after the closing quote"},
		},
		{
			name:     "unterminated quote at EOF",
			data:     "prompt,n\nok,1\n\"never closed,2\nmore\n",
			want:     []vals{{"prompt": "ok", "n": "1"}},
			wantErrs: []string{"x.csv:3:1: quoted cell is never closed"},
		},
		{
			name: "fewer cells are empty, extra empty cells ignored",
			data: "prompt,size,style\na\nb,1x1,c,,\n",
			want: []vals{{"prompt": "a", "size": "", "style": ""}, {"prompt": "b", "size": "1x1", "style": "c"}},
		},
		{
			name:     "more cells than the header",
			data:     "prompt,size\na, b, c\nd,1x1\n",
			want:     []vals{{"prompt": "d", "size": "1x1"}},
			wantErrs: []string{"x.csv:2: row has 3 cells but the header has 2 columns"},
		},
		{
			name:      "empty lines and all-empty rows skipped",
			data:      "\n\nprompt,size\n\n,\n  ,  \na,\n\r\n",
			wantLines: []int{7},
			want:      []vals{{"prompt": "a", "size": ""}},
		},
		{
			name: "header only",
			data: "prompt,size\n",
		},
		{
			name:     "unnamed column: ignored when empty, error with a value",
			data:     "prompt,,style\na,,b\nc,d,e\n",
			want:     []vals{{"prompt": "a", "style": "b"}},
			wantErrs: []string{"x.csv:3: cell 2 has a value but its column has no header name"},
		},
		{
			name:     "NUL byte after the sniffed start is a row error",
			data:     "prompt,n\n" + strings.Repeat("filler,1\n", 1200) + "bad\x00,1\nok,2\n",
			wantErrs: []string{"x.csv:1202: column 1 (prompt): NUL byte"},
		},
		{
			name:     "invalid UTF-8 is reported, not replaced",
			data:     "prompt,style\nok,x\ncaf\xe9,y\n",
			want:     []vals{{"prompt": "ok", "style": "x"}},
			wantErrs: []string{"x.csv:3: column 1 (prompt): invalid UTF-8 (byte 0xE9)"},
		},
		{
			name:     "long record is a row error and reading resumes",
			data:     "prompt,n\n" + strings.Repeat("x", 200) + ",1\nok,2\n",
			opt:      Options{MaxRecordBytes: 100},
			want:     []vals{{"prompt": "ok", "n": "2"}},
			wantErrs: []string{"x.csv:2: record is longer than 100 bytes"},
		},
		{
			name:      "long record with a quoted newline resynchronises",
			data:      "prompt,n\n" + strings.Repeat("x", 200) + ",\"a\nb\"\nok,2\n",
			opt:       Options{MaxRecordBytes: 100},
			wantLines: []int{4},
			want:      []vals{{"prompt": "ok", "n": "2"}},
			wantErrs:  []string{"x.csv:2: record is longer than 100 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := readString(t, "x.csv", tt.data, tt.opt)
			if got.fatal == nil && got.format != FormatCSV {
				t.Errorf("format = %q, want csv", got.format)
			}
			if tt.want == nil && len(tt.wantErrs) == 0 && tt.name != "header only" {
				t.Fatal("test case has no expectations")
			}
			// The NUL case has 1200 good rows before the bad one.
			if strings.HasPrefix(tt.name, "NUL") {
				if len(got.rows) != 1201 {
					t.Errorf("got %d rows, want 1201", len(got.rows))
				}
				got.rows = nil
			}
			checkResult(t, got, tt.wantLines, tt.want, tt.wantErrs)
		})
	}
}

func TestCSVFatal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		opt     Options
		wantIs  error
		wantMsg string
	}{
		{name: "empty", data: "", wantIs: ErrEmpty},
		{name: "blank lines only", data: "\n\r\n  \n", wantIs: ErrEmpty},
		{name: "BOM only", data: "\uFEFF", wantIs: ErrEmpty},
		{name: "duplicate alias", data: "Prompt,size,text\n", wantIs: ErrHeader,
			wantMsg: `duplicate column "prompt": column 1 ("Prompt") and column 3 ("text")`},
		{name: "duplicate variable", data: "prompt,city,city\n", wantIs: ErrHeader, wantMsg: `column 2 ("city") and column 3 ("city")`},
		{name: "too many columns", data: strings.Repeat("c,", 20) + "prompt\n", opt: Options{MaxColumns: 10},
			wantIs: ErrHeader, wantMsg: "more than 10 columns"},
		{name: "header too long", data: strings.Repeat("h", 300) + "\n", opt: Options{MaxRecordBytes: 100},
			wantIs: ErrHeader, wantMsg: "longer than 100 bytes"},
		{name: "invalid UTF-8 header", data: "pr\xffompt\nx\n", wantIs: ErrHeader, wantMsg: "invalid UTF-8"},
		{name: "binary garbage", data: "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", wantIs: ErrNotText, wantMsg: "NUL byte at offset 8"},
		{name: "xlsx", data: "PK\x03\x04\x14\x00\x06\x00", wantIs: ErrNotText, wantMsg: "xlsx"},
		{name: "runaway quote", data: "prompt,n\n\"" + strings.Repeat("a,b\n", 100) + "\nok,1\n",
			opt: Options{MaxRecordBytes: 100}, wantIs: ErrRecordTooLong, wantMsg: "x.csv: line 2, column 1"},
		{name: "bad delimiter option", data: "prompt\n", opt: Options{Delimiter: '"'}, wantMsg: "unusable CSV delimiter"},
		{name: "unknown format", data: "prompt\n", opt: Options{Format: "xml"}, wantMsg: "unknown input format"},
		{name: "manifest required", data: "prompt\n", opt: Options{Format: FormatManifest}, wantMsg: "not a bulkgen manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := readString(t, "x.csv", tt.data, tt.opt)
			if got.fatal == nil {
				t.Fatalf("no fatal error; rows %v, row errors %q", got.rows, got.errs)
			}
			if tt.wantIs != nil && !errors.Is(got.fatal, tt.wantIs) {
				t.Errorf("error %q is not %v", got.fatal, tt.wantIs)
			}
			if !strings.Contains(got.fatal.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", got.fatal, tt.wantMsg)
			}
			var re *RowError
			if errors.As(got.fatal, &re) {
				t.Errorf("fatal error %q must not be a *RowError", got.fatal)
			}
		})
	}
}

func TestCSVHeaderInfo(t *testing.T) {
	t.Parallel()
	rd, err := Open("in.csv", strings.NewReader("City, Prompt ,opt.steps,,Mood\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rd.Header(), "|"), "City|prompt|opt.steps|Mood"; got != want {
		t.Errorf("Header() = %q, want %q", got, want)
	}
	if got, want := strings.Join(rd.Variables(), "|"), "City|Mood"; got != want {
		t.Errorf("Variables() = %q, want %q", got, want)
	}
	if !rd.HasPrompt() {
		t.Error("HasPrompt() = false, want true")
	}

	rd, err = Open("in.csv", strings.NewReader("city,mood\nParis,calm\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rd.HasPrompt() {
		t.Error("HasPrompt() = true for a CSV without a prompt column")
	}
	row, err := rd.Next()
	if err != nil || row.Values["city"] != "Paris" {
		t.Errorf("Next() = %v, %v; want city Paris", row, err)
	}
}

// A header with a million columns fails as soon as the limit is passed.
// (A data row with a million cells is in TestHostileSizesDoNotAllocate.)
func TestCSVMillionColumnHeader(t *testing.T) {
	t.Parallel()
	wide := strings.Repeat("a,", 1_000_000) + "a"
	got := readString(t, "wide.csv", wide+"\n", Options{MaxRecordBytes: 4 << 20})
	if !errors.Is(got.fatal, ErrHeader) || !strings.Contains(got.fatal.Error(), "more than 1000 columns") {
		t.Errorf("wide header: got %v, want ErrHeader with more than 1000 columns", got.fatal)
	}
}
