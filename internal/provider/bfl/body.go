package bfl

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"bulkgen/internal/provider"
)

// sizeRule is what one model family accepts for width and height.
type sizeRule struct {
	ratioOnly         bool // takes aspect_ratio instead of width/height
	multiple, lo, hi  int  // each side: a multiple of multiple within [lo, hi]
	maxPixels         int  // 0 = no limit on width×height
	maxSafety         int
	hasPromptUpsample bool
}

// ruleFor returns the size rule of a model path. FLUX.2 takes multiples of
// 16 from 64 px up to 4 MP; FLUX1.1 [pro] and the FLUX.1 family take
// multiples of 32 between 256 and 1440; Ultra and Kontext take an aspect
// ratio. Unknown models are passed through unchecked.
func ruleFor(model string) (sizeRule, bool) {
	switch {
	case strings.HasPrefix(model, "flux-2"):
		return sizeRule{multiple: 16, lo: 64, hi: 1 << 16, maxPixels: 4 << 20, maxSafety: 5}, true
	case strings.HasSuffix(model, "-ultra"), strings.HasPrefix(model, "flux-kontext"):
		return sizeRule{ratioOnly: true, maxSafety: 6, hasPromptUpsample: true}, true
	case strings.HasPrefix(model, "flux-pro"), strings.HasPrefix(model, "flux-dev"):
		return sizeRule{multiple: 32, lo: 256, hi: 1440, maxSafety: 6, hasPromptUpsample: true}, true
	}
	return sizeRule{}, false
}

// checkSize refuses a size the model would refuse with a 422, so that the
// user sees which rule was broken without spending a request.
func checkSize(model string, r sizeRule, w, h int) error {
	if w == 0 && h == 0 {
		return nil
	}
	if w <= 0 || h <= 0 {
		return provider.Errorf(provider.Invalid, Name, "%s needs both width and height, got %dx%d", model, w, h)
	}
	for _, side := range []int{w, h} {
		if side%r.multiple != 0 || side < r.lo || side > r.hi {
			return provider.Errorf(provider.Invalid, Name,
				"%s takes sides that are multiples of %d between %d and %d, got %dx%d", model, r.multiple, r.lo, r.hi, w, h)
		}
	}
	if r.maxPixels > 0 && w*h > r.maxPixels {
		return provider.Errorf(provider.Invalid, Name, "%s takes at most %d pixels, got %dx%d", model, r.maxPixels, w, h)
	}
	return nil
}

// buildBody makes the submit body for image i of req.
func buildBody(req provider.Request, i int) ([]byte, error) {
	if strings.TrimSpace(req.Prompt) == "" {
		return nil, provider.Errorf(provider.Invalid, Name, "empty prompt")
	}
	body := map[string]any{"prompt": req.Prompt}
	rule, known := ruleFor(req.Model)
	switch {
	case rule.ratioOnly:
		if req.AspectRatio != "" {
			body["aspect_ratio"] = req.AspectRatio
		}
	case known:
		if err := checkSize(req.Model, rule, req.Width, req.Height); err != nil {
			return nil, err
		}
		fallthrough
	default:
		if req.Width > 0 && req.Height > 0 {
			body["width"], body["height"] = req.Width, req.Height
		}
	}
	if req.HasSeed {
		body["seed"] = req.Seed + int64(i)
	}
	switch req.Format {
	case "":
	case "png", "jpeg":
		body["output_format"] = req.Format
	case "jpg":
		body["output_format"] = "jpeg"
	default:
		return nil, provider.Errorf(provider.Invalid, Name, "format %q not offered (png or jpeg)", req.Format)
	}
	for name, v := range req.Options {
		val, err := option(name, v, rule)
		if err != nil {
			return nil, err
		}
		if val != nil {
			body[name] = val
		}
	}
	return json.Marshal(body)
}

// option types one "opt.<name>" value. Options BFL does not know are
// ignored rather than sent, since an unknown field is at best dropped.
func option(name, v string, rule sizeRule) (any, error) {
	bad := func(want string) error {
		return provider.Errorf(provider.Invalid, Name, "option %s = %q: want %s", name, v, want)
	}
	switch name {
	case "safety_tolerance":
		n, err := strconv.Atoi(v)
		hi := rule.maxSafety
		if hi == 0 {
			hi = 6
		}
		if err != nil || n < 0 || n > hi {
			return nil, bad(fmt.Sprintf("an integer from 0 to %d", hi))
		}
		return n, nil
	case "steps":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50 {
			return nil, bad("an integer from 1 to 50")
		}
		return n, nil
	case "guidance":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, bad("a number")
		}
		return f, nil
	case "raw", "prompt_upsampling":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, bad("true or false")
		}
		return b, nil
	}
	return nil, nil
}

// describe decodes the header of an image to report its real format and
// size (BFL may deliver JPEG when PNG was asked, or resize).
func describe(data []byte) (provider.Image, error) {
	format, w, h, err := provider.DecodeImage(data)
	if err != nil {
		return provider.Image{}, fmt.Errorf("decode sample: %w", err)
	}
	return provider.Image{Data: data, Format: format, Width: w, Height: h}, nil
}
