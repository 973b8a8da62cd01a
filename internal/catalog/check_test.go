package catalog

import (
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	c := mustOverride(t, `{"models": [
		{"id": "test/nopng", "provider": "preview", "sizes": ["512x512"], "formats": ["webp", "jpeg"], "price": {"base": 1}}
	]}`)
	type want struct {
		w, h     int
		ratio    string
		quality  string
		format   string
		style    string
		n        int
		price    int64
		nominal  bool
		problems map[string][]string // field → substrings of its message
		warnings []string            // substrings, each in some warning
	}
	tests := []struct {
		name string
		spec Spec
		want want
	}{
		// Model.
		{"unknown model", Spec{Model: "gpt-image-3", Prompt: "x"},
			want{problems: map[string][]string{"model": {`unknown model "gpt-image-3"`, "openai/gpt-image-2"}}}},
		{"no model", Spec{Prompt: "x"},
			want{problems: map[string][]string{"model": {"no model given", "preview"}}}},
		{"retired model", Spec{Model: "dall-e-3", Prompt: "x"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "standard", style: "vivid", format: "png", n: 1, price: 40,
				problems: map[string][]string{"model": {"shut down on 2026-05-12", "use openai/gpt-image-2.6-sunburst"}}}},
		{"shutting down soon", Spec{Model: "gpt-image-1.5", Prompt: "x"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 34,
				warnings: []string{"shuts down on 2026-12-01", "openai/gpt-image-2.6-sunburst"}}},
		{"dynamic replicate", Spec{Model: "replicate:owner/model", Prompt: "x"},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, price: 10, warnings: []string{"generic limits"}}},

		// Prompt.
		{"empty prompt", Spec{Model: "gpt-image-1"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				problems: map[string][]string{"prompt": {"empty", "1 to 32000 characters"}}}},
		{"blank prompt", Spec{Model: "gpt-image-1", Prompt: " \t\n\u3000"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				problems: map[string][]string{"prompt": {"empty"}}}},
		{"prompt too long", Spec{Model: "gpt-image-1", Prompt: strings.Repeat("a", 32001)},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				problems: map[string][]string{"prompt": {"32001 characters", "at most 32000"}}}},
		{"long prompt counted in characters not bytes", Spec{Model: "gpt-image-1", Prompt: strings.Repeat("é", 32000)},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42}},
		{"no model limit: bulkgen's own", Spec{Model: "preview", Prompt: strings.Repeat("a", MaxPromptLength)},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1}},
		{"over bulkgen's own limit", Spec{Model: "preview", Prompt: strings.Repeat("é", MaxPromptLength+1)},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, problems: map[string][]string{"prompt": {"32001 characters", "at most 32000"}}}},
		{"negative prompt over the limit", Spec{Model: "preview", Prompt: "x", NegativePrompt: strings.Repeat("a", MaxPromptLength+1)},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, problems: map[string][]string{"negative_prompt": {"at most 32000"}}}},

		// Negative prompt and seed.
		{"negative prompt ignored", Spec{Model: "gpt-image-1", Prompt: "x", NegativePrompt: "blurry"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				warnings: []string{"ignores negative prompts"}}},
		{"negative prompt honoured", Spec{Model: "sd3.5-large", Prompt: "x", NegativePrompt: "blurry"},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, price: 65, nominal: true}},
		{"seed ignored", Spec{Model: "gpt-image-1", Prompt: "x", HasSeed: true},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				warnings: []string{"ignores seeds"}}},
		{"seed honoured", Spec{Model: "preview", Prompt: "x", HasSeed: true, NegativePrompt: "n"},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1}},

		// Sizes.
		{"exact size", Spec{Model: "gpt-image-1", Prompt: "x", Size: "1536x1024"},
			want{w: 1536, h: 1024, ratio: "3:2", quality: "medium", format: "png", n: 1, price: 63}},
		{"exact size as numbers", Spec{Model: "gemini-3-pro-image", Prompt: "x", Width: 2752, Height: 1536},
			want{w: 2752, h: 1536, ratio: "16:9", format: "png", n: 1, price: 134}},
		{"size mapped to nearest", Spec{Model: "gemini-3.1-flash-image", Prompt: "x", Size: "1920x1080"},
			want{w: 1376, h: 768, ratio: "16:9", format: "png", n: 1, price: 67,
				warnings: []string{"1920x1080", "using 1376x768", "supported: 1024x1024"}}},
		{"portrait stays portrait", Spec{Model: "gpt-image-1", Prompt: "x", Size: "1000x1400"},
			want{w: 1024, h: 1536, ratio: "2:3", quality: "medium", format: "png", n: 1, price: 63,
				warnings: []string{"1000x1400", "1024x1536"}}},
		{"square stays square", Spec{Model: "gpt-image-1", Prompt: "x", Size: "700x700"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				warnings: []string{"700x700", "1024x1024"}}},
		{"closest area among equal aspects", Spec{Model: "dall-e-2", Prompt: "x", Size: "600x600"},
			want{w: 512, h: 512, ratio: "1:1", quality: "standard", format: "png", n: 1, price: 18,
				problems: map[string][]string{"model": {"shut down"}}, warnings: []string{"using 512x512"}}},
		{"ratio-only model maps size to nearest ratio", Spec{Model: "sd3.5-large", Prompt: "x", Size: "1920x800"},
			want{w: 1568, h: 672, ratio: "21:9", format: "png", n: 1, price: 65, nominal: true,
				warnings: []string{"1920x800", "21:9"}}},
		{"free size kept", Spec{Model: "gpt-image-2", Prompt: "x", Size: "2048x1152"},
			want{w: 2048, h: 1152, ratio: "16:9", quality: "medium", format: "png", n: 1, price: 100}},
		{"free size rounded to multiple", Spec{Model: "gpt-image-2", Prompt: "x", Size: "1920x1080"},
			want{w: 1920, h: 1088, ratio: "16:9", quality: "medium", format: "png", n: 1, price: 100,
				warnings: []string{"1920x1080", "using 1920x1088", "multiples of 16"}}},
		{"free size too large", Spec{Model: "gpt-image-2", Prompt: "x", Size: "7680x4320"},
			want{w: 3840, h: 2160, ratio: "16:9", quality: "medium", format: "png", n: 1, price: 200,
				warnings: []string{"using 3840x2160"}}},
		// One rule for every size, the model's: far too large or too small
		// is mapped with the same warning as any other size it does not
		// make (99999x3 used to be a hard "edges must be 1..65536").
		{"far too large for a free-size model", Spec{Model: "preview", Prompt: "x", Size: "99999x3"},
			want{w: 4096, h: 8, ratio: "512:1", format: "png", n: 1,
				warnings: []string{"size 99999x3 is not supported by preview; using 4096x8; supported: any WxH with edges 8..4096"}}},
		{"too large for a free-size model", Spec{Model: "preview", Prompt: "x", Size: "5000x5000"},
			want{w: 4096, h: 4096, ratio: "1:1", format: "png", n: 1,
				warnings: []string{"size 5000x5000 is not supported by preview; using 4096x4096"}}},
		{"too small for a free-size model", Spec{Model: "preview", Prompt: "x", Size: "3x3"},
			want{w: 8, h: 8, ratio: "1:1", format: "png", n: 1,
				warnings: []string{"size 3x3 is not supported by preview; using 8x8"}}},
		{"far too large for a fixed-size model", Spec{Model: "gpt-image-1", Prompt: "x", Size: "99999x3"},
			want{w: 1536, h: 1024, ratio: "3:2", quality: "medium", format: "png", n: 1, price: 63,
				warnings: []string{"size 99999x3 is not supported by openai/gpt-image-1; using 1536x1024 (3:2)"}}},
		{"digits past any size", Spec{Model: "gpt-image-2", Prompt: "x", Size: "99999999999999999999x1"},
			want{w: 3840, h: 1280, ratio: "3:1", quality: "medium", format: "png", n: 1, price: 200,
				warnings: []string{"size 99999999999999999999x1 is not supported", "using 3840x1280"}}},
		{"huge size as numbers", Spec{Model: "preview", Prompt: "x", Width: 1 << 40, Height: 2},
			want{w: 4096, h: 8, ratio: "512:1", format: "png", n: 1,
				warnings: []string{"size 1099511627776x2 is not supported by preview; using 4096x8"}}},
		{"zero size", Spec{Model: "preview", Prompt: "x", Size: "0x512"},
			want{format: "png", n: 1,
				problems: map[string][]string{"size": {`"0x512"`, "above 0", "any WxH with edges 8..4096"}}}},
		{"bad size text", Spec{Model: "gpt-image-1", Prompt: "x", Size: "big"},
			want{quality: "medium", format: "png", n: 1,
				problems: map[string][]string{"size": {`"big"`, "WxH", "1024x1024, 1536x1024, 1024x1536"}}}},
		{"auto size is the default", Spec{Model: "gpt-image-1", Prompt: "x", Size: "auto"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42}},

		// Ratios.
		{"ratio to documented size", Spec{Model: "gemini-3.1-flash-image", Prompt: "x", AspectRatio: "16:9"},
			want{w: 1376, h: 768, ratio: "16:9", format: "png", n: 1, price: 67}},
		{"ratio not in lowest terms", Spec{Model: "gemini-3.1-flash-image", Prompt: "x", AspectRatio: "32:18"},
			want{w: 1376, h: 768, ratio: "16:9", format: "png", n: 1, price: 67}},
		{"ratio to nominal size", Spec{Model: "stable-image-ultra", Prompt: "x", AspectRatio: "9:16"},
			want{w: 768, h: 1360, ratio: "9:16", format: "png", n: 1, price: 80, nominal: true}},
		{"ratio on free-size model computed", Spec{Model: "gpt-image-2", Prompt: "x", AspectRatio: "16:9"},
			want{w: 1360, h: 768, ratio: "16:9", quality: "medium", format: "png", n: 1, price: 34}},
		{"ratio on free-size model, native entry", Spec{Model: "gpt-image-2", Prompt: "x", AspectRatio: "3:2"},
			want{w: 1536, h: 1024, ratio: "3:2", quality: "medium", format: "png", n: 1, price: 50}},
		{"any ratio on preview", Spec{Model: "preview", Prompt: "x", AspectRatio: "5:2"},
			want{w: 1619, h: 648, ratio: "5:2", format: "png", n: 1}},
		{"unsupported ratio", Spec{Model: "gpt-image-1", Prompt: "x", AspectRatio: "16:9"},
			want{quality: "medium", format: "png", n: 1,
				problems: map[string][]string{"aspect_ratio": {"16:9 is not supported", "1:1, 3:2, 2:3"}}}},
		{"ratio outside free range", Spec{Model: "gpt-image-2", Prompt: "x", AspectRatio: "5:1"},
			want{quality: "medium", format: "png", n: 1,
				problems: map[string][]string{"aspect_ratio": {"5:1", "1:3 to 3:1"}}}},
		{"bad ratio text", Spec{Model: "gemini-3-pro-image", Prompt: "x", AspectRatio: "wide"},
			want{format: "png", n: 1,
				problems: map[string][]string{"aspect_ratio": {`"wide"`, "W:H", "16:9"}}}},
		{"size and ratio agree", Spec{Model: "gemini-3-pro-image", Prompt: "x", Size: "1376x768", AspectRatio: "16:9"},
			want{w: 1376, h: 768, ratio: "16:9", format: "png", n: 1, price: 134}},
		{"size and ratio disagree", Spec{Model: "gemini-3-pro-image", Prompt: "x", Size: "1024x1024", AspectRatio: "16:9"},
			want{format: "png", n: 1,
				problems: map[string][]string{"aspect_ratio": {"1024x1024 is 1:1", "aspect_ratio is 16:9", "1376x768"}}}},

		// Format.
		{"format defaults to png", Spec{Model: "fal/flux-dev", Prompt: "x"},
			want{w: 1024, h: 768, ratio: "4:3", format: "png", n: 1, price: 25}},
		{"format defaults to first without png", Spec{Model: "test/nopng", Prompt: "x"},
			want{w: 512, h: 512, ratio: "1:1", format: "webp", n: 1, price: 1}},
		{"format jpg is jpeg", Spec{Model: "gpt-image-1", Prompt: "x", Format: "JPG"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "jpeg", n: 1, price: 42}},
		{"format any case", Spec{Model: "gpt-image-1", Prompt: "x", Format: "WebP"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "webp", n: 1, price: 42}},
		{"format not offered", Spec{Model: "gemini-3-pro-image", Prompt: "x", Format: "webp"},
			want{w: 1024, h: 1024, ratio: "1:1", n: 1, price: 134,
				problems: map[string][]string{"format": {`"webp"`, "supported: png"}}}},
		{"format unknown", Spec{Model: "gpt-image-1", Prompt: "x", Format: "gif"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", n: 1, price: 42,
				problems: map[string][]string{"format": {`"gif"`, "png, jpeg, webp"}}}},

		// Count.
		{"n at max", Spec{Model: "gpt-image-1", Prompt: "x", N: 10},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 10, price: 42}},
		{"n over max", Spec{Model: "gpt-image-1", Prompt: "x", N: 11},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 11, price: 42,
				problems: map[string][]string{"n": {"11 images", "at most 10", "split"}}}},
		{"n over max of one", Spec{Model: "gemini-3-pro-image", Prompt: "x", N: 2},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 2, price: 134,
				problems: map[string][]string{"n": {"at most 1"}}}},
		{"n negative", Spec{Model: "gpt-image-1", Prompt: "x", N: -1},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: -1, price: 42,
				problems: map[string][]string{"n": {"1 to 10"}}}},

		// Quality and style.
		{"quality given", Spec{Model: "gpt-image-1", Prompt: "x", Quality: "HIGH", Size: "1536x1024"},
			want{w: 1536, h: 1024, ratio: "3:2", quality: "high", format: "png", n: 1, price: 250}},
		{"quality unknown", Spec{Model: "gpt-image-1", Prompt: "x", Quality: "ultra"},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, price: 42,
				problems: map[string][]string{"quality": {`"ultra"`, "low, medium, high, auto"}}}},
		{"quality on a model without qualities", Spec{Model: "gemini-3-pro-image", Prompt: "x", Quality: "hd"},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, price: 134,
				warnings: []string{"no quality setting", `"hd" ignored`}}},
		{"style given", Spec{Model: "sd3.5-large", Prompt: "x", Style: "Anime"},
			want{w: 1024, h: 1024, ratio: "1:1", style: "anime", format: "png", n: 1, price: 65, nominal: true}},
		{"style unknown", Spec{Model: "sd3.5-large", Prompt: "x", Style: "watercolour"},
			want{w: 1024, h: 1024, ratio: "1:1", format: "png", n: 1, price: 65, nominal: true,
				problems: map[string][]string{"style": {`"watercolour"`, "3d-model", "tile-texture"}}}},
		{"style on a model without styles", Spec{Model: "gpt-image-1", Prompt: "x", Style: "vivid"},
			want{w: 1024, h: 1024, ratio: "1:1", quality: "medium", format: "png", n: 1, price: 42,
				warnings: []string{"no style setting"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, probs := c.Check(tt.spec, today)
			w := tt.want
			if got.Width != w.w || got.Height != w.h || got.AspectRatio != w.ratio {
				t.Errorf("size = %dx%d %q, want %dx%d %q", got.Width, got.Height, got.AspectRatio, w.w, w.h, w.ratio)
			}
			if got.Quality != w.quality || got.Format != w.format || got.Style != w.style || got.N != w.n {
				t.Errorf("quality, format, style, n = %q, %q, %q, %d; want %q, %q, %q, %d",
					got.Quality, got.Format, got.Style, got.N, w.quality, w.format, w.style, w.n)
			}
			if got.PricePerImage != w.price || got.Nominal != w.nominal {
				t.Errorf("price, nominal = %d, %v; want %d, %v", got.PricePerImage, got.Nominal, w.price, w.nominal)
			}
			seen := map[string]bool{}
			for _, p := range probs {
				seen[p.Field] = true
				subs, ok := w.problems[p.Field]
				if !ok {
					t.Errorf("unexpected problem %v", p)
					continue
				}
				for _, s := range subs {
					if !strings.Contains(p.Msg, s) {
						t.Errorf("problem %q does not mention %q", p.Error(), s)
					}
				}
			}
			for f := range w.problems {
				if !seen[f] {
					t.Errorf("no problem for field %s; got %v", f, probs)
				}
			}
			all := strings.Join(got.Warnings, "\n")
			for _, s := range w.warnings {
				if !strings.Contains(all, s) {
					t.Errorf("warnings %q do not mention %q", got.Warnings, s)
				}
			}
			if len(w.warnings) == 0 && len(got.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", got.Warnings)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	t.Parallel()
	if got := (Problem{Field: "size", Msg: "too big"}).Error(); got != "size: too big" {
		t.Fatalf("Problem.Error() = %q", got)
	}
}

// happySpecs are valid rows of the kinds a large batch is made of.
var happySpecs = []Spec{
	{Model: "openai/gpt-image-2", Prompt: "a red mug on a wooden table, product photo", Size: "1536x1024", Quality: "high", Format: "webp", N: 2},
	{Model: "gemini-3.1-flash-image", Prompt: "an isometric game icon of a treasure chest", AspectRatio: "16:9"},
	{Model: "stability/sd3.5-large", Prompt: "a watercolor fox", NegativePrompt: "blurry", HasSeed: true, AspectRatio: "2:3", Style: "anime"},
	{Model: "preview", Prompt: "SKU 1234 blue sneaker", Width: 800, Height: 600, HasSeed: true},
	{Model: "fal/flux-schnell", Prompt: "a lighthouse at dusk", Size: "1024x576", HasSeed: true, N: 4},
}

// TestCheckHappyPathDoesNotAllocate keeps Check cheap enough for
// 200,000 rows a second: a valid row costs no garbage.
//
// Not parallel: testing.AllocsPerRun refuses to run in parallel tests,
// since other goroutines' allocations would be counted.
func TestCheckHappyPathDoesNotAllocate(t *testing.T) {
	c := mustDefault(t)
	for _, s := range happySpecs {
		r, probs := c.Check(s, today)
		if len(probs) > 0 || len(r.Warnings) > 0 {
			t.Fatalf("Check(%+v): problems %v, warnings %v; want a happy spec", s, probs, r.Warnings)
		}
		allocs := testing.AllocsPerRun(100, func() {
			_, _ = c.Check(s, today)
		})
		if allocs != 0 {
			t.Errorf("Check(%s) allocates %.1f times per call, want 0", s.Model, allocs)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	c := mustDefault(b)
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = c.Check(happySpecs[i%len(happySpecs)], now)
		i++
	}
}

func BenchmarkCheckWithWarning(b *testing.B) {
	c := mustDefault(b)
	s := Spec{Model: "gemini-3.1-flash-image", Prompt: "x", Size: "1920x1080"}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = c.Check(s, now)
	}
}
