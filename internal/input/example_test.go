package input_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"bulkgen/internal/input"
)

// Reading a CSV: aliases map onto canonical fields, other columns are
// template variables, and a bad row is reported without stopping the read.
func ExampleOpen() {
	data := "Prompt;AR;City\n" +
		"a street in {City};16:9;Paris\n" +
		"\"broken\"row;1:1;Rome\n" +
		"a bridge in {City};3:2;Prague\n"
	r, err := input.Open("cities.csv", strings.NewReader(data), input.Options{})
	if err != nil {
		fmt.Println("fatal:", err)
		return
	}
	fmt.Println(r.Format(), r.Header(), r.Variables())
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		var re *input.RowError
		if errors.As(err, &re) {
			fmt.Println("skipped:", re)
			continue
		}
		if err != nil {
			fmt.Println("fatal:", err)
			return
		}
		fmt.Println(row.Line, row.Values["prompt"], row.Values["aspect_ratio"], row.Values["City"])
	}
	// Output:
	// csv [prompt aspect_ratio City] [City]
	// 2 a street in {City} 16:9 Paris
	// skipped: cities.csv:3:9: text after the closing quote of a cell; to put a quote inside a cell, quote the whole cell and double the quote ("")
	// 4 a bridge in {City} 3:2 Prague
}

// A TXT line is the prompt followed by options.
func ExampleParseTXTLine() {
	vals, err := input.ParseTXTLine(`a lighthouse at dusk --negative "blurry, text" --seed 42 --aspect 3:2 --opt steps=30`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(vals["prompt"], "|", vals["negative_prompt"], "|", vals["seed"], vals["aspect_ratio"], vals["opt.steps"])

	_, err = input.ParseTXTLine("a sign saying --stop--")
	fmt.Println(err)
	// Output:
	// a lighthouse at dusk | blurry, text | 42 3:2 30
	// col 15: unknown option --stop-- (known: --negative --seed --aspect --size --n --model --quality --format --style --name --opt key=value)
}
