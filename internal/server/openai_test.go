package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/riverqueue/river"

	"bulkgen/internal/batch"
	"bulkgen/internal/catalog"
	"bulkgen/internal/generate"
	"bulkgen/internal/metrics"
	"bulkgen/internal/provider/registry"
	"bulkgen/internal/queue"
	"bulkgen/internal/store"
)

// withWorker runs the real image worker (preview engine) on a started River
// client, so that requests go the whole way: batch, job, provider, blob,
// image row.
func withWorker(t *testing.T, m *metrics.Metrics) func(*Deps) {
	return func(d *Deps) {
		reg, err := registry.Build(registry.Config{Catalog: catalog.Default()})
		if err != nil {
			t.Fatalf("registry: %v", err)
		}
		svc := newTestService(d.DB)
		w := &generate.ImageWorker{DB: d.DB, Blobs: d.Ext.Blobs, Generator: &generate.Generator{Providers: reg},
			Settler: svc, Observer: m, JobTimeout: 30 * time.Second}
		workers := river.NewWorkers()
		river.AddWorker(workers, w)
		rc, err := queue.New(t.Context(), d.DB, queue.Config{
			Queues:            map[string]queue.Queue{batch.QueueFor("preview"): {MaxWorkers: 4}},
			FetchCooldown:     5 * time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
			MaxAttempts:       3,
			Retry:             generate.Policy{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond},
			TestOnly:          true,
		}, workers, nil)
		if err != nil {
			t.Fatalf("river client: %v", err)
		}
		if err := rc.Start(t.Context()); err != nil {
			t.Fatalf("start river: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = rc.Stop(ctx)
		})
		svc.Queue = rc
		d.Ext.Batches = svc
		d.Ext.Metrics = m
		d.Ext.OpenAIPoll = 10 * time.Millisecond
	}
}

func openAIClient(b *testBundle, token string) openai.Client {
	return openai.NewClient(option.WithBaseURL(b.URL+"/v1/"), option.WithAPIKey(token), option.WithMaxRetries(0))
}

func TestOpenAIGenerateB64(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	b := newTestBundle(t, withWorker(t, m))
	client := openAIClient(b, b.A.Token)
	resp, err := client.Images.Generate(t.Context(), openai.ImageGenerateParams{
		Prompt: "a lighthouse at dusk", Model: "preview", N: openai.Int(2), Size: "96x64", OutputFormat: "png",
	})
	if err != nil {
		t.Fatalf("Images.Generate: %v", err)
	}
	if len(resp.Data) != 2 {
		t.Fatalf("got %d images, want 2", len(resp.Data))
	}
	for i, d := range resp.Data {
		raw, err := base64.StdEncoding.DecodeString(d.B64JSON)
		if err != nil {
			t.Fatalf("image %d: b64_json: %v", i, err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(raw))
		if err != nil || cfg.Width != 96 || cfg.Height != 64 {
			t.Errorf("image %d: PNG %dx%d (%v), want 96x64", i, cfg.Width, cfg.Height, err)
		}
	}
	if resp.Size != "96x64" || resp.OutputFormat != "png" || resp.Created == 0 {
		t.Errorf("response size %q format %q created %d", resp.Size, resp.OutputFormat, resp.Created)
	}

	// The request is in the history as a batch of two succeeded items.
	var extra struct {
		BatchID int64 `json:"bulkgen_batch_id"`
	}
	if err := jsonUnmarshal(resp.RawJSON(), &extra); err != nil || extra.BatchID == 0 {
		t.Fatalf("no bulkgen_batch_id in %s", resp.RawJSON()[:min(200, len(resp.RawJSON()))])
	}
	bt, err := b.DB.GetBatch(t.Context(), b.DB.Reader(), b.A.WorkspaceID, extra.BatchID)
	if err != nil {
		t.Fatalf("batch in history: %v", err)
	}
	items := b.items(t, b.A, bt.ID)
	if len(items) != 2 || items[0].Status != store.ItemSucceeded || items[0].Prompt != "a lighthouse at dusk" {
		t.Errorf("history items %+v", items)
	}
	if _, err := b.DB.GetBatch(t.Context(), b.DB.Reader(), b.B.WorkspaceID, extra.BatchID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("workspace B sees A's batch: %v", err)
	}

	// The worker reported to the same metrics.
	r := b.do(t, "GET", "/metrics", "", nil)
	if !strings.Contains(string(r.Body), `bulkgen_images_generated_total{provider="preview"} 2`) {
		t.Errorf("metrics lack the two generated images:\n%s", grepLines(string(r.Body), "bulkgen_images"))
	}
}

func TestOpenAIGenerateURL(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, withWorker(t, nil))
	client := openAIClient(b, b.A.Token)
	resp, err := client.Images.Generate(t.Context(), openai.ImageGenerateParams{
		Prompt: "a {literal|braces} prompt", Model: "preview", Size: "64x64", ResponseFormat: "url", OutputFormat: "jpeg",
	})
	if err != nil {
		t.Fatalf("Images.Generate: %v", err)
	}
	if len(resp.Data) != 1 || resp.Data[0].URL == "" || resp.Data[0].B64JSON != "" {
		t.Fatalf("data %+v, want one url", resp.Data)
	}
	link := resp.Data[0].URL
	if !strings.HasPrefix(link, b.URL+"/v1/files/") {
		t.Fatalf("url %q is not on this server", link)
	}
	get := func(u string) (int, string, []byte) {
		r, err := http.Get(u) // no token: the signature is the authorisation
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		return r.StatusCode, r.Header.Get("Content-Type"), body
	}
	status, ct, body := get(link)
	if status != http.StatusOK || ct != "image/jpeg" || len(body) < 100 || body[0] != 0xFF {
		t.Errorf("GET url: %d %q %d bytes", status, ct, len(body))
	}
	// A tampered or foreign link is a 404, like a missing image.
	signed := strings.TrimPrefix(link, b.URL+"/v1/files/")
	payload, mac, _ := strings.Cut(signed, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte("1.1.99999999999"))
	for _, bad := range []string{payload + "." + mac + "x", forged + "." + mac, "nothing", payload} {
		if status, _, _ := get(b.URL + "/v1/files/" + bad); status != http.StatusNotFound {
			t.Errorf("GET /v1/files/%s: %d, want 404", bad, status)
		}
	}
	// An expired link stops working.
	id, ws, ok := b.Server.verifyFile(signed)
	if !ok {
		t.Fatal("the server does not verify its own link")
	}
	if status, _, _ := get(b.URL + "/v1/files/" + b.Server.signFile(id, ws, time.Now().Add(-time.Minute))); status != http.StatusNotFound {
		t.Errorf("expired link: %d, want 404", status)
	}
	// The prompt was taken literally: braces are not a template.
	var extra struct {
		BatchID int64 `json:"bulkgen_batch_id"`
	}
	if err := jsonUnmarshal(resp.RawJSON(), &extra); err != nil {
		t.Fatal(err)
	}
	if its := b.items(t, b.A, extra.BatchID); len(its) != 1 || its[0].Prompt != "a {literal|braces} prompt" {
		t.Errorf("history items %+v, want the literal prompt", its)
	}
}

func TestOpenAIModels(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, nil)
	client := openAIClient(b, b.A.Token)
	page, err := client.Models.List(t.Context())
	if err != nil {
		t.Fatalf("Models.List: %v", err)
	}
	ids := map[string]openai.Model{}
	for _, m := range page.Data {
		ids[m.ID] = m
	}
	if m, ok := ids["preview"]; !ok || m.OwnedBy != "preview" || m.Object != "model" {
		t.Errorf("preview missing or wrong: %+v", m)
	}
	if _, ok := ids["openai/gpt-image-2"]; !ok {
		t.Errorf("openai/gpt-image-2 missing from %d models", len(ids))
	}
	if _, ok := ids["openai/dall-e-2"]; ok {
		t.Errorf("a retired model is listed")
	}
	if page.Object != "list" {
		t.Errorf("object %q, want list", page.Object)
	}
}

// TestOpenAIModelsAvailable: GET /v1/models lists what can run here;
// ?all=true adds the models of providers without a key, marked unavailable
// with the reason.
func TestOpenAIModelsAvailable(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, func(d *Deps) {
		d.Ext.Available = func(p string) error {
			if p == "preview" || p == "fal" {
				return nil
			}
			return fmt.Errorf("provider %s is not configured (set its key)", p)
		}
	})
	type entry struct {
		ID          string `json:"id"`
		OwnedBy     string `json:"owned_by"`
		Available   *bool  `json:"available"`
		Unavailable string `json:"unavailable_reason"`
	}
	list := func(t *testing.T, query string) map[string]entry {
		t.Helper()
		r := b.do(t, "GET", "/v1/models"+query, b.A.Token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /v1/models%s: %d %s", query, r.Status, r.Body)
		}
		var page struct{ Data []entry }
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		out := map[string]entry{}
		for _, e := range page.Data {
			if e.Available == nil {
				t.Errorf("%s has no available field", e.ID)
			}
			out[e.ID] = e
		}
		return out
	}
	tests := []struct {
		query       string
		unavailable bool // whether models of unconfigured providers are listed
	}{
		{"", false},
		{"?all=false", false},
		{"?all=true", true},
		{"?all=1", true},
	}
	for _, tt := range tests {
		t.Run("query="+tt.query, func(t *testing.T) {
			t.Parallel()
			got := list(t, tt.query)
			if e, ok := got["preview"]; !ok || !*e.Available || e.Unavailable != "" {
				t.Errorf("preview: %+v (listed %v), want available", e, ok)
			}
			if e, ok := got["fal/flux-schnell"]; !ok || !*e.Available {
				t.Errorf("fal/flux-schnell: %+v (listed %v), want available", e, ok)
			}
			e, ok := got["openai/gpt-image-2"]
			switch {
			case ok != tt.unavailable:
				t.Errorf("openai/gpt-image-2 listed = %v, want %v", ok, tt.unavailable)
			case ok && (*e.Available || !strings.Contains(e.Unavailable, "provider openai is not configured")):
				t.Errorf("openai/gpt-image-2 = %+v, want unavailable with the reason", e)
			}
			for id, e := range got {
				if !tt.unavailable && !*e.Available {
					t.Errorf("%s is listed though unavailable", id)
				}
			}
		})
	}
	r := b.do(t, "GET", "/v1/models?all=maybe", b.A.Token, nil)
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"param":"all"`) {
		t.Errorf("?all=maybe: %d %s, want 400 naming the parameter", r.Status, r.Body)
	}
}

// TestOpenAIErrors checks that failures reach an OpenAI SDK as the typed
// errors it expects.
func TestOpenAIErrors(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, func(d *Deps) { d.Ext.OpenAITimeout = 300 * time.Millisecond; d.Ext.OpenAIPoll = 10 * time.Millisecond })
	tests := []struct {
		name       string
		token      string
		params     openai.ImageGenerateParams
		wantStatus int
		wantType   string
		wantParam  string
		wantCode   string
	}{
		{"bad token", "bgk_nope", openai.ImageGenerateParams{Prompt: "x", Model: "preview"}, 401, "invalid_request_error", "", "invalid_api_key"},
		{"no token", "", openai.ImageGenerateParams{Prompt: "x", Model: "preview"}, 401, "invalid_request_error", "", "invalid_api_key"},
		{"unknown model", b.A.Token, openai.ImageGenerateParams{Prompt: "x", Model: "no-such-model"}, 404, "invalid_request_error", "model", "model_not_found"},
		{"no model", b.A.Token, openai.ImageGenerateParams{Prompt: "x"}, 400, "invalid_request_error", "model", "missing_required_parameter"},
		{"empty prompt", b.A.Token, openai.ImageGenerateParams{Prompt: " ", Model: "preview"}, 400, "invalid_request_error", "prompt", "missing_required_parameter"},
		{"n too big", b.A.Token, openai.ImageGenerateParams{Prompt: "x", Model: "preview", N: openai.Int(11)}, 400, "invalid_request_error", "n", "invalid_value"},
		{"bad size", b.A.Token, openai.ImageGenerateParams{Prompt: "x", Model: "preview", Size: "huge"}, 400, "invalid_request_error", "size", "invalid_value"},
		{"NUL in the prompt", b.A.Token, openai.ImageGenerateParams{Prompt: "a \x00 cat", Model: "preview"}, 400, "invalid_request_error", "prompt", "invalid_value"},
		{"gif", b.A.Token, openai.ImageGenerateParams{Prompt: "x", Model: "preview", OutputFormat: "gif"}, 400, "invalid_request_error", "output_format", "invalid_value"},
		{"stream", b.A.Token, openai.ImageGenerateParams{Prompt: "x", Model: "preview", PartialImages: openai.Int(1)}, 400, "invalid_request_error", "stream", "unsupported_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := openAIClient(b, tt.token)
			_, err := client.Images.Generate(t.Context(), tt.params)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *openai.Error", err)
			}
			if apiErr.StatusCode != tt.wantStatus || apiErr.Type != tt.wantType || apiErr.Param != tt.wantParam || apiErr.Code != tt.wantCode {
				t.Errorf("got %d type %q param %q code %q (%s), want %d %q %q %q", apiErr.StatusCode, apiErr.Type, apiErr.Param,
					apiErr.Code, apiErr.Message, tt.wantStatus, tt.wantType, tt.wantParam, tt.wantCode)
			}
		})
	}

	t.Run("unknown argument", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, "POST", "/v1/images/generations", b.A.Token, `{"prompt":"x","model":"preview","colour":"red"}`)
		var e struct {
			Error struct {
				Message, Type string
				Param, Code   *string
			}
		}
		r.JSON(t, &e)
		if r.Status != 400 || e.Error.Type != "invalid_request_error" || e.Error.Param == nil || *e.Error.Param != "colour" ||
			!strings.Contains(e.Error.Message, "Unrecognized request argument supplied: colour") {
			t.Errorf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("malformed json", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, "POST", "/v1/images/generations", b.A.Token, `{"prompt":`)
		if r.Status != 400 || !strings.Contains(string(r.Body), `"type":"invalid_request_error"`) {
			t.Errorf("got %d %s", r.Status, r.Body)
		}
	})
	// No worker serves this bundle: the request times out with OpenAI's
	// error, and the batch stays in the history with the alias resolved
	// to the catalogue's gpt-image-2.
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		client := openAIClient(b, b.A.Token)
		_, err := client.Images.Generate(t.Context(), openai.ImageGenerateParams{Prompt: "timeout test", Model: "gpt-image-2", Size: "1024x1024"})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusGatewayTimeout || apiErr.Type != "server_error" || apiErr.Code != "timeout" {
			t.Fatalf("err = %v, want a 504 timeout", err)
		}
		bs, err := b.DB.ListBatches(t.Context(), b.DB.Reader(), b.A.WorkspaceID, store.BatchFilter{}, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, bt := range bs {
			for _, it := range b.items(t, b.A, bt.ID) {
				found = found || (it.Prompt == "timeout test" && it.Model == "openai/gpt-image-2" && it.Provider == "openai")
			}
		}
		if !found {
			t.Error("no openai/gpt-image-2 item in the history after the gpt-image-2 request")
		}
	})
}

// TestOpenAIFailedImage: an item the provider refused becomes OpenAI's
// content-policy error.
func TestOpenAIFailedImage(t *testing.T) {
	t.Parallel()
	b := newTestBundle(t, func(d *Deps) { d.Ext.OpenAIPoll = 10 * time.Millisecond })
	// Stand in for the worker: refuse every pending item of workspace A.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			items, _ := b.DB.ListItems(ctx, b.DB.Reader(), b.A.WorkspaceID, store.ItemFilter{Status: store.ItemPending}, 0, 10)
			for _, it := range items {
				_, _ = b.DB.UpdateItemStatus(ctx, b.DB.Writer(), it.ID, store.ItemUpdate{Status: store.ItemFailed,
					Error: "the prompt was refused by the provider's safety system", ErrorClass: "rejected", Attempts: 1})
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	client := openAIClient(b, b.A.Token)
	_, err := client.Images.Generate(t.Context(), openai.ImageGenerateParams{Prompt: "x", Model: "preview", Size: "64x64"})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "content_policy_violation" || !strings.Contains(apiErr.Message, "refused") {
		t.Fatalf("err = %v, want a 400 content_policy_violation", err)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
