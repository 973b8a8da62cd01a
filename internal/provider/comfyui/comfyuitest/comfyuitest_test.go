package comfyuitest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"bulkgen/internal/provider/comfyui/comfyuitest"
	"bulkgen/internal/provider/providertest"
)

const workflow = `{
 "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
 "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
 "9": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "t"}}
}`

func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func TestHistoryEmptyUntilDoneThenInterrupted(t *testing.T) {
	t.Parallel()
	srv := comfyuitest.NewServer(t, comfyuitest.Options{})
	srv.Inject(providertest.Slow, 1)
	var sub struct {
		PromptID string `json:"prompt_id"`
	}
	// Every route is also served under /api.
	if st := call(t, "POST", srv.URL+"/api/prompt", `{"prompt":`+workflow+`}`, &sub); st != 200 || sub.PromptID == "" {
		t.Fatalf("submit: %d %+v", st, sub)
	}
	for srv.Running() == "" {
		time.Sleep(5 * time.Millisecond)
	}
	var h map[string]any
	call(t, "GET", srv.URL+"/history/"+sub.PromptID, "", &h)
	if len(h) != 0 {
		t.Fatalf("history of a running prompt = %v, want {}", h)
	}
	call(t, "POST", srv.URL+"/interrupt", `{"prompt_id":"someone-else"}`, nil)
	if srv.Running() == "" {
		t.Fatal("an interrupt for another prompt stopped this one")
	}
	call(t, "POST", srv.URL+"/interrupt", "", nil)
	for srv.History(sub.PromptID) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	status := srv.History(sub.PromptID)["status"].(map[string]any)
	if status["status_str"] != "error" {
		t.Errorf("status = %v, want error", status)
	}
}

func TestValidationAndView(t *testing.T) {
	t.Parallel()
	srv := comfyuitest.NewServer(t, comfyuitest.Options{})
	tests := []struct {
		name, body string
		status     int
		errType    string
	}{
		{"no prompt", `{}`, 400, "no_prompt"},
		{"missing class_type", `{"prompt":{"1":{"inputs":{}}}}`, 400, "invalid_prompt"},
		{"dangling link", `{"prompt":{"9":{"class_type":"SaveImage","inputs":{"images":["7",0]}}}}`, 400, "prompt_outputs_failed_validation"},
		{"string for INT", `{"prompt":{"5":{"class_type":"EmptyLatentImage","inputs":{"width":"{{width}}","height":64,"batch_size":1}},
			"9":{"class_type":"SaveImage","inputs":{"images":["5",0]}}}}`, 400, "prompt_outputs_failed_validation"},
		{"ok", `{"prompt":` + workflow + `}`, 200, ""},
	}
	for _, tt := range tests {
		var out struct {
			Error struct{ Type string } `json:"error"`
		}
		if st := call(t, "POST", srv.URL+"/prompt", tt.body, &out); st != tt.status || out.Error.Type != tt.errType {
			t.Errorf("%s: %d %q, want %d %q", tt.name, st, out.Error.Type, tt.status, tt.errType)
		}
	}
	if st := call(t, "GET", srv.URL+"/view?filename=missing.png&type=output", "", nil); st != 404 {
		t.Errorf("view of a missing file: %d, want 404", st)
	}
	if st := call(t, "GET", srv.URL+"/view?filename=../x.png", "", nil); st != 403 {
		t.Errorf("view escaping the folder: %d, want 403", st)
	}
}
