package expand

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func openWildcards(tb testing.TB, dir string) *Wildcards {
	tb.Helper()
	w, err := NewWildcards(dir)
	if err != nil {
		tb.Fatalf("NewWildcards(%q): %v", dir, err)
	}
	tb.Cleanup(func() { _ = w.Close() })
	return w
}

func TestWildcardLines(t *testing.T) {
	t.Parallel()
	w := openWildcards(t, "testdata/wildcards")
	tests := []struct {
		name     string
		want     []string
		wantErr  string
		notExist bool
	}{
		{name: "color", want: []string{"red", "green", "blue"}},
		{name: "animals/cat", want: []string{"tabby", "siamese"}},
		{name: "missing", notExist: true},
		{name: "empty", wantErr: "no options"},
		{name: "../secret", wantErr: "bad wildcard name"},
		{name: "animals/../../secret", wantErr: "bad wildcard name"},
		{name: "/etc/passwd", wantErr: "bad wildcard name"},
		{name: "color.txt", wantErr: "bad wildcard name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := w.Lines(tt.name)
			switch {
			case tt.notExist:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("error = %v, want fs.ErrNotExist", err)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestWildcardsCannotEscapeBySymlink(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "wild")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside.txt"), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside.txt", filepath.Join(dir, "link.txt")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	w := openWildcards(t, dir)
	lines, err := w.Lines("link")
	if err == nil {
		t.Fatalf("read %q through a symlink leaving the directory", lines)
	}
}

func TestWildcardFileSizeCap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := strings.Repeat("word\n", MaxWildcardFile/5+1) // just over the cap
	if err := os.WriteFile(filepath.Join(dir, "big.txt"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	w := openWildcards(t, dir)
	if _, err := w.Lines("big"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error = %v, want the size cap", err)
	}
}

func TestWildcardsAreCached(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "x.txt")
	if err := os.WriteFile(path, []byte("\ufeffone\r\ntwo\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := openWildcards(t, dir)
	first, err := w.Lines("x")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"one", "two"}; !reflect.DeepEqual(first, want) {
		t.Fatalf("got %q, want %q (BOM and CR stripped)", first, want)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	again, err := w.Lines("x")
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Errorf("after removing the file: %q, %v; want the cached lines", again, err)
	}
}

func TestNewWildcardsMissingDir(t *testing.T) {
	t.Parallel()
	if _, err := NewWildcards(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %v, want fs.ErrNotExist", err)
	}
}

func TestExpandWithWildcards(t *testing.T) {
	t.Parallel()
	w := openWildcards(t, "testdata/wildcards")
	comb := &Expander{Combinatorial: true, Wildcards: w}
	got, err := collect(t, comb, "a __color__ __animals/cat__{| hat}", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range []string{"red", "green", "blue"} {
		for _, a := range []string{"tabby", "siamese"} {
			want = append(want, "a "+c+" "+a, "a "+c+" "+a+" hat")
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	tpl, _ := Parse("__color____color__")
	if n, err := (&Expander{Combinatorial: true, Wildcards: w, MaxImages: 8}).Count(tpl, nil); err != nil || n != 9 {
		var te *TooManyError
		if !errors.As(err, &te) || te.Count != 9 {
			t.Errorf("Count = %d, %v; want TooManyError with 9", n, err)
		}
	}

	// Seeded: always one of the lines, the same for the same seed, and
	// every line reachable.
	seeded := &Expander{Wildcards: w}
	seen := map[string]bool{}
	for seed := int64(0); seed < 100; seed++ {
		a, err := collect(t, seeded, "__color__", nil, seed)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := collect(t, seeded, "__color__", nil, seed)
		if a[0] != b[0] {
			t.Fatalf("seed %d: %q then %q", seed, a[0], b[0])
		}
		seen[a[0]] = true
	}
	if len(seen) != 3 || !seen["red"] || !seen["green"] || !seen["blue"] {
		t.Errorf("lines chosen: %v, want red, green and blue", seen)
	}
}

func TestExpandWildcardErrors(t *testing.T) {
	t.Parallel()
	w := openWildcards(t, "testdata/wildcards")
	tests := []struct {
		name string
		e    *Expander
		src  string
		is   error
	}{
		{name: "no directory", e: &Expander{}, src: "__color__", is: ErrNoWildcards},
		{name: "no directory combinatorial", e: &Expander{Combinatorial: true}, src: "__color__", is: ErrNoWildcards},
		{name: "missing file", e: &Expander{Wildcards: w}, src: "x __nope__", is: fs.ErrNotExist},
		// The missing file is in an alternative a seed might not choose;
		// it is an error all the same, so a batch fails in the plan.
		{name: "missing file in variant", e: &Expander{Wildcards: w}, src: "{x|__nope__}", is: fs.ErrNotExist},
		{name: "missing file combinatorial", e: &Expander{Combinatorial: true, Wildcards: w}, src: "__nope__", is: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := collect(t, tt.e, tt.src, nil, 0)
			if !errors.Is(err, tt.is) {
				t.Fatalf("Expand error = %v, want %v", err, tt.is)
			}
			if len(got) != 0 {
				t.Errorf("yielded %q before the error", got)
			}
			tpl, _ := Parse(tt.src)
			if _, err := tt.e.Count(tpl, nil); !errors.Is(err, tt.is) {
				t.Errorf("Count error = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), "__") {
				t.Errorf("message %q should name the wildcard", err)
			}
		})
	}
}
