package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/input"
	"bulkgen/internal/provider/registry"
	"bulkgen/internal/runner"
)

const benchUsage = `Usage:
  bulkgen-bench ingest [--rows 10000,100000,1000000]
      Streams a generated CSV through parse + expand + validate + plan and
      reports rows per second and peak memory for each size.
  bulkgen-bench run [--images 2000] [--latency 200ms] [--concurrency 16] [--size 256x256]
      Runs a whole batch on the preview engine with simulated latency and
      compares the achieved rate with the theoretical concurrency/latency.
  bulkgen-bench ratelimit [--images 300] [--rpm 120] [--latency 500ms] [--window 1m]
      Runs a batch against a local OpenAI contract server that allows --rpm
      requests a minute, with the limit configured and without: rate, 429s.
` + benchServeUsageLine + benchLifecycleUsageLine

func cmdBench(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return errUsage
	}
	switch args[0] {
	case "ingest":
		return benchIngest(ctx, args[1:], stdout, stderr)
	case "run":
		return benchRun(ctx, args[1:], getenv, stdout, stderr)
	case "ratelimit":
		return benchRateLimit(ctx, args[1:], stdout, stderr)
	case "lifecycle":
		return benchLifecycle(ctx, args[1:], stdout, stderr)
	case "serve":
		return benchServe(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, benchUsage)
		return errUsage
	}
}

func benchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rowsFlag := fs.String("rows", "100000", "comma-separated row counts")
	procs := fs.Int("procs", 1, "GOMAXPROCS for the measurement (the target is per core)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measurement to `file`")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	var sizes []int
	for _, s := range strings.Split(*rowsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--rows: %q is not a row count", s)
		}
		sizes = append(sizes, n)
	}
	prev := runtime.GOMAXPROCS(*procs)
	defer runtime.GOMAXPROCS(prev)
	fmt.Fprintf(stdout, "%-10s %10s %12s %14s %10s %16s\n", "rows", "images", "rows/s", "rows/CPU-s", "time", "peak heap MiB")
	for _, n := range sizes {
		res, err := ingestOnce(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-10d %10d %12.0f %14.0f %10s %16.1f\n", n, res.images, float64(n)/res.elapsed.Seconds(),
			float64(n)/res.cpu.Seconds(), res.elapsed.Round(time.Millisecond), float64(res.peakHeap)/(1<<20))
	}
	return nil
}

type ingestResult struct {
	images   int
	elapsed  time.Duration
	cpu      time.Duration // user + system CPU time of the whole process
	peakHeap uint64
}

// benchCSV writes n product rows: a header and columns a template uses.
func benchCSV(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	colors := []string{"red", "blue", "green", "black", "white", "yellow", "teal", "orange"}
	products := []string{"mug", "t-shirt", "backpack", "sneaker", "lamp", "chair", "watch", "notebook"}
	if _, err := bw.WriteString("sku,color,product,prompt,aspect_ratio\n"); err != nil {
		return err
	}
	buf := make([]byte, 0, 256)
	for i := range n {
		buf = buf[:0]
		buf = append(buf, "SKU-"...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, ',')
		buf = append(buf, colors[i%len(colors)]...)
		buf = append(buf, ',')
		buf = append(buf, products[(i/8)%len(products)]...)
		buf = append(buf, `,"Studio photo of a {color} {product}, white background, soft light",1:1`...)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func ingestOnce(ctx context.Context, n int) (ingestResult, error) {
	cat, err := catalog.Open("")
	if err != nil {
		return ingestResult{}, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(benchCSV(pw, n)) }()

	runtime.GC()
	debug.FreeOSMemory()
	peak := sampleHeap(20 * time.Millisecond)

	start := time.Now()
	cpuStart := cpuTime()
	rd, err := input.Open("bench.csv", pr, input.Options{})
	if err != nil {
		return ingestResult{}, err
	}
	planner, err := batch.NewPlanner(batch.Config{Catalog: cat, Defaults: batch.Defaults{Model: "preview", Format: "png", N: 1}})
	if err != nil {
		return ingestResult{}, err
	}
	images := 0
	err = planner.PlanRows(ctx, rd, func(p batch.Problem) { err = fmt.Errorf("benchmark row invalid: %v", p) },
		func(req generate.Request) error {
			_ = req.Key()
			images++
			return nil
		})
	if err != nil {
		return ingestResult{}, err
	}
	if planner.Summary().ProblemCount > 0 {
		return ingestResult{}, fmt.Errorf("benchmark rows invalid: %v", planner.Summary().Problems[0])
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpuStart
	return ingestResult{images: images, elapsed: elapsed, cpu: cpu, peakHeap: peak()}, nil
}

func benchRun(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	images := fs.Int("images", 2000, "images to generate")
	latency := fs.Duration("latency", 200*time.Millisecond, "simulated provider latency")
	concurrency := fs.Int("concurrency", 16, "images in flight")
	size := fs.String("size", "256x256", "image size")
	format := fs.String("format", "png", "image format")
	keep := fs.String("o", "", "output folder to keep (default: a temporary folder, removed)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "bulkgen-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "out")
	}
	cat, err := catalog.Open("")
	if err != nil {
		return err
	}
	reg, err := registry.Build(registry.Config{Catalog: cat})
	if err != nil {
		return err
	}
	planner, err := batch.NewPlanner(batch.Config{Catalog: cat, Defaults: batch.Defaults{Model: "preview", Size: *size,
		Format: *format, N: 1, Options: map[string]string{"latency": latency.String()}}})
	if err != nil {
		return err
	}
	cfg := runner.Config{
		Inputs: []runner.Input{{Name: "bench.txt", Open: func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() {
				bw := bufio.NewWriter(pw)
				for i := range *images {
					fmt.Fprintf(bw, "benchmark image %d of a lighthouse at dusk\n", i)
				}
				pw.CloseWithError(bw.Flush())
			}()
			return pr, nil
		}}},
		OutDir:      dir,
		Planner:     planner,
		Generator:   &generate.Generator{Providers: reg, Limits: reg.Limits()},
		Concurrency: *concurrency,
		Progress:    runner.NewLines(stderr, 5*time.Second),
		Problems:    stderr,
	}
	start := time.Now()
	sum, err := runner.Run(ctx, ctx, cfg)
	if err != nil {
		return err
	}
	el := time.Since(start)
	theory := float64(*concurrency) / latency.Seconds()
	rate := float64(sum.Succeeded) / el.Seconds()
	fmt.Fprintf(stdout, "images %d (failed %d) in %s: %.1f images/s; theoretical %d / %s = %.1f images/s; achieved %.1f%%\n",
		sum.Succeeded, sum.Failed, el.Round(time.Millisecond), rate, *concurrency, latency, theory, 100*rate/theory)
	if !sum.OK() {
		return exitCode(1)
	}
	return nil
}

// cpuTime is the process's user + system CPU time. On a shared machine it
// measures the work itself, where wall time also measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPUProfile writes a CPU profile to file until the returned stop is
// called; with no file it does nothing.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// sampleHeap records the largest HeapInuse seen every interval until the
// returned function is called, which stops sampling and returns that peak.
func sampleHeap(interval time.Duration) (stopAndPeak func() uint64) {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	var once sync.Once
	return func() uint64 {
		once.Do(func() { close(stop); wg.Wait() })
		return peak.Load()
	}
}
