package input

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// writeRows writes a CSV of n short rows to w and closes it. Rows are kept
// short so the test stays quick under -race; retaining them would still
// cost far more than the bound below (each row's map is a few hundred bytes).
func writeRows(w *io.PipeWriter, n int) {
	b := []byte("prompt,seed,city\n")
	for i := range n {
		b = append(b, "fox "...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ",c"...)
		b = strconv.AppendInt(b, int64(i%100), 10)
		b = append(b, '\n')
		if len(b) > 32<<10 {
			if _, err := w.Write(b); err != nil {
				w.CloseWithError(err)
				return
			}
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	w.CloseWithError(err)
}

func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestStreamingMemory reads 200,000 rows through a pipe, so the reader never
// has the whole input, and checks that the heap does not grow with the
// number of rows read. The data is ~5 MB and the rows' maps over 50 MB, so
// retaining either would show; the bound is loose on purpose.
//
// Not parallel: other tests' allocations would blur the heap figures.
func TestStreamingMemory(t *testing.T) {
	const rows = 200_000
	pr, pw := io.Pipe()
	go writeRows(pw, rows)
	defer pr.Close()

	rd, err := Open("pipe.csv", pr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var after20k uint64
	n := 0
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("row %d: %v", n+1, err)
		}
		n++
		if want := strconv.Itoa(n - 1); row.Values["seed"] != want {
			t.Fatalf("row %d seed = %q, want %q", n, row.Values["seed"], want)
		}
		if row.Line != n+1 {
			t.Fatalf("row %d line = %d, want %d", n, row.Line, n+1)
		}
		if n == 20_000 {
			after20k = heapInuse()
		}
	}
	if n != rows {
		t.Fatalf("read %d rows, want %d", n, rows)
	}
	end := heapInuse()
	if end > after20k+4<<20 {
		t.Errorf("heap in use grew from %d to %d bytes between row 20,000 and row %d; rows are being retained", after20k, end, rows)
	}
}

// slowReader returns at most one byte per Read, the worst case for refills
// in the middle of quoted fields, CRLF pairs and multi-byte characters.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return s.r.Read(p)
}

// Reading byte by byte must give exactly what reading at once gives.
func TestByteAtATime(t *testing.T) {
	t.Parallel()
	inputs := []struct{ name, data string }{
		{"x.csv", "\uFEFFprompt;neg\r\n\"a\r\nb \"\"q\"\"\";  x  \r\rc;\"d\"  \n\"unterminated"},
		{"x.txt", "a --seed 1\r\n# c\r\r\n\"q --x\" --n 2\rlast"},
		{"x.jsonl", "{\"prompt\":\"é\"}\r\n\r\n{\"prompt\":1}"},
		{"m.csv", "source_file,source_line,image_file,sha256,prompt\r\na,1,b.png,0,\"p\r\nq\"\r\n"},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			whole := readString(t, in.name, in.data, Options{})
			slow := readAll(t, in.name, slowReader{strings.NewReader(in.data)}, Options{})
			if whole.fatal != nil || slow.fatal != nil {
				t.Fatalf("fatal errors: %v / %v", whole.fatal, slow.fatal)
			}
			if fmt.Sprint(whole.rows) != fmt.Sprint(slow.rows) || fmt.Sprint(whole.errs) != fmt.Sprint(slow.errs) {
				t.Errorf("byte-at-a-time differs:\nwhole %v %q\nslow  %v %q", whole.rows, whole.errs, slow.rows, slow.errs)
			}
			if len(whole.rows) == 0 {
				t.Error("no rows read")
			}
		})
	}
}

// A reader that fails mid-way makes Next return a fatal error, not EOF.
func TestReadError(t *testing.T) {
	t.Parallel()
	boom := fmt.Errorf("disk on fire")
	for _, name := range []string{"x.csv", "x.txt", "x.jsonl"} {
		head := "prompt\nfirst\n"
		if name == "x.jsonl" {
			head = "{\"prompt\":\"first\"}\n"
		}
		r := io.MultiReader(strings.NewReader(head), &errReader{boom})
		got := readAll(t, name, r, Options{})
		if got.fatal == nil || !strings.Contains(got.fatal.Error(), "disk on fire") {
			t.Errorf("%s: fatal = %v, want the read error", name, got.fatal)
		}
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// TestHostileSizesDoNotAllocate checks that a million-cell row and a 10 MB
// line are rejected without buffering them: the bytes allocated while
// reading stay far below the input size (per-cell bookkeeping alone would
// be 8 MB for the wide row).
//
// Not parallel: TotalAlloc is process-wide.
func TestHostileSizesDoNotAllocate(t *testing.T) {
	tests := []struct {
		name, file, data string
		opt              Options
		wantErr          string
	}{
		{
			name: "million cells", file: "wide.csv",
			data:    "prompt,n\n" + strings.Repeat("a,", 1_000_000) + "a\nok,1\n",
			opt:     Options{MaxRecordBytes: 4 << 20},
			wantErr: "row has 1000001 cells",
		},
		{
			name: "10 MB line", file: "big.txt",
			data:    "before\n" + strings.Repeat("z", 10<<20) + "\nafter\n",
			wantErr: "line is longer than",
		},
		{
			name: "10 MB unquoted CSV record", file: "big.csv",
			data:    "prompt\n" + strings.Repeat("z", 10<<20) + "\nafter\n",
			wantErr: "record is longer than",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			got := readString(t, tt.file, tt.data, tt.opt)
			runtime.ReadMemStats(&after)
			if len(got.errs) != 1 || !strings.Contains(got.errs[0], tt.wantErr) {
				t.Errorf("row errors %q, want one containing %q", got.errs, tt.wantErr)
			}
			if len(got.rows) == 0 {
				t.Error("the row after the hostile one was not read")
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
				t.Errorf("allocated %d bytes reading %d bytes of input; want under 4 MiB", n, len(tt.data))
			}
		})
	}
}

func TestUTF16Reader(t *testing.T) {
	t.Parallel()
	le := func(units ...uint16) string {
		var b []byte
		for _, u := range units {
			b = append(b, byte(u), byte(u>>8))
		}
		return string(b)
	}
	tests := []struct {
		name string
		in   string
		big  bool
		want string
	}{
		{name: "surrogate pair", in: le('a', 0xD83C, 0xDFDB, 'b'), want: "a🏛b"},
		{name: "big endian", in: "\x00a\xd8\x3c\xdf\xdb", big: true, want: "a🏛"},
		{name: "lone low surrogate", in: le('a', 0xDFDB, 'b'), want: "a\uFFFDb"},
		{name: "high then letter", in: le(0xD83C, 'b'), want: "\uFFFDb"},
		{name: "two highs", in: le(0xD83C, 0xD83C, 0xDFDB), want: "\uFFFD🏛"},
		{name: "high at end", in: le('a', 0xD83C), want: "a\uFFFD"},
		{name: "odd byte at end", in: le('a') + "x", want: "a\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, slow := range []bool{false, true} {
				var src io.Reader = strings.NewReader(tt.in)
				if slow {
					src = slowReader{src}
				}
				got, err := io.ReadAll(newUTF16Reader(src, tt.big))
				if err != nil || string(got) != tt.want {
					t.Errorf("slow=%v: got %q, %v; want %q", slow, got, err, tt.want)
				}
			}
		})
	}
}
