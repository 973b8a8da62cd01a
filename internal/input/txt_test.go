package input

import (
	"strings"
	"testing"
)

func TestParseTXTLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line    string
		want    vals
		wantCol int    // for errors
		wantErr string // substring
	}{
		{line: "a cat", want: vals{"prompt": "a cat"}},
		{line: "  a cat on a mat  ", want: vals{"prompt": "a cat on a mat"}},
		{
			line: `a lighthouse --negative "blurry, text" --seed 42 --aspect 3:2 --n 2`,
			want: vals{"prompt": "a lighthouse", "negative_prompt": "blurry, text", "seed": "42", "aspect_ratio": "3:2", "n": "2"},
		},
		{
			line: `x --size 1024x1024 --model flux --quality high --format png --style vivid --name out/cat --opt steps=30 --opt cfg=7.5`,
			want: vals{"prompt": "x", "size": "1024x1024", "model": "flux", "quality": "high", "format": "png",
				"style": "vivid", "name": "out/cat", "opt.steps": "30", "opt.cfg": "7.5"},
		},
		{line: `x --seed=7 --negative='no "text"'`, want: vals{"prompt": "x", "seed": "7", "negative_prompt": `no "text"`}},
		{line: `x --negative "say \"hi\" C:\new \\ end"`, want: vals{"prompt": "x", "negative_prompt": `say "hi" C:\new \ end`}},
		{line: `x --negative ""`, want: vals{"prompt": "x", "negative_prompt": ""}},
		{line: `x --ar 16:9 --count 3 --negative-prompt no`, want: vals{"prompt": "x", "aspect_ratio": "16:9", "n": "3", "negative_prompt": "no"}},
		{line: `x --seed -1`, want: vals{"prompt": "x", "seed": "-1"}},
		{line: `x --opt "sampler=euler a"`, want: vals{"prompt": "x", "opt.sampler": "euler a"}},
		{line: `x --opt key=`, want: vals{"prompt": "x", "opt.key": ""}},
		// Quoting the prompt, and the "-- " form, allow " --" in prompts.
		{line: `"a sign that says --stop--" --seed 1`, want: vals{"prompt": "a sign that says --stop--", "seed": "1"}},
		{line: `'it''s' --seed 1`, want: vals{"prompt": `'it''s'`, "seed": "1"}},
		{line: `"a \"quoted\" --word"`, want: vals{"prompt": `a "quoted" --word`}},
		{line: `-- a sign that says --stop-- --seed 1`, want: vals{"prompt": "a sign that says --stop-- --seed 1"}},
		// A leading quote that does not enclose the prompt is just text.
		{line: `"Hello" written on a wall --seed 2`, want: vals{"prompt": `"Hello" written on a wall`, "seed": "2"}},
		{line: `a 12" vinyl --n 1`, want: vals{"prompt": `a 12" vinyl`, "n": "1"}},
		{line: `a--b and x-- y`, want: vals{"prompt": "a--b and x-- y"}},
		{line: `a cat, em—dash`, want: vals{"prompt": "a cat, em—dash"}},

		// Errors: never silently a prompt.
		{line: `a cat --sed 4`, wantCol: 7, wantErr: "unknown option --sed"},
		{line: `a cat --prompt x`, wantCol: 7, wantErr: "unknown option --prompt"},
		{line: `a cat --seed`, wantCol: 7, wantErr: "--seed needs a value"},
		{line: `a cat --seed --n 2`, wantErr: "--seed needs a value"},
		{line: `a cat --seed= 4`, wantErr: "--seed needs a value"},
		{line: `a cat --seed 1 --seed 2`, wantCol: 16, wantErr: "--seed is given twice"},
		{line: `a cat --aspect 1:1 --ar 2:3`, wantErr: "--ar is given twice"},
		{line: `a cat --seed 1 extra words`, wantCol: 16, wantErr: "unexpected text after the options"},
		{line: `a cat -- more`, wantCol: 7, wantErr: `unexpected "--"`},
		{line: `a cat --negative "unclosed`, wantCol: 18, wantErr: "never closed"},
		{line: `a cat --negative "x"y`, wantCol: 21, wantErr: "text right after the closing quote"},
		{line: `"unclosed prompt --seed 1`, wantCol: 1, wantErr: "never closed"},
		{line: `"" --seed 1`, wantErr: "empty prompt"},
		{line: `--seed 4 a cat`, wantCol: 1, wantErr: "missing prompt"},
		{line: `--`, wantErr: "empty prompt"},
		{line: `a cat --opt steps`, wantErr: "--opt needs key=value"},
		{line: `a cat --opt "bad key=1"`, wantErr: "--opt needs key=value"},
		{line: `a cat --opt s=1 --opt s=2`, wantErr: "--opt is given twice"},
		{line: `a cat —seed 4`, wantCol: 7, wantErr: "long dash"},
		{line: `a cat –negative blurry`, wantErr: "long dash"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTXTLine(tt.line)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %q, want error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Msg, tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err.Msg, tt.wantErr)
				}
				if tt.wantCol != 0 && err.Column != tt.wantCol {
					t.Errorf("error column %d, want %d", err.Column, tt.wantCol)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !equalVals(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTXTReader(t *testing.T) {
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
			name:      "comments, blanks and line numbers",
			data:      "# header comment\n\na cat\n   # indented comment\n  \t \na dog --seed 3\n",
			wantLines: []int{3, 6},
			want:      []vals{{"prompt": "a cat"}, {"prompt": "a dog", "seed": "3"}},
		},
		{
			name:      "CRLF, lone CR and no final newline",
			data:      "one\r\ntwo\rthree\nfour",
			wantLines: []int{1, 2, 3, 4},
			want:      []vals{{"prompt": "one"}, {"prompt": "two"}, {"prompt": "three"}, {"prompt": "four"}},
		},
		{
			name:      "bad lines are errors and reading goes on",
			data:      "ok\nbad --sed 1\n  x --n\nfine\n",
			wantLines: []int{1, 4},
			want:      []vals{{"prompt": "ok"}, {"prompt": "fine"}},
			wantErrs:  []string{"p.txt:2:5: unknown option --sed", "p.txt:3:5: --n needs a value"},
		},
		{
			name:     "long line is skipped",
			data:     "short\n" + strings.Repeat("y", 500) + " --seed 1\nafter\n",
			opt:      Options{MaxRecordBytes: 64},
			want:     []vals{{"prompt": "short"}, {"prompt": "after"}},
			wantErrs: []string{"p.txt:2: line is longer than 64 bytes"},
		},
		{
			name:     "invalid UTF-8 and NUL",
			data:     strings.Repeat("# pad\n", 2000) + "caf\xc3\n1\x002\ngood\n",
			want:     []vals{{"prompt": "good"}},
			wantErrs: []string{"p.txt:2001:4: invalid UTF-8", "p.txt:2002:2: NUL byte"},
		},
		{
			name: "prompt that looks like a CSV header stays TXT by extension",
			data: "prompt,size\n",
			want: []vals{{"prompt": "prompt,size"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := readString(t, "p.txt", tt.data, tt.opt)
			if got.fatal == nil && got.format != FormatTXT {
				t.Errorf("format = %q, want txt", got.format)
			}
			checkResult(t, got, tt.wantLines, tt.want, tt.wantErrs)
		})
	}
}

// A 10 MB single line is rejected with a row error without being buffered,
// and the following line is still read.
func TestTXTHugeLine(t *testing.T) {
	t.Parallel()
	data := "before\n" + strings.Repeat("z", 10<<20) + "\nafter\n"
	got := readString(t, "big.txt", data, Options{})
	checkResult(t, got, []int{1, 3}, []vals{{"prompt": "before"}, {"prompt": "after"}},
		[]string{"big.txt:2: line is longer than 1048576 bytes"})
}
