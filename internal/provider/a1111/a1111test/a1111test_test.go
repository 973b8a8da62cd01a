package a1111test_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"bulkgen/internal/provider/a1111/a1111test"
	"bulkgen/internal/provider/providertest"
)

func progress(t *testing.T, srv *a1111test.Server) map[string]any {
	t.Helper()
	resp, err := http.Get(srv.URL + "/sdapi/v1/progress")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		State map[string]any `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.State
}

func TestProgressAndInterrupt(t *testing.T) {
	t.Parallel()
	srv := a1111test.NewServer(t, a1111test.Options{})
	if st := progress(t, srv); st["job_count"] != 0.0 {
		t.Fatalf("idle job_count = %v, want 0", st["job_count"])
	}
	srv.Inject(providertest.Slow, 1)
	type answer struct {
		Images []string `json:"images"`
		Info   string   `json:"info"`
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/sdapi/v1/txt2img", "application/json",
			bytes.NewReader([]byte(`{"prompt":"x","batch_size":4,"width":64,"height":64}`)))
		var a answer
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
		}
		done <- a
	}()
	for !srv.Busy() {
		time.Sleep(5 * time.Millisecond)
	}
	if st := progress(t, srv); st["job_count"] != 1.0 || st["job"] != "txt2img" {
		t.Errorf("busy state = %v, want job_count 1", st)
	}
	resp, err := http.Post(srv.URL+"/sdapi/v1/interrupt", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	a := <-done
	if len(a.Images) != 1 {
		t.Errorf("interrupted batch returned %d images, want the 1 finished so far", len(a.Images))
	}
	var info struct {
		AllSeeds []int64 `json:"all_seeds"`
	}
	if err := json.Unmarshal([]byte(a.Info), &info); err != nil || len(info.AllSeeds) != 4 {
		t.Errorf("info = %q, want a JSON string with 4 all_seeds", a.Info)
	}
}

func TestAuthChallenge(t *testing.T) {
	t.Parallel()
	srv := a1111test.NewServer(t, a1111test.Options{Username: "u", Password: "p"})
	resp, err := http.Get(srv.URL + "/sdapi/v1/sd-models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Basic" {
		t.Errorf("got %d with WWW-Authenticate %q, want 401 Basic", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
