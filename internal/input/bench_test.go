package input

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// benchRows is the row count of one benchmark pass.
const benchRows = 10_000

func benchData(csv bool) []byte {
	var b bytes.Buffer
	if csv {
		b.WriteString("prompt,size,seed,style\n")
	}
	for i := range benchRows {
		if csv {
			fmt.Fprintf(&b, "a photo of a red fox %d in the snow,1024x1024,%d,vivid\n", i, i)
		} else {
			fmt.Fprintf(&b, "a photo of a red fox %d in the snow --size 1024x1024 --seed %d --style vivid\n", i, i)
		}
	}
	return b.Bytes()
}

func benchRead(b *testing.B, name string, data []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	rows := 0
	cpu0 := cpuTime()
	for b.Loop() {
		rd, err := Open(name, bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		// Includes GC work on the other core, so it is a conservative figure.
		b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
	}
}

// BenchmarkCSV measures the CSV path on simple rows; the pipeline budget is
// 200,000 rows/s for parse+expand+validate, so this should be far above.
func BenchmarkCSV(b *testing.B) { benchRead(b, "bench.csv", benchData(true)) }

// BenchmarkTXT measures TXT lines with a few options each.
func BenchmarkTXT(b *testing.B) { benchRead(b, "bench.txt", benchData(false)) }

// BenchmarkCSVScan measures the CSV scanner alone, without building rows,
// to tell scanning cost from the per-row map that Row.Values needs.
func BenchmarkCSVScan(b *testing.B) {
	data := benchData(true)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := newCSVScanner(newSource(bytes.NewReader(data)), ',', 1<<20)
		var info recInfo
		for {
			ok, err := c.scan(4, false, &info)
			if err != nil || !ok {
				break
			}
		}
	}
}
