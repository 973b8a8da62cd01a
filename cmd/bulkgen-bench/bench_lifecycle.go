package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

const benchLifecycleUsageLine = `  bulkgen-bench lifecycle [--images 100000] [--db sqlite,postgres]
      Uploads a batch of --images rows while another client submits one-image
      batches, reads the big batch's status, then cancels it: the upload's
      time, the small batches' worst wait, GET /api/v1/batches/{id} and cancel.
`

// lifecycleResult is one database's measurement.
type lifecycleResult struct {
	Database       string
	Images         int
	Upload         time.Duration // POST of the big batch, to its 201
	Small          []time.Duration
	Get            []time.Duration
	Cancel         time.Duration
	CanceledImages int64
}

func benchLifecycle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench lifecycle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	images := fs.Int("images", 100_000, "rows of the uploaded batch (one image each)")
	dbs := fs.String("db", "sqlite,postgres", "databases to run on: sqlite, postgres")
	pg := fs.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL server on which a throwaway database is created for each run")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	fmt.Fprintf(stdout, "$ bulkgen-bench lifecycle %s\n", strings.Join(args, " "))
	fmt.Fprintf(stdout, "load average at start %s; no workers run, so every job stays queued until the cancel\n\n", loadAverage())
	var results []lifecycleResult
	for _, db := range splitList(*dbs) {
		r, err := lifecycleOnce(ctx, &serveBench{Images: *images, PostgresURL: *pg, Progress: stderr}, db)
		if err != nil {
			return fmt.Errorf("%s: %w", db, err)
		}
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "database\timages\tupload\tsmall batches\tsmall: worst\ttarget\tGET batch p50\tGET p99\tcancel\ttarget\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t<1s\t%s\t%s\t%s\t<2s\t\n", r.Database, r.Images, r.Upload.Round(time.Millisecond),
			len(r.Small), slices.Max(r.Small).Round(time.Millisecond), quantile(r.Get, 0.5).Round(10*time.Microsecond),
			quantile(r.Get, 0.99).Round(10*time.Microsecond), r.Cancel.Round(time.Millisecond))
	}
	return tw.Flush()
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func lifecycleOnce(ctx context.Context, b *serveBench, dbName string) (lifecycleResult, error) {
	res := lifecycleResult{Database: dbName, Images: b.Images}
	env, err := startBenchServer(ctx, b, dbName, false)
	if err != nil {
		return res, err
	}
	defer func() {
		env.stop()
		_ = os.RemoveAll(env.dir)
	}()
	body, ctype, err := uploadBody(b.Images)
	if err != nil {
		return res, err
	}
	// The other client: a one-image batch every 100 ms while the upload
	// is submitted.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var smallErr error
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			var out batchState
			if err := env.do(ctx, "POST", "/api/v1/batches", []byte(`{"prompts":["a small one"],"defaults":{"model":"preview","size":"64x64"}}`),
				http.StatusCreated, &out); err != nil {
				smallErr = err
				return
			}
			res.Small = append(res.Small, time.Since(t0))
		}
	}()
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, "POST", env.base+"/api/v1/batches", bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Authorization", "Bearer "+env.token)
	req.Header.Set("Content-Type", ctype)
	resp, err := env.hc.Do(req)
	if err != nil {
		return res, err
	}
	data, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	res.Upload = time.Since(t0)
	close(stop)
	wg.Wait()
	if resp.StatusCode != http.StatusCreated {
		return res, fmt.Errorf("upload: %s: %.300s", resp.Status, data)
	}
	if smallErr != nil {
		return res, smallErr
	}
	if len(res.Small) == 0 {
		return res, fmt.Errorf("no small batch was submitted during the upload")
	}
	id := batchIDOf(data)
	path := fmt.Sprintf("/api/v1/batches/%d", id)
	for range 200 {
		t := time.Now()
		var st batchState
		if err := env.do(ctx, "GET", path, nil, http.StatusOK, &st); err != nil {
			return res, err
		}
		res.Get = append(res.Get, time.Since(t))
	}
	t := time.Now()
	var st batchState
	if err := env.do(ctx, "POST", path+"/cancel", nil, http.StatusOK, &st); err != nil {
		return res, err
	}
	res.Cancel = time.Since(t)
	res.CanceledImages = st.Counts["canceled"]
	if st.Status != "canceled" || res.CanceledImages != int64(b.Images) {
		return res, fmt.Errorf("after cancel: %s with %d canceled, want canceled with %d", st.Status, res.CanceledImages, b.Images)
	}
	fmt.Fprintf(b.Progress, "bench lifecycle: %s done\n", dbName)
	return res, nil
}

// uploadBody is a multipart upload of an n-row product CSV.
func uploadBody(n int) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"model": "preview", "size": "64x64", "template": "Studio photo of a {color} {product}"} {
		if err := mw.WriteField(k, v); err != nil {
			return nil, "", err
		}
	}
	fw, err := mw.CreateFormFile("file", "products.csv")
	if err != nil {
		return nil, "", err
	}
	if err := benchCSV(fw, n); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

// batchIDOf reads "id" from a batch answer.
func batchIDOf(data []byte) int64 {
	var b struct {
		ID int64 `json:"id"`
	}
	_ = json.Unmarshal(data, &b)
	return b.ID
}
