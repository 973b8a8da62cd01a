package catalog

import (
	"testing"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		w, h    int
		wantErr bool
	}{
		{"1024x1024", 1024, 1024, false},
		{"1536X1024", 1536, 1024, false},
		{"800*600", 800, 600, false},
		{"1920×1080", 1920, 1080, false},
		{" 640 x 480 ", 640, 480, false},
		{"", 0, 0, true},
		{"1024", 0, 0, true},
		{"1024x", 0, 0, true},
		{"x1024", 0, 0, true},
		{"0x512", 0, 0, true},
		{"-5x5", 0, 0, true},
		{"1024x1024x3", 0, 0, true},
		{"1e3x1e3", 0, 0, true},
		// Sizes no model makes still parse: the model's rule maps them
		// (Catalog.Check), and the numbers stop growing at maxParsed.
		{"99999999999999999999x1", maxParsed, 1, false},
		{"65537x1", 65537, 1, false},
		{"99999x3", 99999, 3, false},
		{"0x0", 0, 0, true},
		{"16:9", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			w, h, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSize(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if w != tt.w || h != tt.h {
				t.Fatalf("ParseSize(%q) = %dx%d, want %dx%d", tt.in, w, h, tt.w, tt.h)
			}
		})
	}
}

func TestParseRatio(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		w, h    int
		wantErr bool
	}{
		{"16:9", 16, 9, false},
		{"1:1", 1, 1, false},
		{"32:18", 32, 18, false},
		{"3/2", 3, 2, false},
		{" 21 : 9 ", 21, 9, false},
		{"", 0, 0, true},
		{"16", 0, 0, true},
		{"16:", 0, 0, true},
		{"0:1", 0, 0, true},
		{"1.78", 0, 0, true},
		{"1024x768", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			w, h, err := ParseRatio(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRatio(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if w != tt.w || h != tt.h {
				t.Fatalf("ParseRatio(%q) = %d:%d, want %d:%d", tt.in, w, h, tt.w, tt.h)
			}
		})
	}
}

func TestFreeSizeFit(t *testing.T) {
	t.Parallel()
	gpt := &FreeSize{MinEdge: 256, MaxEdge: 3840, MultipleOf: 16, MaxPixels: 8294400,
		MinAspect: 1.0 / 3, MaxAspect: 3, MinAspectText: "1:3", MaxAspectText: "3:1"}
	tests := []struct {
		name string
		f    *FreeSize
		w, h int
		want Size
	}{
		{"allowed kept", gpt, 1536, 1024, Size{1536, 1024}},
		{"rounded to multiple", gpt, 1920, 1080, Size{1920, 1088}},
		{"too big scaled down", gpt, 7680, 4320, Size{3840, 2160}},
		{"too wide clamped to 3:1, area kept", gpt, 4000, 500, Size{2448, 816}},
		{"too small scaled up", gpt, 100, 100, Size{256, 256}},
		{"max edge", &FreeSize{MinEdge: 256, MaxEdge: 1440, MultipleOf: 32}, 2000, 1000, Size{1440, 736}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, h := tt.f.Fit(tt.w, tt.h)
			if got := (Size{w, h}); got != tt.want {
				t.Fatalf("Fit(%dx%d) = %v, want %v", tt.w, tt.h, got, tt.want)
			}
			if !tt.f.Allows(w, h) {
				t.Fatalf("Fit(%dx%d) = %dx%d, which the rule does not allow", tt.w, tt.h, w, h)
			}
		})
	}
}

// TestFitAlwaysAllowed checks, for every free-size model in the default
// catalogue and a grid of awkward requests, that Fit lands inside the rule
// and that SizeForRatio does too.
func TestFitAlwaysAllowed(t *testing.T) {
	t.Parallel()
	c := mustDefault(t)
	edges := []int{1, 7, 63, 64, 100, 255, 511, 512, 777, 1000, 1023, 1080, 1440, 1920, 2049, 3000, 4097, 9000, 65536}
	for _, m := range append(c.Models(), c.dynamic["replicate"]) {
		if m.Free == nil {
			continue
		}
		for _, w := range edges {
			for _, h := range edges {
				fw, fh := m.Free.Fit(w, h)
				if !m.Free.Allows(fw, fh) {
					t.Errorf("%s: Fit(%dx%d) = %dx%d, not allowed by %s", m.ID, w, h, fw, fh, m.Free.Describe())
				}
			}
		}
		for _, r := range commonRatios {
			if !m.Free.aspectAllowed(r.w, r.h) {
				continue
			}
			s := m.Free.SizeForRatio(r.w, r.h, m.Megapixels)
			if !m.Free.Allows(s.W, s.H) {
				t.Errorf("%s: SizeForRatio(%s) = %v, not allowed", m.ID, r.name, s)
			}
			if !aspectMatches(s.W, s.H, r.w, r.h) {
				t.Errorf("%s: SizeForRatio(%s) = %v, not that ratio", m.ID, r.name, s)
			}
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1024x1024", "16:9", "1x1", "65536x65536", "1920×1080", " 3 x 4 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, h, err := ParseSize(s)
		if err == nil && (w < 1 || h < 1 || w > maxParsed || h > maxParsed) {
			t.Fatalf("ParseSize(%q) = %dx%d without error", s, w, h)
		}
		rw, rh, err := ParseRatio(s)
		if err == nil && (rw < 1 || rh < 1 || rw > maxEdge || rh > maxEdge) {
			t.Fatalf("ParseRatio(%q) = %d:%d without error", s, rw, rh)
		}
	})
}
