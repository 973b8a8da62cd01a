package preview

import (
	"hash/fnv"
	"image"
	"math"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// mixer is splitmix64: a tiny generator whose output is fixed forever, so
// that the same prompt and seed give the same picture in every release
// (math/rand's streams are not promised to stay the same).
type mixer struct{ state uint64 }

func (m *mixer) next() uint64 {
	m.state += 0x9e3779b97f4a7c15
	z := m.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// intn returns a number in [0, n).
func (m *mixer) intn(n int) int { return int(m.next() % uint64(max(n, 1))) }

// unit returns a number in [0, 1).
func (m *mixer) unit() float64 { return float64(m.next()>>11) / (1 << 53) }

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s)) // hash writes cannot fail
	return h.Sum64()
}

// wordHue biases the palette towards what the prompt names (degrees on the
// colour wheel). Any other word leaves the hue to the hash.
func wordHue(w string) (float64, bool) {
	switch w {
	case "red":
		return 0, true
	case "crimson":
		return 350, true
	case "rose":
		return 340, true
	case "pink":
		return 330, true
	case "magenta":
		return 300, true
	case "purple":
		return 280, true
	case "violet", "lavender":
		return 265, true
	case "indigo", "night":
		return 238, true
	case "blue":
		return 220, true
	case "sky":
		return 205, true
	case "ocean", "sea", "water", "ice", "winter", "lake", "river":
		return 198, true
	case "cyan", "teal":
		return 178, true
	case "mint":
		return 150, true
	case "green", "forest", "jungle", "tree", "trees":
		return 125, true
	case "grass", "spring", "meadow":
		return 98, true
	case "lime":
		return 80, true
	case "yellow", "lemon":
		return 55, true
	case "gold", "golden", "desert", "sand", "beach":
		return 43, true
	case "autumn", "orange", "wood", "brown", "coffee":
		return 28, true
	case "sunset", "sunrise", "dusk", "dawn":
		return 20, true
	case "fire", "lava", "flame":
		return 12, true
	}
	return 0, false
}

// style is the look the prompt's words ask for.
type style struct {
	hue, sat, light float64
}

func styleOf(words []string, base uint64) style {
	s := style{hue: float64(base % 360), sat: 0.55, light: 0.55}
	n := 0.0
	var sx, sy float64
	for _, w := range words {
		if h, ok := wordHue(w); ok {
			sx += math.Cos(h * math.Pi / 180)
			sy += math.Sin(h * math.Pi / 180)
			n++
		}
		switch w {
		case "dark", "night", "midnight", "noir", "shadow", "gothic":
			s.light -= 0.15
		case "bright", "sunny", "light", "day", "white", "snow":
			s.light += 0.15
		case "pastel", "soft", "pale":
			s.sat -= 0.25
			s.light += 0.1
		case "neon", "vivid", "vibrant", "cyberpunk":
			s.sat += 0.3
		case "monochrome", "grayscale", "greyscale", "black":
			s.sat = 0
		}
	}
	if n > 0 {
		s.hue = math.Mod(math.Atan2(sy, sx)*180/math.Pi+360, 360)
	}
	s.sat = min(max(s.sat, 0), 1)
	s.light = min(max(s.light, 0.15), 0.85)
	return s
}

// rgb is an opaque colour.
type rgb struct{ r, g, b uint8 }

// hsl converts hue (degrees), saturation and lightness (0-1) to RGB.
func hsl(h, s, l float64) rgb {
	h = math.Mod(h, 360)
	if h < 0 {
		h += 360
	}
	s, l = min(max(s, 0), 1), min(max(l, 0), 1)
	c := (1 - math.Abs(2*l-1)) * s
	x := c * (1 - math.Abs(math.Mod(h/60, 2)-1))
	m := l - c/2
	var r, g, b float64
	switch {
	case h < 60:
		r, g = c, x
	case h < 120:
		r, g = x, c
	case h < 180:
		g, b = c, x
	case h < 240:
		g, b = x, c
	case h < 300:
		r, b = x, c
	default:
		r, b = c, x
	}
	to8 := func(v float64) uint8 { return uint8(math.Round((v + m) * 255)) }
	return rgb{to8(r), to8(g), to8(b)}
}

// words splits a prompt into lower-case words.
func words(prompt string) []string {
	return strings.FieldsFunc(strings.ToLower(prompt), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// render draws the preview picture for prompt and seed: a gradient sky, a
// horizon band, a sun and one translucent disc per word (up to eight), then
// the caption. The words choose the palette and the discs' places; the seed
// moves everything, so neighbouring seeds look related but different.
func render(prompt string, seed int64, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	ws := words(prompt)
	base := hashString(prompt)
	st := styleOf(ws, base)
	mx := &mixer{state: base ^ uint64(seed)*0x9e3779b97f4a7c15}

	hue := st.hue + float64(mx.intn(41)-20)
	sky0 := hsl(hue+float64(mx.intn(60)-30), st.sat, st.light+0.2)
	sky1 := hsl(hue+150+float64(mx.intn(60)), st.sat*0.8, st.light-0.1)
	ground0 := hsl(hue+30, st.sat, st.light-0.15)
	ground1 := hsl(hue+60, st.sat, st.light-0.3)
	sun := hsl(hue+180, min(st.sat+0.2, 1), min(st.light+0.3, 0.95))

	horizon := h * (55 + mx.intn(25)) / 100
	fillGradient(img, 0, horizon, sky0, sky1, mx.unit()*0.6-0.3)
	fillGradient(img, horizon, h, ground0, ground1, 0)

	minDim := min(w, h)
	sunR := minDim * (8 + mx.intn(10)) / 100
	disc(img, w*(15+mx.intn(70))/100, horizon-sunR/2-mx.intn(max(horizon/3, 1)), sunR, sun, 230)

	for i, word := range ws {
		if i == 8 {
			break
		}
		wm := &mixer{state: hashString(word) ^ uint64(seed) ^ uint64(i)<<32}
		c := hsl(hue+float64(wm.intn(120)-60), st.sat, 0.3+wm.unit()*0.5)
		r := minDim * (4 + wm.intn(16)) / 100
		disc(img, wm.intn(w), wm.intn(h), r, c, 90+wm.intn(90))
	}
	caption(img, "PREVIEW · seed "+strconv.FormatInt(seed, 10)+" · "+prompt)
	return img
}

// fillGradient fills rows [y0, y1) with a gradient from c0 to c1, along the
// vertical tilted by slant (fraction of the width).
func fillGradient(img *image.RGBA, y0, y1 int, c0, c1 rgb, slant float64) {
	w := img.Rect.Dx()
	span := y1 - y0 + int(math.Abs(slant)*float64(w)) + 1
	// t is fixed-point (16.16) position along the gradient.
	dtx := int(slant * 65536 * float64(w) / float64(span) / float64(max(w, 1)))
	dty := 65536 / span
	off := 0
	if slant < 0 {
		off = -dtx * w
	}
	for y := y0; y < y1; y++ {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		t := off + (y-y0)*dty
		if dtx == 0 && w > 0 {
			// A level row is one colour: set a pixel, then double it.
			f := int32(min(max(t>>8, 0), 256))
			row[0] = uint8(int32(c0.r) + (int32(c1.r)-int32(c0.r))*f>>8)
			row[1] = uint8(int32(c0.g) + (int32(c1.g)-int32(c0.g))*f>>8)
			row[2] = uint8(int32(c0.b) + (int32(c1.b)-int32(c0.b))*f>>8)
			row[3] = 0xff
			for n := 4; n < len(row); n *= 2 {
				copy(row[n:], row[:n])
			}
			continue
		}
		for x := 0; x < w; x++ {
			f := int32(min(max(t>>8, 0), 256))
			row[4*x+0] = uint8(int32(c0.r) + (int32(c1.r)-int32(c0.r))*f>>8)
			row[4*x+1] = uint8(int32(c0.g) + (int32(c1.g)-int32(c0.g))*f>>8)
			row[4*x+2] = uint8(int32(c0.b) + (int32(c1.b)-int32(c0.b))*f>>8)
			row[4*x+3] = 0xff
			t += dtx
		}
	}
}

// disc blends a filled circle of colour c and opacity a (0-255).
func disc(img *image.RGBA, cx, cy, r int, c rgb, a int) {
	b := img.Rect.Intersect(image.Rect(cx-r, cy-r, cx+r+1, cy+r+1))
	r2 := r * r
	for y := b.Min.Y; y < b.Max.Y; y++ {
		dy := y - cy
		row := img.Pix[y*img.Stride:]
		for x := b.Min.X; x < b.Max.X; x++ {
			dx := x - cx
			if dx*dx+dy*dy > r2 {
				continue
			}
			p := row[4*x : 4*x+3]
			p[0] = uint8((int(p[0])*(255-a) + int(c.r)*a) / 255)
			p[1] = uint8((int(p[1])*(255-a) + int(c.g)*a) / 255)
			p[2] = uint8((int(p[2])*(255-a) + int(c.b)*a) / 255)
		}
	}
}

// caption darkens a strip along the bottom and writes text into it with
// the 7x13 bitmap font, scaled up on large images, cut to fit with "...".
// Characters the font lacks are drawn as '?'. Images too small for one
// line of text get no caption.
func caption(img *image.RGBA, text string) {
	face := basicfont.Face7x13
	mask, ok := face.Mask.(*image.Alpha)
	if !ok {
		return
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	scale := max(1, min(w, h)/384)
	cellW, cellH := face.Advance*scale, (face.Ascent+face.Descent)*scale
	pad := 2 * scale
	stripH := cellH + 2*pad
	maxChars := (w - 2*pad) / cellW
	if h < 2*stripH || maxChars < 4 {
		return
	}
	runes := []rune(strings.Join(strings.Fields(text), " ")) // one line
	if len(runes) > maxChars {
		runes = append(runes[:maxChars-3], '.', '.', '.')
	}

	for y := h - stripH; y < h; y++ {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for i := 0; i < len(row); i += 4 {
			row[i] = row[i] / 4
			row[i+1] = row[i+1] / 4
			row[i+2] = row[i+2] / 4
		}
	}

	top := h - stripH + pad
	for i, r := range runes {
		left := pad + i*cellW
		if r == '·' {
			// The font has no middle dot; draw a small square.
			fillRect(img, left+2*scale, top+5*scale, 2*scale, 2*scale)
			continue
		}
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			r = '?'
		}
		_, _, mp, _, ok := face.Glyph(fixed.P(0, face.Ascent), r)
		if !ok {
			continue
		}
		for gy := 0; gy < face.Ascent+face.Descent; gy++ {
			for gx := 0; gx < face.Width; gx++ {
				if mask.Pix[mask.PixOffset(mp.X+gx, mp.Y+gy)] < 0x80 {
					continue
				}
				fillRect(img, left+gx*scale, top+gy*scale, scale, scale)
			}
		}
	}
}

// fillRect paints a white w×h rectangle at (x, y), clipped to img.
func fillRect(img *image.RGBA, x, y, w, h int) {
	b := img.Rect.Intersect(image.Rect(x, y, x+w, y+h))
	for yy := b.Min.Y; yy < b.Max.Y; yy++ {
		row := img.Pix[yy*img.Stride:]
		for xx := b.Min.X; xx < b.Max.X; xx++ {
			row[4*xx], row[4*xx+1], row[4*xx+2] = 0xf0, 0xf0, 0xf0
		}
	}
}
