package input

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// result is everything a Reader produced, for comparisons.
type result struct {
	format string
	rows   []Row
	errs   []string // row errors as formatted by RowError.Error
	fatal  error    // from Open or Next
}

// readAll opens data and drains the reader, failing the test if it does not
// end within a bound (a reader must always make progress).
func readAll(tb testing.TB, name string, r io.Reader, opt Options) result {
	tb.Helper()
	rd, err := Open(name, r, opt)
	if err != nil {
		return result{fatal: err}
	}
	res := result{format: rd.Format()}
	for i := 0; ; i++ {
		if i > 1_000_000 {
			tb.Fatalf("reader did not reach the end after %d calls", i)
		}
		row, err := rd.Next()
		if err == io.EOF {
			return res
		}
		var re *RowError
		if errors.As(err, &re) {
			res.errs = append(res.errs, re.Error())
			continue
		}
		if err != nil {
			res.fatal = err
			// A fatal error is sticky.
			if _, again := rd.Next(); again != err {
				tb.Errorf("second Next after fatal error returned %v, want the same error", again)
			}
			return res
		}
		res.rows = append(res.rows, row)
	}
}

func readString(tb testing.TB, name, data string, opt Options) result {
	tb.Helper()
	return readAll(tb, name, strings.NewReader(data), opt)
}

// vals is shorthand for a row's expected values.
type vals = map[string]string

// checkRows compares rows (line and values) with want, and the row errors
// with wantErrs (substring match, in order).
func checkResult(tb testing.TB, got result, wantLines []int, want []vals, wantErrs []string) {
	tb.Helper()
	if got.fatal != nil {
		tb.Fatalf("unexpected fatal error: %v", got.fatal)
	}
	if len(got.rows) != len(want) {
		tb.Errorf("got %d rows, want %d: %+v (errors %q)", len(got.rows), len(want), got.rows, got.errs)
	}
	for i := range min(len(got.rows), len(want)) {
		if !equalVals(got.rows[i].Values, want[i]) {
			tb.Errorf("row %d values = %q, want %q", i, got.rows[i].Values, want[i])
		}
		if wantLines != nil && got.rows[i].Line != wantLines[i] {
			tb.Errorf("row %d line = %d, want %d", i, got.rows[i].Line, wantLines[i])
		}
	}
	if len(got.errs) != len(wantErrs) {
		tb.Errorf("got row errors %q, want %d matching %q", got.errs, len(wantErrs), wantErrs)
		return
	}
	for i, w := range wantErrs {
		if !strings.Contains(got.errs[i], w) {
			tb.Errorf("row error %d = %q, want it to contain %q", i, got.errs[i], w)
		}
	}
}

func equalVals(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
