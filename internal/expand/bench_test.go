package expand

import (
	"strings"
	"testing"
)

func BenchmarkExpand(b *testing.B) {
	vars := map[string]string{"color": "red", "product": "ceramic mug", "style": "studio photo", "size": "large"}
	cases := []struct {
		name string
		src  string
		comb bool
	}{
		{name: "literal", src: "a lighthouse at dusk, oil painting"},
		{name: "vars", src: "{color} {product}"},
		{name: "vars-case-folded", src: "{Color} {Product}"},
		{name: "variants-seeded", src: "{a|b|c} {color} {product} in {daylight|moonlight}"},
		{name: "variants-combinatorial-12", src: "{a|b|c} {color} {product} in {day|dusk|night|fog}", comb: true},
	}
	for _, c := range cases {
		tpl, err := Parse(c.src)
		if err != nil {
			b.Fatal(err)
		}
		e := &Expander{Combinatorial: c.comb}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink int
			for i := 0; b.Loop(); i++ {
				err := e.Expand(tpl, vars, int64(i), func(_ int, p string) bool {
					sink += len(p)
					return true
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			_ = sink
		})
	}
}

func BenchmarkRenderName(b *testing.B) {
	fields := NameFields{Row: 1234, N: 2, Seed: 987654321, Model: "gpt-image-1", Date: "2025-06-01"}
	vars := map[string]string{"product": "Ceramic Mug: red/blue", "color": "red"}
	for _, src := range []string{"{row}-{n}", "{date}/{product}_{color}_{row:5}-{n}"} {
		nt, err := ParseName(src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.NewReplacer("/", "_", "{", "", "}", "").Replace(src), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := nt.Render(fields, vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("{a|b|c} {color} {product} in {daylight|moonlight} __x__"); err != nil {
			b.Fatal(err)
		}
	}
}
