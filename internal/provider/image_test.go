package provider_test

import (
	"errors"
	"testing"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/providertest"
)

func TestDecodeImage(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"png", "jpeg", "webp"} {
		data, err := providertest.TestImage(48, 20, format, 5)
		if err != nil {
			t.Fatal(err)
		}
		got, w, h, err := provider.DecodeImage(data)
		if err != nil || got != format || w != 48 || h != 20 {
			t.Errorf("%s: DecodeImage = %q %dx%d, %v", format, got, w, h, err)
		}
		img, err := provider.ImageFrom("p", data)
		if err != nil || img.Format != format || img.Width != 48 || img.Height != 20 || len(img.Data) != len(data) {
			t.Errorf("%s: ImageFrom = %s %dx%d, %v", format, img.Format, img.Width, img.Height, err)
		}
	}
}

func TestDecodeImageFailures(t *testing.T) {
	t.Parallel()
	png, err := providertest.TestImage(8, 8, "png", 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		data        []byte
		format      string
		unsupported bool
		class       provider.Class
	}{
		{"empty", nil, "", true, provider.Invalid},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), "gif", true, provider.Invalid},
		{"svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"), "", true, provider.Invalid},
		{"html error page", []byte("<html><body>502 Bad Gateway</body></html>"), "", true, provider.Invalid},
		{"truncated png", png[:20], "png", false, provider.Retryable},
		{"truncated jpeg", []byte("\xff\xd8\xff\xe0\x00"), "jpeg", false, provider.Retryable},
		{"truncated webp", []byte("RIFF\x10\x00\x00\x00WEBPVP8L"), "webp", false, provider.Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			format, _, _, err := provider.DecodeImage(tt.data)
			if err == nil {
				t.Fatalf("DecodeImage succeeded")
			}
			if format != tt.format {
				t.Errorf("format = %q, want %q", format, tt.format)
			}
			if errors.Is(err, provider.ErrUnsupportedImage) != tt.unsupported {
				t.Errorf("err = %v; wraps ErrUnsupportedImage = %v, want %v", err, !tt.unsupported, tt.unsupported)
			}
			_, err = provider.ImageFrom("p", tt.data)
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != tt.class || pe.Provider != "p" {
				t.Errorf("ImageFrom err = %v, want a %s *provider.Error of p", err, tt.class)
			}
		})
	}
}

func FuzzDecodeImage(f *testing.F) {
	for _, format := range []string{"png", "jpeg", "webp"} {
		data, err := providertest.TestImage(3, 2, format, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		format, w, h, err := provider.DecodeImage(data)
		if err == nil && (w <= 0 || h <= 0 || format == "") {
			t.Errorf("DecodeImage = %q %dx%d without an error", format, w, h)
		}
	})
}
