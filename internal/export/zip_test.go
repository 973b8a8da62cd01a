package export

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSafeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, ext, want string
	}{
		{"plain", "cat", "png", "cat.png"},
		{"folder", "animals/cat", ".jpg", "animals/cat.jpg"},
		{"parent", "../../etc/passwd", "png", "etc/passwd.png"},
		{"parent inside", "a/../b", "png", "a/b.png"},
		{"absolute", "/etc/passwd", "png", "etc/passwd.png"},
		{"backslash", `..\..\windows\system32`, "png", "windows/system32.png"},
		{"dots only", "..", "png", "image.png"},
		{"empty", "", "webp", "image.webp"},
		{"hidden", ".bashrc", "png", "bashrc.png"},
		{"double dots in segment", "a..b", "png", "a.b.png"},
		{"ext traversal", "cat", "../png", "cat._png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := SafeName(tt.in, tt.ext)
			if got != tt.want {
				t.Errorf("SafeName(%q, %q) = %q, want %q", tt.in, tt.ext, got, tt.want)
			}
			if err := CheckName(got); err != nil {
				t.Errorf("CheckName(%q): %v", got, err)
			}
		})
	}
}

func TestSafeNameLong(t *testing.T) {
	t.Parallel()
	got := SafeName(strings.Repeat("é", 500), "png")
	if len(got) > maxNameLen || !strings.HasSuffix(got, ".png") {
		t.Fatalf("SafeName of a long name = %q (%d bytes), want at most %d bytes ending .png", got, len(got), maxNameLen)
	}
	if err := CheckName(got); err != nil {
		t.Fatal(err)
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "../x", "a/../b", "/abs", `a\b`, "a//b", "dir/", "c:x", "a\x00b"} {
		if CheckName(bad) == nil {
			t.Errorf("CheckName(%q) = nil, want an error", bad)
		}
	}
	for _, good := range []string{"a.png", "a/b/c.jpg", "manifest.csv"} {
		if err := CheckName(good); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", good, err)
		}
	}
}

func TestNamer(t *testing.T) {
	t.Parallel()
	n := NewNamer("manifest.csv")
	var got []string
	for _, in := range []struct{ name, ext string }{
		{"cat", "png"}, {"cat", "png"}, {"Cat", "png"}, {"cat", "jpg"}, {"manifest", "csv"}, {"a/b", "png"}, {"a/b", "png"}, {"noext", ""}, {"noext", ""},
	} {
		got = append(got, n.Name(in.name, in.ext))
	}
	want := []string{"cat.png", "cat-2.png", "Cat-3.png", "cat.jpg", "manifest-2.csv", "a/b.png", "a/b-2.png", "noext", "noext-2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("names = %q, want %q", got, want)
	}
}

func TestZipRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	z := NewZip(&buf)
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	img := bytes.Repeat([]byte("\x89PNG not really"), 1000)
	if n, err := z.Store("dir/a.png", mod, bytes.NewReader(img)); err != nil || n != int64(len(img)) {
		t.Fatalf("Store = %d, %v; want %d, nil", n, err, len(img))
	}
	if _, err := z.Store("../evil.png", mod, strings.NewReader("x")); err == nil {
		t.Fatal("Store accepted ../evil.png")
	}
	w, err := z.Deflate("manifest.csv", mod)
	if err != nil {
		t.Fatal(err)
	}
	csv := strings.Repeat("a,b,c\r\n", 500)
	if _, err := io.WriteString(w, csv); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}

	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	wantMethod := map[string]uint16{"dir/a.png": zip.Store, "manifest.csv": zip.Deflate}
	wantBody := map[string]string{"dir/a.png": string(img), "manifest.csv": csv}
	if len(zr.File) != 2 {
		t.Fatalf("got %d entries, want 2", len(zr.File))
	}
	for _, f := range zr.File {
		if f.Method != wantMethod[f.Name] {
			t.Errorf("%s: method %d, want %d", f.Name, f.Method, wantMethod[f.Name])
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != wantBody[f.Name] {
			t.Errorf("%s: content differs (err %v)", f.Name, err)
		}
		if !f.Modified.Equal(mod) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, mod)
		}
	}
}

// FuzzSafeName checks that no input name yields an entry that escapes the
// extraction folder: every result passes CheckName and, written through an
// os.Root, lands inside it.
func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"cat", "../../x", `..\..\x`, "/abs", "a/./b", "....//....//x", "con", "a\x00b", "é/ü"} {
		f.Add(s, "png")
	}
	dir := f.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	f.Fuzz(func(t *testing.T, name, ext string) {
		got := SafeName(name, ext)
		if err := CheckName(got); err != nil {
			t.Fatalf("SafeName(%q, %q) = %q: %v", name, ext, got, err)
		}
		if !filepath.IsLocal(filepath.FromSlash(got)) {
			t.Fatalf("SafeName(%q, %q) = %q is not local", name, ext, got)
		}
		if d := filepath.Dir(filepath.FromSlash(got)); d != "." {
			if err := root.MkdirAll(d, 0o750); err != nil {
				t.Fatalf("MkdirAll(%q) in root: %v", d, err)
			}
		}
	})
}
