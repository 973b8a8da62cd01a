package input

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzRead drains a reader over data with small limits and checks the
// invariants every format shares: it ends, lines never go backwards, row
// values are valid UTF-8 without NUL, and row errors carry a position.
func fuzzRead(t *testing.T, name string, data []byte, opt Options) {
	opt.MaxRecordBytes = 512
	opt.MaxColumns = 16
	rd, err := Open(name, bytes.NewReader(data), opt)
	if err != nil {
		var re *RowError
		if errors.As(err, &re) {
			t.Fatalf("Open returned a *RowError: %v", err)
		}
		return
	}
	last := 0
	// Every Next consumes at least one byte or ends, so this bounds the loop.
	for i := 0; i <= len(data)+2; i++ {
		row, err := rd.Next()
		if err == io.EOF {
			return
		}
		var re *RowError
		if errors.As(err, &re) {
			if re.Line < 1 || re.Column < 0 || re.File != name {
				t.Fatalf("bad row error position: %+v", re)
			}
			continue
		}
		if err != nil {
			return // fatal errors are allowed; they must just be errors
		}
		if row.Line < last || row.Line < 1 {
			t.Fatalf("row line %d after %d", row.Line, last)
		}
		last = row.Line
		for k, v := range row.Values {
			if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(k) {
				t.Fatalf("row %d value %q=%q is not clean text", row.Line, k, v)
			}
		}
	}
	t.Fatalf("reader did not end after %d calls on %d bytes", len(data)+3, len(data))
}

func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"prompt,size\na,1x1\n",
		"prompt;n\r\n\"a\"\"b\";2\r\n",
		"prompt\n\"open",
		"prompt,x\n\"a\"junk,1\n",
		"\xff\xfep\x00r\x00o\x00m\x00p\x00t\x00\n\x00a\x00",
		"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r\n",
		"source_file,source_line,image_file,sha256,vars\na,1,b.png,0,\"{\"\"k\"\":1}\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, "f.csv", data, Options{Format: FormatCSV})
	})
}

func FuzzJSONL(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"a","n":2,"opt":{"steps":3}}`,
		"{\"prompt\":\"a\"}\r\n\r\n[1]\n",
		`{"source_file":"a","source_line":1,"image_file":"x.png","sha256":"","vars":"{\"k\":1}"}`,
		`{"a":{"b":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, "f.jsonl", data, Options{Format: FormatJSONL})
	})
}

// FuzzTXTOptions checks that the TXT line parser never panics, that the
// whole-file reader handles any input, and that whatever a line parses to
// comes back unchanged when written in fully quoted form.
func FuzzTXTOptions(f *testing.F) {
	for _, s := range []string{
		`a cat --negative "blurry, \"x\"" --seed 42 --aspect 3:2 --n 2`,
		`"quoted --prompt" --opt k=v --name='a b'`,
		`-- literal --seed`,
		`a —seed 3`,
		`x --seed=1 --size 1x1 --model m --quality q --format png --style s`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fuzzRead(t, "f.txt", []byte(line), Options{Format: FormatTXT})
		if strings.ContainsAny(line, "\r\n") {
			return
		}
		vals, perr := ParseTXTLine(line)
		if perr != nil {
			if perr.Column < 1 || perr.Column > len(line)+1 {
				t.Fatalf("error column %d outside the line (len %d): %v", perr.Column, len(line), perr)
			}
			return
		}
		if strings.TrimSpace(vals[FieldPrompt]) == "" {
			t.Fatalf("parsed %q without a prompt: %q", line, vals)
		}
		again, perr := ParseTXTLine(quoteTXT(vals))
		if perr != nil {
			t.Fatalf("re-parsing %q (from %q): %v", quoteTXT(vals), line, perr)
		}
		if !equalVals(again, vals) {
			t.Fatalf("round trip of %q: got %q, want %q", line, again, vals)
		}
	})
}

// quoteTXT writes values as a TXT line with every value double-quoted.
func quoteTXT(vals map[string]string) string {
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		if k != FieldPrompt {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(q(vals[FieldPrompt]))
	for _, k := range keys {
		if opt, ok := strings.CutPrefix(k, OptPrefix); ok {
			b.WriteString(" --opt " + q(opt+"="+vals[k]))
			continue
		}
		b.WriteString(" --" + k + " " + q(vals[k]))
	}
	return b.String()
}
