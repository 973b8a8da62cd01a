package comfyui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider"
	"bulkgen/internal/provider/comfyui"
	"bulkgen/internal/provider/comfyui/comfyuitest"
	"bulkgen/internal/provider/providertest"
)

var baseRequest = provider.Request{
	Model:          "sd_xl_base_1.0.safetensors",
	Prompt:         "a lighthouse at dusk",
	NegativePrompt: "blurry",
	Width:          512,
	Height:         384,
	Seed:           42,
	HasSeed:        true,
	Count:          2,
}

func sampleWorkflow(t testing.TB) []byte {
	t.Helper()
	wf, err := os.ReadFile("testdata/sdxl_workflow.json")
	if err != nil {
		t.Fatal(err)
	}
	return wf
}

// editWorkflow decodes the sample workflow, lets edit change it and
// encodes it again.
func editWorkflow(t testing.TB, edit func(map[string]map[string]any)) []byte {
	t.Helper()
	var wf map[string]map[string]any
	if err := json.Unmarshal(sampleWorkflow(t), &wf); err != nil {
		t.Fatal(err)
	}
	edit(wf)
	b, err := json.Marshal(wf)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type bundle struct {
	srv    *comfyuitest.Server
	client *comfyui.Client
}

func setup(t testing.TB, opt comfyuitest.Options, mod ...func(*comfyui.Config)) *bundle {
	t.Helper()
	srv := comfyuitest.NewServer(t, opt)
	cfg := comfyui.Config{
		BaseURL:      srv.URL,
		Workflow:     sampleWorkflow(t),
		PollInterval: 5 * time.Millisecond,
		Timeout:      10 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := comfyui.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &bundle{srv: srv, client: c}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (provider.Provider, providertest.Controller) {
			b := setup(t, comfyuitest.Options{})
			return b.client, b.srv
		},
		Request: baseRequest,
		// ComfyUI has no keys, no throttling (one FIFO queue) and no
		// content moderation.
		Unsupported: []providertest.Fault{providertest.BadAuth, providertest.RateLimit, providertest.ContentPolicy},
	})
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPlaceholderSubstitution(t *testing.T) {
	t.Parallel()
	b := setup(t, comfyuitest.Options{})
	req := baseRequest
	req.Options = map[string]string{"steps": "30"}
	res, err := providertest.Generate(t, b.client, req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	providertest.CheckResult(t, req, res)

	var body struct {
		Prompt   map[string]struct{ Inputs map[string]any } `json:"prompt"`
		ClientID string                                     `json:"client_id"`
		PromptID string                                     `json:"prompt_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(b.srv.LastRequest().Body))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		node, input string
		want        any
	}{
		{"4", "ckpt_name", "sd_xl_base_1.0.safetensors"},
		{"6", "text", "a lighthouse at dusk"},
		{"7", "text", "blurry"},
		{"5", "width", json.Number("512")},
		{"5", "height", json.Number("384")},
		{"5", "batch_size", json.Number("2")},
		{"3", "seed", json.Number("42")},
		{"3", "steps", json.Number("30")},
		{"3", "cfg", json.Number("7.0")}, // untouched inputs keep their form
		{"9", "filename_prefix", "bulkgen"},
	}
	for _, tt := range tests {
		got := body.Prompt[tt.node].Inputs[tt.input]
		if got != tt.want {
			t.Errorf("node %s %s = %#v (%T), want %#v (%T)", tt.node, tt.input, got, got, tt.want, tt.want)
		}
	}
	if !uuidV4.MatchString(body.PromptID) || !uuidV4.MatchString(body.ClientID) {
		t.Errorf("prompt_id %q / client_id %q are not v4 UUIDs", body.PromptID, body.ClientID)
	}
	if res.RequestID != body.PromptID {
		t.Errorf("RequestID = %q, want prompt_id %q", res.RequestID, body.PromptID)
	}
	for _, img := range res.Images {
		if !img.HasSeed || img.Seed != 42 || img.Format != "png" || img.Width != 512 || img.Height != 384 {
			t.Errorf("image = %s %dx%d seed %d (%v), want png 512x384 seed 42", img.Format, img.Width, img.Height, img.Seed, img.HasSeed)
		}
	}
}

func TestPlaceholderDefaultsAndEmbedding(t *testing.T) {
	t.Parallel()
	wf := editWorkflow(t, func(wf map[string]map[string]any) {
		wf["6"]["inputs"].(map[string]any)["text"] = "masterpiece, {{prompt}}, {{ width }}px"
		wf["4"]["inputs"].(map[string]any)["ckpt_name"] = "sd_xl_base_1.0.safetensors"
	})
	b := setup(t, comfyuitest.Options{}, func(c *comfyui.Config) { c.Workflow = wf })
	req := provider.Request{Prompt: "a fox", Count: 1} // no model, size, seed or steps
	res, err := providertest.Generate(t, b.client, req)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	var body struct {
		Prompt map[string]struct{ Inputs map[string]any } `json:"prompt"`
	}
	if err := json.Unmarshal(b.srv.LastRequest().Body, &body); err != nil {
		t.Fatal(err)
	}
	if got := body.Prompt["6"].Inputs["text"]; got != "masterpiece, a fox, 1024px" {
		t.Errorf("embedded text = %q", got)
	}
	if got := body.Prompt["3"].Inputs["steps"]; got != 20.0 {
		t.Errorf("default steps = %v, want 20", got)
	}
	seed, ok := body.Prompt["3"].Inputs["seed"].(float64)
	if !ok || seed < 0 {
		t.Fatalf("random seed = %#v, want a non-negative number", body.Prompt["3"].Inputs["seed"])
	}
	if img := res.Images[0]; !img.HasSeed || float64(img.Seed) != seed {
		t.Errorf("reported seed %d, sent %v", img.Seed, seed)
	}
}

func TestModelPlaceholderNeedsModel(t *testing.T) {
	t.Parallel()
	b := setup(t, comfyuitest.Options{})
	req := baseRequest
	req.Model = ""
	_, err := providertest.Generate(t, b.client, req)
	if provider.ClassOf(err) != provider.Invalid || b.srv.Calls() != 0 {
		t.Errorf("err = %v, calls = %d; want invalid before any call", err, b.srv.Calls())
	}
}

func TestNewRejectsBadWorkflow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		workflow string
		want     string
	}{
		{"empty", ``, "empty"},
		{"not JSON", `{"3": `, "not JSON"},
		{"array", `[{"class_type":"KSampler","inputs":{}}]`, "JSON object mapping node ids"},
		{"no class_type", `{"6":{"inputs":{"text":"{{prompt}}"}}}`, `node "6" has no class_type`},
		{"no inputs", `{"6":{"class_type":"CLIPTextEncode"}}`, `node "6" has no inputs`},
		{"node not object", `{"6":"CLIPTextEncode"}`, `node "6" is not an object`},
		{"no prompt placeholder", `{"6":{"class_type":"CLIPTextEncode","inputs":{"text":"a fox"}}}`, `no "{{prompt}}" placeholder`},
		{"unknown placeholder", `{"6":{"class_type":"CLIPTextEncode","inputs":{"text":"{{prompt}} {{lora}}"}}}`, `unknown placeholder "{{lora}}"`},
		{"UI format", `{"nodes":[],"links":[],"version":0.4}`, "Export (API)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := comfyui.New(comfyui.Config{Workflow: []byte(tt.workflow)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := comfyui.New(comfyui.Config{Workflow: sampleWorkflow(t), BaseURL: "ftp://host"}); err == nil {
		t.Error("New accepted an ftp base URL")
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		inject   providertest.Fault
		workflow func(map[string]map[string]any)
		model    string
		class    provider.Class
		status   int
		wantMsg  string
	}{
		{name: "injected validation failure", inject: providertest.InvalidRequest, class: provider.Invalid, status: 400,
			wantMsg: "node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name"},
		{name: "unknown checkpoint", model: "nope.safetensors", class: provider.Invalid, status: 400,
			wantMsg: "'nope.safetensors' not in"},
		{name: "broken link", class: provider.Invalid, status: 400, wantMsg: "links to node '99'",
			workflow: func(wf map[string]map[string]any) { wf["8"]["inputs"].(map[string]any)["vae"] = []any{"99", 2} }},
		{name: "no output node", class: provider.Invalid, status: 400, wantMsg: "Prompt has no outputs",
			workflow: func(wf map[string]map[string]any) { delete(wf, "9") }},
		{name: "node exception", class: provider.Invalid, wantMsg: "FailNode: this node always fails",
			workflow: func(wf map[string]map[string]any) {
				wf["10"] = map[string]any{"class_type": "FailNode", "inputs": map[string]any{"images": []any{"8", 0}}}
			}},
		{name: "out of memory", inject: providertest.ServerError, class: provider.Retryable, wantMsg: "out of memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, comfyuitest.Options{}, func(c *comfyui.Config) {
				if tt.workflow != nil {
					c.Workflow = editWorkflow(t, tt.workflow)
				}
			})
			b.srv.Inject(tt.inject, 1)
			req := baseRequest
			if tt.model != "" {
				req.Model = tt.model
			}
			_, err := providertest.Generate(t, b.client, req)
			var pe *provider.Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *provider.Error", err)
			}
			if pe.Class != tt.class || pe.Status != tt.status {
				t.Errorf("class %s status %d, want %s %d (%v)", pe.Class, pe.Status, tt.class, tt.status, err)
			}
			if !strings.Contains(pe.Message, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", pe.Message, tt.wantMsg)
			}
		})
	}
}

// startSlow starts a Generate whose prompt runs until interrupted and
// returns its cancel func and result channel once the server runs it.
func startSlow(t *testing.T, b *bundle) (context.CancelFunc, <-chan error) {
	t.Helper()
	b.srv.Inject(providertest.Slow, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(ctx, baseRequest)
		done <- err
	}()
	waitFor(t, func() bool { return b.srv.Running() != "" })
	return cancel, done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCancelInterruptsRunningPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfyuitest.Options{})
	cancel, done := startSlow(t, b)
	id := b.srv.Running()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if n := b.srv.Interrupts(); n != 1 {
		t.Errorf("server saw %d interrupts, want 1", n)
	}
	if !slices.Contains(b.srv.Deleted(), id) {
		t.Errorf("queue deletes %v do not name %s", b.srv.Deleted(), id)
	}
	waitFor(t, func() bool { return b.srv.History(id) != nil })
	status := b.srv.History(id)["status"].(map[string]any)
	msgs, _ := json.Marshal(status["messages"])
	if status["status_str"] != "error" || !strings.Contains(string(msgs), "execution_interrupted") {
		t.Errorf("history status = %v, want an interrupted error entry", status)
	}
}

func TestCancelRemovesQueuedPrompt(t *testing.T) {
	t.Parallel()
	b := setup(t, comfyuitest.Options{})
	_, firstDone := startSlow(t, b)
	running := b.srv.Running()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Generate(ctx, baseRequest)
		done <- err
	}()
	waitFor(t, func() bool { return b.srv.Calls() == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if got := b.srv.Running(); got != running {
		t.Errorf("running prompt = %q, want the first one %q still running", got, running)
	}
	if del := b.srv.Deleted(); len(del) != 1 || del[0] == running {
		t.Errorf("deleted = %v, want the queued prompt only", del)
	}
	select {
	case err := <-firstDone:
		t.Fatalf("first Generate ended: %v", err)
	default:
	}
}

func TestPollTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, comfyuitest.Options{}, func(c *comfyui.Config) { c.Timeout = 150 * time.Millisecond })
	b.srv.Inject(providertest.Slow, 1)
	_, err := providertest.Generate(t, b.client, baseRequest)
	if provider.ClassOf(err) != provider.Retryable || !errors.Is(err, provider.ErrTimeout) {
		t.Fatalf("err = %v, want retryable wrapping ErrTimeout", err)
	}
	if b.srv.Interrupts() != 1 {
		t.Errorf("timed-out prompt was not interrupted")
	}
}

func TestOversizedOutputRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, comfyuitest.Options{ImageBytes: 200_000}, func(c *comfyui.Config) { c.MaxBytes = 100_000 })
	_, err := providertest.Generate(t, b.client, baseRequest)
	if !errors.Is(err, provider.ErrTooLarge) {
		t.Fatalf("err = %v, want one wrapping ErrTooLarge", err)
	}
}

func TestPreviewImagesSkipped(t *testing.T) {
	t.Parallel()
	wf := editWorkflow(t, func(wf map[string]map[string]any) {
		wf["10"] = map[string]any{"class_type": "PreviewImage", "inputs": map[string]any{"images": []any{"8", 0}}}
	})
	b := setup(t, comfyuitest.Options{}, func(c *comfyui.Config) { c.Workflow = wf })
	res, err := providertest.Generate(t, b.client, baseRequest)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(res.Images) != baseRequest.Count {
		t.Errorf("got %d images, want %d (previews must be skipped)", len(res.Images), baseRequest.Count)
	}
}
