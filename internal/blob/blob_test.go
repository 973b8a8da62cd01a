package blob_test

import (
	"errors"
	"path"
	"strings"
	"testing"

	"bulkgen/internal/blob"
)

const sum = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

func TestKeyFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, sum, ext, want string
	}{
		{"png", sum, "png", "ab/" + strings.ToLower(sum) + ".png"},
		{"dot ext", sum, ".webp", "ab/" + strings.ToLower(sum) + ".webp"},
		{"short sum", sum[:63], "png", ""},
		{"not hex", "zz" + sum[2:], "png", ""},
		{"empty ext", sum, "", ""},
		{"ext with slash", sum, "png/../x", ""},
		{"upper ext", sum, "PNG", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := blob.KeyFor(tt.sum, tt.ext)
			if got != tt.want {
				t.Errorf("KeyFor(%q, %q) = %q, want %q", tt.sum, tt.ext, got, tt.want)
			}
			if got != "" {
				if err := blob.ValidateKey(got); err != nil {
					t.Errorf("ValidateKey(KeyFor(…)) = %v, want nil", err)
				}
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		ok  bool
	}{
		{"ab/cd/x.png", true},
		{"exports/2025-01-01_batch-7.zip", true},
		{"a", true},
		{"", false},
		{"/abs", false},
		{"../x", false},
		{"a/../../b", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{".hidden", false},
		{"a/.tmp-123", false},
		{`a\b`, false},
		{"a b", false},
		{"a/b\x00", false},
		{"é.png", false},
		{strings.Repeat("a", blob.MaxKeyLen+1), false},
	}
	for _, tt := range tests {
		err := blob.ValidateKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
		if err != nil && !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want it to wrap ErrInvalidKey", tt.key, err)
		}
	}
}

// FuzzValidateKey checks that an accepted key is always a clean relative
// path inside its root.
func FuzzValidateKey(f *testing.F) {
	for _, k := range []string{"ab/cd/x.png", "../x", "/abs", "a/../../b", "a//b", ".x", "a/b/c"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if blob.ValidateKey(key) != nil {
			return
		}
		if path.Clean(key) != key || path.IsAbs(key) || key == ".." || strings.HasPrefix(key, "../") || strings.Contains(key, `\`) {
			t.Errorf("ValidateKey accepted %q, which is not a clean relative path", key)
		}
	})
}
