package comfyui

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"bulkgen/internal/provider"
)

// FuzzWorkflow checks that any workflow New accepts can be filled without
// panicking, and that the filled workflow is JSON with no placeholder left.
func FuzzWorkflow(f *testing.F) {
	sample, err := os.ReadFile("testdata/sdxl_workflow.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample, "a fox", int64(42))
	f.Add([]byte(`{"1":{"class_type":"X","inputs":{"t":"{{prompt}} {{seed}}","n":["1",0]}}}`), "{{seed}}", int64(-1))
	f.Fuzz(func(t *testing.T, raw []byte, prompt string, seed int64) {
		wf, err := parseWorkflow(raw)
		if err != nil {
			return
		}
		v, err := wf.valuesFor(provider.Request{Prompt: "p" + prompt, Model: "m", Seed: seed, HasSeed: true, Count: 1})
		if err != nil {
			t.Fatalf("valuesFor: %v", err)
		}
		out, err := json.Marshal(wf.build(v))
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		// A placeholder may only survive if the prompt text itself holds one.
		if !strings.Contains(prompt, "{{") && placeholderRE.Match(out) {
			t.Errorf("placeholder left in %s", out)
		}
	})
}
