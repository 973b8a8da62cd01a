package expand_test

import (
	"fmt"

	"bulkgen/internal/expand"
)

func ExampleExpander_Expand() {
	tpl, err := expand.Parse("a {color} {mug|cup}, {studio|outdoor} photo")
	if err != nil {
		panic(err)
	}
	row := map[string]string{"Color": "red"}

	e := &expand.Expander{Combinatorial: true}
	n, _ := e.Count(tpl, row)
	fmt.Println(n, "prompts:")
	_ = e.Expand(tpl, row, 0, func(i int, prompt string) bool {
		fmt.Println(i, prompt)
		return true
	})
	// Output:
	// 4 prompts:
	// 0 a red mug, studio photo
	// 1 a red mug, outdoor photo
	// 2 a red cup, studio photo
	// 3 a red cup, outdoor photo
}

func ExampleNameTemplate_Render() {
	nt, err := expand.ParseName("{date}/{product}-{row:3}-{n}")
	if err != nil {
		panic(err)
	}
	fields := expand.NameFields{Row: 7, N: 2, Seed: 42, Model: "flux-dev", Date: "2025-06-01"}
	name, _ := nt.Render(fields, map[string]string{"product": "mug: red/blue"})
	fmt.Println(name + ".png")
	// Output:
	// 2025-06-01/mug_ red_blue-007-2.png
}

func ExampleDeriveSeed() {
	// The same row gives the same seed on every run.
	a := expand.DeriveSeed("products.csv", "12", "#0")
	b := expand.DeriveSeed("products.csv", "12", "#0")
	fmt.Println(a == b, a >= 1 && a <= expand.MaxSeed)
	// Output:
	// true true
}
