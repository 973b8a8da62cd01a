package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"bulkgen/internal/app"
	"bulkgen/internal/config"
	"bulkgen/internal/ratelimit"
	"bulkgen/internal/store"
)

// The scenarios of `bulkgen-bench serve`.
const (
	// scenarioQueue measures the queue's own overhead: zero-latency
	// preview images, so every second goes to HTTP, SQL, River and files.
	scenarioQueue = "queue"
	// scenarioLimit measures how close the workers come to their
	// theoretical rate, workers / latency.
	scenarioLimit = "limit"
	// scenarioExport measures streaming a batch's ZIP against reading its
	// files straight from disk.
	scenarioExport = "export"
)

// Targets of issue 4's benchmarks, printed next to the results.
const (
	targetQueueSQLite   = 500.0  // images/s
	targetQueuePostgres = 1000.0 // images/s
	targetLimitShare    = 0.95   // of workers/latency
)

// serveBench is one `bulkgen-bench serve` configuration. Every scenario
// runs on each database against its own fresh server: a new SQLite file or
// a new PostgreSQL database (created, then dropped), a new image folder, the
// real HTTP API on a loopback port and River workers in the same process.
type serveBench struct {
	// Images per batch.
	Images int
	// Workers is the preview queue's MaxWorkers; 0 means what serve
	// gives a provider of ProviderConcurrency (app.WorkerHeadroom).
	Workers int
	// ProviderConcurrency caps the preview calls in flight across the
	// server (the per-provider concurrency limit of the ratelimit package);
	// 0 leaves Workers alone to bound them, as the catalogue does. With
	// more Workers than ProviderConcurrency, jobs do their database work
	// while others hold the provider's slots.
	ProviderConcurrency int
	// Size of the queue scenario's images; ExportSize of the export
	// scenario's (bigger, so the ZIP moves real bytes).
	Size       string
	ExportSize string
	// Latency of the limit scenario's provider calls.
	Latency time.Duration
	// Databases are "sqlite" and/or "postgres"; Scenarios are the
	// scenario constants above.
	Databases []string
	Scenarios []string
	// PostgresURL names the server on which a throwaway database is
	// created per run; its own database is never touched.
	PostgresURL string
	// FetchCooldown and FetchPollInterval are passed to queue.Config
	// (zero: the queue package's defaults).
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// Poll is how often the batch's status is read while it runs.
	Poll time.Duration
	// Logger receives the server's logs (nil: none).
	Logger *slog.Logger
	// Progress receives a line per finished step (may be io.Discard).
	Progress io.Writer
}

// serveResult is one scenario's measurement on one database.
type serveResult struct {
	Scenario  string
	Database  string
	Images    int
	Succeeded int64
	Failed    int64
	// Elapsed runs from the POST that creates the batch until a GET
	// reports it final.
	Elapsed time.Duration
	// Submit is the part of Elapsed that the POST took: planning the
	// batch and inserting its items and jobs.
	Submit time.Duration
	// CPU is the server process's CPU time (user and system) during
	// Elapsed; the database server's own, on PostgreSQL, is not in it.
	CPU time.Duration
	// MachineCPU is the CPU time all processes of the machine used during
	// Elapsed (Linux only, else 0): with PostgreSQL's on top of the
	// server's, it is the figure that bounds images per second on a given
	// number of cores. Other work on the machine is in it too.
	MachineCPU time.Duration
	// Theory is workers/latency for the limit scenario.
	Theory float64

	// Export only: the ZIP's size and time, the same files read from
	// disk, and the heap in use at most during the export above the heap
	// before it.
	ZipBytes  int64
	ZipTime   time.Duration
	DiskBytes int64
	DiskFiles int
	DiskTime  time.Duration
	PeakHeap  uint64
}

// perImage divides d among n images; "-" when there is nothing to divide.
func perImage(d time.Duration, n int64) string {
	if d <= 0 || n <= 0 {
		return "-"
	}
	return (d / time.Duration(n)).Round(time.Microsecond).String()
}

// machineBusy is the CPU time every process of the machine has used since
// boot, from the first line of /proc/stat (user, nice, system, irq and
// softirq ticks; not steal, the time the hypervisor ran something else);
// 0 where there is no /proc/stat.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // not idle (4), iowait (5) or steal (8)
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	const userHZ = 100 // USER_HZ, the unit of /proc/stat on Linux
	return time.Duration(ticks) * time.Second / userHZ
}

// Rate is the images completed per second.
func (r serveResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Succeeded) / r.Elapsed.Seconds()
}

// OK reports whether every image of the batch succeeded.
func (r serveResult) OK() bool { return r.Succeeded == int64(r.Images) && r.Failed == 0 }

const benchServeUsageLine = `  bulkgen-bench serve [--images 5000] [--workers 32] [--db sqlite,postgres] [--scenarios queue,limit,export]
      Runs the server in-process (HTTP API, River workers, SQLite or a fresh
      PostgreSQL database) and measures: images/s through the whole path at
      zero latency; the rate at --latency 200ms against workers/latency; the
      ZIP export's rate against reading the same files, and its peak heap.
`

func benchServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := serveBench{Progress: stderr}
	fs.IntVar(&b.Images, "images", 5000, "images per batch")
	fs.IntVar(&b.Workers, "workers", 0, "image jobs run at once (the preview queue's MaxWorkers; 0: as serve sets it, the provider concurrency plus headroom)")
	fs.IntVar(&b.ProviderConcurrency, "provider-concurrency", 32, "preview calls in flight at most across the server (0: --workers alone bounds them)")
	fs.StringVar(&b.Size, "size", "64x64", "image size of the queue and limit scenarios")
	fs.StringVar(&b.ExportSize, "export-size", "256x256", "image size of the export scenario")
	fs.DurationVar(&b.Latency, "latency", 200*time.Millisecond, "provider latency of the limit scenario")
	dbs := fs.String("db", "sqlite,postgres", "databases to run on: sqlite, postgres")
	scen := fs.String("scenarios", "queue,limit,export", "scenarios: queue, limit, export")
	fs.StringVar(&b.PostgresURL, "pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL server on which a throwaway database is created for each run")
	fs.DurationVar(&b.FetchCooldown, "fetch-cooldown", 0, "River FetchCooldown (0: the queue package's default)")
	fs.DurationVar(&b.FetchPollInterval, "fetch-poll", 0, "River FetchPollInterval (0: the queue package's default)")
	fs.DurationVar(&b.Poll, "poll", 250*time.Millisecond, "how often the batch's status is read (the time is measured to the batch's finished_at, not to the read)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	traceFile := fs.String("trace", "", "write a runtime execution trace of the whole run to `file` (go tool trace)")
	verbose := fs.Bool("v", false, "show the server's warnings and errors on stderr")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	b.Databases = splitList(*dbs)
	b.Scenarios = splitList(*scen)
	if *verbose {
		b.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if err := b.check(); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	fmt.Fprintf(stdout, "$ bulkgen-bench serve %s\n", strings.Join(args, " "))
	fmt.Fprintf(stdout, "GOMAXPROCS %d, %d CPUs, %s, load average at start %s\n\n", runtime.GOMAXPROCS(0), runtime.NumCPU(),
		runtime.Version(), loadAverage())
	results, err := b.run(ctx)
	printServeResults(stdout, b, results)
	if err != nil {
		return err
	}
	for _, r := range results {
		if !r.OK() {
			return exitCode(1)
		}
	}
	return nil
}

// loadAverage is the 1-minute load average, or "?" where /proc has none:
// on a shared machine it says how much of the CPU the run really had.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// workersText says how many jobs and provider calls run at once.
func (b *serveBench) workersText() string {
	s := fmt.Sprintf("%d workers", b.Workers)
	if b.ProviderConcurrency > 0 {
		s += fmt.Sprintf(", provider concurrency %d", b.ProviderConcurrency)
	}
	return s
}

// concurrency is how many provider calls can be in flight at once.
func (b *serveBench) concurrency() int {
	if b.ProviderConcurrency > 0 && b.ProviderConcurrency < b.Workers {
		return b.ProviderConcurrency
	}
	return b.Workers
}

func (b *serveBench) check() error {
	if b.Workers == 0 && b.ProviderConcurrency > 0 {
		b.Workers = b.ProviderConcurrency + app.WorkerHeadroom(b.ProviderConcurrency)
	}
	if b.Images < 1 || b.Workers < 1 || b.ProviderConcurrency < 0 {
		return errors.New("bench serve: --images must be at least 1, --workers and --provider-concurrency at least 0 and not both 0")
	}
	if b.Latency <= 0 {
		return errors.New("bench serve: --latency must be positive")
	}
	for _, d := range b.Databases {
		if d != "sqlite" && d != "postgres" {
			return fmt.Errorf("bench serve: --db %q: want sqlite or postgres", d)
		}
	}
	for _, s := range b.Scenarios {
		if s != scenarioQueue && s != scenarioLimit && s != scenarioExport {
			return fmt.Errorf("bench serve: --scenarios %q: want queue, limit or export", s)
		}
	}
	if len(b.Databases) == 0 || len(b.Scenarios) == 0 {
		return errors.New("bench serve: nothing to run")
	}
	if b.Poll <= 0 {
		b.Poll = 250 * time.Millisecond
	}
	if b.Progress == nil {
		b.Progress = io.Discard
	}
	return nil
}

// run measures every scenario on every database, in that order, and
// returns the results so far when one fails.
func (b *serveBench) run(ctx context.Context) ([]serveResult, error) {
	// The scenarios' folders are removed at the end, not after each one:
	// on ext4 without a journal (as on the machines the README's numbers
	// come from) a file created soon after thousands were deleted costs
	// several times the CPU, since the kernel passes over the recently
	// freed inodes, and that cost is the previous scenario's cleanup, not
	// the server's.
	var dirs []string
	defer func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	var out []serveResult
	for _, sc := range b.Scenarios {
		for _, dbName := range b.Databases {
			r, dir, err := b.runOne(ctx, sc, dbName)
			if dir != "" {
				dirs = append(dirs, dir)
			}
			if err != nil {
				return out, fmt.Errorf("%s on %s: %w", sc, dbName, err)
			}
			fmt.Fprintf(b.Progress, "bench serve: %s on %s: %d/%d images in %s\n", sc, dbName, r.Succeeded, r.Images,
				r.Elapsed.Round(time.Millisecond))
			out = append(out, r)
		}
	}
	return out, nil
}

// runOne measures one scenario on one database, and returns the folder
// its server used, stopped, for the caller to remove ("" when the server
// did not start).
func (b *serveBench) runOne(ctx context.Context, scenario, dbName string) (_ serveResult, dir string, _ error) {
	env, err := startBenchServer(ctx, b, dbName, true)
	if err != nil {
		return serveResult{}, "", err
	}
	defer env.stop()
	res, err := b.measure(ctx, env, scenario, dbName)
	return res, env.dir, err
}

// measure runs one scenario's batch on env.
func (b *serveBench) measure(ctx context.Context, env *benchServer, scenario, dbName string) (serveResult, error) {
	res := serveResult{Scenario: scenario, Database: dbName, Images: b.Images}
	size, opts := b.Size, map[string]string{"latency": "0s"}
	switch scenario {
	case scenarioLimit:
		opts["latency"] = b.Latency.String()
		res.Theory = float64(b.concurrency()) / b.Latency.Seconds()
	case scenarioExport:
		size = b.ExportSize
	}
	cpu0, busy0 := cpuTime(), machineBusy()
	st, elapsed, submit, err := env.runBatch(ctx, b.Images, size, opts, b.Poll)
	if err != nil {
		return res, err
	}
	res.CPU = cpuTime() - cpu0
	if busy0 > 0 {
		res.MachineCPU = machineBusy() - busy0
	}
	res.Elapsed, res.Submit, res.Succeeded, res.Failed = elapsed, submit, st.Counts["succeeded"], st.Counts["failed"]
	if st.Status != string(store.BatchSucceeded) {
		return res, fmt.Errorf("batch ended %s: %v", st.Status, st.Counts)
	}
	if scenario == scenarioExport {
		if err := env.measureExport(ctx, st.ID, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// benchServer is one in-process server: the wiring of `bulkgen serve`
// (app.Open) with the queue settings under test.
type benchServer struct {
	app     *app.App
	httpSrv *http.Server
	base    string
	token   string
	dir     string
	imgDir  string
	drop    func() // drops the PostgreSQL database; nil on SQLite
	hc      *http.Client
}

// startBenchServer starts a server for b on dbName, its workers running
// when work is set (without them, every job stays queued).
func startBenchServer(ctx context.Context, b *serveBench, dbName string, work bool) (env *benchServer, err error) {
	dir, err := os.MkdirTemp("", "bulkgen-bench-serve-")
	if err != nil {
		return nil, err
	}
	env = &benchServer{dir: dir, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	defer func() {
		if err != nil {
			env.stop()
			_ = os.RemoveAll(env.dir)
		}
	}()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Workers = b.Workers
	env.imgDir = cfg.ImageDir()
	if dbName == "postgres" {
		if cfg.Database, env.drop, err = createBenchDatabase(ctx, b.PostgresURL); err != nil {
			return env, err
		}
	}
	opt := app.Options{Logger: b.Logger, Migrate: true, FetchCooldown: b.FetchCooldown, FetchPollInterval: b.FetchPollInterval}
	if b.ProviderConcurrency > 0 {
		opt.Limits = map[string]ratelimit.Limits{"preview": {Concurrency: b.ProviderConcurrency}}
	}
	if env.app, err = app.Open(ctx, cfg, opt); err != nil {
		return env, err
	}
	u, ws, err := app.EnsureAdmin(ctx, env.app.DB, app.DefaultAdminEmail)
	if err != nil {
		return env, err
	}
	if env.token, err = app.CreateToken(ctx, env.app.DB, u, ws, "bench"); err != nil {
		return env, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return env, err
	}
	env.base = "http://" + ln.Addr().String()
	env.httpSrv = &http.Server{Handler: env.app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = env.httpSrv.Serve(ln) }()
	if !work {
		return env, nil
	}
	if err := env.app.StartWorkers(ctx); err != nil {
		return env, err
	}
	return env, nil
}

// stop stops the server and drops its PostgreSQL database; its folder is
// left for the caller to remove.
func (env *benchServer) stop() {
	if env.httpSrv != nil {
		_ = env.httpSrv.Close()
	}
	if env.app != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = env.app.River.Stop(stopCtx) // an error when it never started
		cancel()
		env.app.Close()
	}
	if env.drop != nil {
		env.drop()
	}
}

// createBenchDatabase creates a database with a random name on the server
// adminURL names and returns its URL and a function that drops it.
func createBenchDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "bulkgen_bench_" + hex.EncodeToString(suffix[:])
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		_ = admin.Close()
		return "", nil, fmt.Errorf("postgres: create database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		_ = admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(dctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		_ = admin.Close()
	}
	return u.String(), drop, nil
}

// batchState is the part of GET /api/v1/batches/{id} the benchmark reads.
type batchState struct {
	ID         int64            `json:"id"`
	Status     string           `json:"status"`
	Total      int64            `json:"total"`
	Counts     map[string]int64 `json:"counts"`
	FinishedAt *time.Time       `json:"finished_at"`
}

// finalBatch lists the statuses after which a batch does not change.
var finalBatch = []string{string(store.BatchSucceeded), string(store.BatchFailed), string(store.BatchPartial), string(store.BatchCanceled)}

// runBatch submits n preview images as a TXT input through POST
// /api/v1/batches and polls the batch until it is final. The time runs
// from just before the POST until the batch's finished_at, the moment the
// server settled it (same clock: the server runs in this process), so it
// does not depend on how often the status is polled; submit is the POST's
// own time.
//
// Reading the status counts the batch's items, which on PostgreSQL cost
// about 3 ms for 5,000 items: polled every 50 ms, as before, that was a
// tenth of the database's work in the queue scenario.
func (env *benchServer) runBatch(ctx context.Context, n int, size string, opts map[string]string, poll time.Duration) (st batchState, elapsed, submit time.Duration, err error) {
	var text strings.Builder
	for i := range n {
		fmt.Fprintf(&text, "benchmark image %d of a lighthouse at dusk\n", i)
	}
	body, err := json.Marshal(map[string]any{
		"name": "bench", "text": text.String(),
		"defaults": map[string]any{"model": "preview", "size": size, "format": "png", "options": opts},
	})
	if err != nil {
		return st, 0, 0, err
	}
	start := time.Now()
	if err := env.do(ctx, http.MethodPost, "/api/v1/batches", body, http.StatusCreated, &st); err != nil {
		return st, 0, 0, err
	}
	submit = time.Since(start)
	if st.Total != int64(n) {
		return st, 0, submit, fmt.Errorf("batch %d has %d items, want %d", st.ID, st.Total, n)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for !slices.Contains(finalBatch, st.Status) {
		select {
		case <-ctx.Done():
			return st, time.Since(start), submit, ctx.Err()
		case <-t.C:
		}
		if err := env.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/batches/%d", st.ID), nil, http.StatusOK, &st); err != nil {
			return st, time.Since(start), submit, err
		}
	}
	if st.FinishedAt == nil {
		return st, time.Since(start), submit, fmt.Errorf("batch %d is %s without finished_at", st.ID, st.Status)
	}
	return st, st.FinishedAt.Sub(start), submit, nil
}

// do sends one API request and decodes its JSON answer into out.
func (env *benchServer) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, env.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+env.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := env.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %.500s", method, path, resp.Status, data)
	}
	return json.Unmarshal(data, out)
}

// measureExport streams the batch's ZIP into io.Discard while sampling
// the heap, then reads every image file of the batch from the image
// folder into io.Discard, as `cat files > /dev/null` would. Both read
// files the batch has just written, so both find them in the page cache.
func (env *benchServer) measureExport(ctx context.Context, batchID int64, res *serveResult) error {
	keys, err := env.app.DB.BatchBlobKeys(ctx, env.app.DB.Reader(), batchID)
	if err != nil {
		return err
	}
	start := time.Now()
	buf := make([]byte, 32<<10)
	for _, k := range keys {
		f, err := os.Open(filepath.Join(env.imgDir, filepath.FromSlash(k)))
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, f, buf)
		_ = f.Close()
		if err != nil {
			return err
		}
		res.DiskBytes += n
		res.DiskFiles++
	}
	res.DiskTime = time.Since(start)

	runtime.GC()
	debug.FreeOSMemory()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := sampleHeap(10 * time.Millisecond)
	defer peak()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/batches/%d/export.zip", env.base, batchID), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+env.token)
	start = time.Now()
	resp, err := env.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("export: %s: %s", resp.Status, msg)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	res.ZipTime, res.ZipBytes = time.Since(start), n
	if p := peak(); p > base.HeapInuse {
		res.PeakHeap = p - base.HeapInuse
	}
	if res.DiskFiles != res.Images {
		return fmt.Errorf("export: the batch has %d image files, want %d", res.DiskFiles, res.Images)
	}
	return nil
}

func printServeResults(w io.Writer, b serveBench, results []serveResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	var queue, limit, exp []serveResult
	for _, r := range results {
		switch r.Scenario {
		case scenarioQueue:
			queue = append(queue, r)
		case scenarioLimit:
			limit = append(limit, r)
		case scenarioExport:
			exp = append(exp, r)
		}
	}
	if len(queue) > 0 {
		fmt.Fprintf(w, "Queue overhead: preview at latency 0, %s PNG, %s, one batch: from POST /api/v1/batches to the batch's finished_at\n", b.Size, b.workersText())
		fmt.Fprintln(tw, "database\timages\tfailed\ttime\tof it POST\tCPU/image\tmachine CPU/image\timages/s\ttarget\tmet\t")
		for _, r := range queue {
			target := targetQueueSQLite
			if r.Database == "postgres" {
				target = targetQueuePostgres
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%.0f\t≥%.0f\t%s\t\n", r.Database, r.Succeeded, r.Failed,
				r.Elapsed.Round(time.Millisecond), r.Submit.Round(time.Millisecond), perImage(r.CPU, r.Succeeded),
				perImage(r.MachineCPU, r.Succeeded), r.Rate(), target, yes(r.OK() && r.Rate() >= target))
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if len(limit) > 0 {
		fmt.Fprintf(w, "Throughput against a limit: preview at latency %s, %s PNG, %s\n", b.Latency, b.Size, b.workersText())
		fmt.Fprintln(tw, "database\timages\tfailed\ttime\timages/s\ttheoretical\tachieved\ttarget\tmet\t")
		for _, r := range limit {
			share := r.Rate() / r.Theory
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%.1f\t%.1f%%\t≥%.0f%%\t%s\t\n", r.Database, r.Succeeded, r.Failed,
				r.Elapsed.Round(time.Millisecond), r.Rate(), r.Theory, 100*share, 100*targetLimitShare,
				yes(r.OK() && share >= targetLimitShare))
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if len(exp) > 0 {
		fmt.Fprintf(w, "Export: GET /api/v1/batches/{id}/export.zip of %d %s PNGs into io.Discard vs reading the same files from disk\n", b.Images, b.ExportSize)
		fmt.Fprintln(tw, "database\tfiles\tfile MiB\tdisk read\tdisk MiB/s\tzip MiB\tzip time\tzip MiB/s\tzip files/s\tzip/disk time\tpeak heap MiB\t")
		for _, r := range exp {
			mib := func(n int64) float64 { return float64(n) / (1 << 20) }
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%.0f\t%.1f\t%s\t%.0f\t%.0f\t%.2f×\t%.1f\t\n", r.Database, r.DiskFiles, mib(r.DiskBytes),
				r.DiskTime.Round(time.Millisecond), mib(r.DiskBytes)/r.DiskTime.Seconds(), mib(r.ZipBytes),
				r.ZipTime.Round(time.Millisecond), mib(r.ZipBytes)/r.ZipTime.Seconds(), float64(r.DiskFiles)/r.ZipTime.Seconds(),
				r.ZipTime.Seconds()/r.DiskTime.Seconds(), float64(r.PeakHeap)/(1<<20))
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
}
