package a1111_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/a1111"
	"bulkgen/internal/provider/a1111/a1111test"
	"bulkgen/internal/provider/providertest"
)

var baseRequest = provider.Request{
	Model:          "sd_xl_base_1.0",
	Prompt:         "a lighthouse at dusk",
	NegativePrompt: "blurry",
	Width:          512,
	Height:         384,
	Seed:           7,
	HasSeed:        true,
	Count:          2,
}

type bundle struct {
	srv    *a1111test.Server
	client *a1111.Client
}

func setup(t testing.TB, opt a1111test.Options, mod ...func(*a1111.Config)) *bundle {
	t.Helper()
	srv := a1111test.NewServer(t, opt)
	cfg := a1111.Config{BaseURL: srv.URL, Username: opt.Username, Password: provider.Secret(opt.Password),
		Timeout: 10 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	return &bundle{srv: srv, client: a1111.New(cfg)}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			b := setup(t, a1111test.Options{})
			return b.client, b.srv
		},
		Request: baseRequest,
		// A1111 has no throttling (a global lock makes callers wait) and no
		// content moderation in its API.
		Unsupported: []providertest.Fault{providertest.RateLimit, providertest.ContentPolicy},
	})
}

func TestFieldMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		req    provider.Request
		want   map[string]any
		absent []string
	}{
		{
			name: "everything",
			req: provider.Request{Model: "v1-5-pruned-emaonly", Prompt: "a fox", NegativePrompt: "blurry",
				Width: 640, Height: 448, Seed: 99, HasSeed: true, Count: 3, Style: "cinematic",
				Options: map[string]string{"steps": "30", "cfg_scale": "6.5", "sampler_name": "DPM++ 2M", "scheduler": "Karras", "unknown": "x"}},
			want: map[string]any{"prompt": "a fox", "negative_prompt": "blurry", "width": 640.0, "height": 448.0,
				"seed": 99.0, "batch_size": 3.0, "n_iter": 1.0, "steps": 30.0, "cfg_scale": 6.5,
				"sampler_name": "DPM++ 2M", "scheduler": "Karras",
				"override_settings": map[string]any{"sd_model_checkpoint": "v1-5-pruned-emaonly"},
				"styles":            []any{"cinematic"}},
			absent: []string{"unknown"},
		},
		{
			name:   "defaults",
			req:    provider.Request{Prompt: "a fox"},
			want:   map[string]any{"seed": -1.0, "batch_size": 1.0, "negative_prompt": ""},
			absent: []string{"override_settings", "width", "height", "steps", "sampler_name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, a1111test.Options{})
			res, err := providertest.Generate(t, b.client, tt.req)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			providertest.CheckResult(t, tt.req, res)
			var body map[string]any
			if err := json.Unmarshal(b.srv.LastRequest().Body, &body); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				got, _ := json.Marshal(body[k])
				want, _ := json.Marshal(v)
				if string(got) != string(want) {
					t.Errorf("body[%q] = %s, want %s", k, got, want)
				}
			}
			for _, k := range tt.absent {
				if _, ok := body[k]; ok {
					t.Errorf("body has %q, want it absent", k)
				}
			}
		})
	}
}

func TestGridSkippedAndSeedsFromAllSeeds(t *testing.T) {
	t.Parallel()
	b := setup(t, a1111test.Options{Grid: true})
	req := baseRequest
	req.Count, req.Seed = 3, 100
	res, err := providertest.Generate(t, b.client, req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, req, res)
	for i, img := range res.Images {
		// The grid is twice as wide; a real image has the requested size.
		if img.Width != 512 || img.Height != 384 {
			t.Errorf("image %d is %dx%d, want 512x384 (a grid slipped through?)", i, img.Width, img.Height)
		}
		if !img.HasSeed || img.Seed != 100+int64(i) {
			t.Errorf("image %d seed = %d (has %v), want %d", i, img.Seed, img.HasSeed, 100+i)
		}
	}
}

func TestRandomSeedReported(t *testing.T) {
	t.Parallel()
	b := setup(t, a1111test.Options{})
	req := baseRequest
	req.HasSeed = false
	res, err := providertest.Generate(t, b.client, req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if !res.Images[0].HasSeed || res.Images[1].Seed != res.Images[0].Seed+1 {
		t.Errorf("seeds = %d, %d; want consecutive server-chosen seeds", res.Images[0].Seed, res.Images[1].Seed)
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opt    a1111test.Options
		inject providertest.Fault
		req    func(*provider.Request)
		cfg    func(*a1111.Config)
		class  provider.Class
		status int
	}{
		{name: "injected 401", inject: providertest.BadAuth, class: provider.Auth, status: 401},
		{name: "wrong password", opt: a1111test.Options{Username: "u", Password: "right"},
			cfg: func(c *a1111.Config) { c.Password = "wrong" }, class: provider.Auth, status: 401},
		{name: "no credentials", opt: a1111test.Options{Username: "u", Password: "p"},
			cfg: func(c *a1111.Config) { c.Username = "" }, class: provider.Auth, status: 401},
		{name: "unknown sampler", req: func(r *provider.Request) { r.Options = map[string]string{"sampler_name": "Nope"} },
			class: provider.Invalid, status: 404},
		{name: "injected invalid", inject: providertest.InvalidRequest, class: provider.Invalid, status: 404},
		{name: "422 out of range", req: func(r *provider.Request) { r.Width = 32 }, class: provider.Invalid, status: 422},
		{name: "500 out of memory", inject: providertest.ServerError, class: provider.Retryable, status: 500},
		{name: "bad option refused locally", req: func(r *provider.Request) { r.Options = map[string]string{"steps": "many"} },
			class: provider.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mods []func(*a1111.Config)
			if tt.cfg != nil {
				mods = append(mods, tt.cfg)
			}
			b := setup(t, tt.opt, mods...)
			b.srv.Inject(tt.inject, 1)
			req := baseRequest
			if tt.req != nil {
				tt.req(&req)
			}
			_, err := providertest.Generate(t, b.client, req)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Class != tt.class || pe.Status != tt.status {
				t.Errorf("class %s status %d, want %s %d (%v)", pe.Class, pe.Status, tt.class, tt.status, err)
			}
			if pe.Message == "" {
				t.Error("no message")
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, a1111test.Options{Username: "artist", Password: "s3cret-password"})
	if _, err := providertest.Generate(t, b.client, baseRequest); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	req := http.Request{Header: b.srv.LastRequest().Header}
	if u, p, ok := req.BasicAuth(); !ok || u != "artist" || p != "s3cret-password" {
		t.Errorf("basic auth = %q %q %v", u, p, ok)
	}
	models, err := b.client.ListModels(context.Background())
	if err != nil || !slices.Equal(models, a1111test.DefaultModels) {
		t.Errorf("ListModels = %v, %v; want %v", models, err, a1111test.DefaultModels)
	}
}

func TestCancelInterrupts(t *testing.T) {
	t.Parallel()
	b := setup(t, a1111test.Options{})
	b.srv.Inject(providertest.Slow, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(ctx, baseRequest)
		done <- err
	}()
	for !b.srv.Busy() {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if n := b.srv.Interrupts(); n != 1 {
		t.Errorf("server saw %d interrupts, want 1", n)
	}
	for b.srv.Busy() {
		time.Sleep(5 * time.Millisecond) // the interrupted job ends early, or the test times out
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, a1111test.Options{}, func(c *a1111.Config) { c.Timeout = 150 * time.Millisecond })
	b.srv.Inject(providertest.Slow, 1)
	_, err := providertest.Generate(t, b.client, baseRequest)
	if provider.ClassOf(err) != provider.Retryable || !errors.Is(err, provider.ErrTimeout) {
		t.Fatalf("err = %v, want retryable wrapping ErrTimeout", err)
	}
	if b.srv.Interrupts() != 1 {
		t.Error("the timed-out generation was not interrupted")
	}
}
