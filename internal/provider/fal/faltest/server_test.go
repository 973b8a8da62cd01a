package faltest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// call sends a request with the server's key and decodes the JSON answer.
func call(t *testing.T, s *Server, method, rawURL, body string) (int, map[string]any) {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = s.URL + rawURL
	}
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Key "+s.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode %s %s: %v", method, rawURL, err)
	}
	return resp.StatusCode, out
}

// waitState polls statusURL until the status is want.
func waitState(t *testing.T, s *Server, statusURL, want string) (int, map[string]any) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		code, body := call(t, s, http.MethodGet, statusURL, "")
		if body["status"] == want {
			return code, body
		}
	}
	t.Fatalf("status never became %s", want)
	return 0, nil
}

func TestQueueLifecycle(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 32, QueueTime: 500 * time.Millisecond, QueuePosition: 3, ProcessingTime: 500 * time.Millisecond})
	code, sub := call(t, s, http.MethodPost, "/fal-ai/flux/schnell", `{"prompt":"x","num_images":2}`)
	if code != http.StatusOK || sub["status"] != "IN_QUEUE" {
		t.Fatalf("submit: %d %v", code, sub)
	}
	statusURL := sub["status_url"].(string)
	if !strings.Contains(statusURL, "/fal-ai/flux/requests/") {
		t.Errorf("status_url %q is not under owner/app", statusURL)
	}
	_, st := call(t, s, http.MethodGet, statusURL, "")
	if pos, _ := st["queue_position"].(float64); st["status"] != "IN_QUEUE" || pos < 1 {
		t.Errorf("first status = %v, want IN_QUEUE with a position", st)
	}
	if code, _ := call(t, s, http.MethodGet, sub["response_url"].(string), ""); code != http.StatusBadRequest {
		t.Errorf("result before completion: status %d, want 400", code)
	}
	if code, _ := waitState(t, s, statusURL, "IN_PROGRESS"); code != http.StatusAccepted {
		t.Errorf("IN_PROGRESS answered %d, want 202", code)
	}
	if code, _ := call(t, s, http.MethodPut, sub["cancel_url"].(string), ""); code != http.StatusBadRequest {
		t.Errorf("cancel after start: status %d, want 400", code)
	}
	if code, _ := waitState(t, s, statusURL, "COMPLETED"); code != http.StatusOK {
		t.Errorf("COMPLETED answered %d, want 200", code)
	}
	code, out := call(t, s, http.MethodGet, sub["response_url"].(string), "")
	if images, _ := out["images"].([]any); code != 200 || len(images) != 2 {
		t.Errorf("result: %d %v, want two images", code, out)
	}
}

func TestCancelBeforeStart(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 32})
	s.Inject(providertest.Slow, 1)
	_, sub := call(t, s, http.MethodPost, "/fal-ai/flux/schnell", `{"prompt":"x"}`)
	code, body := call(t, s, http.MethodPut, sub["cancel_url"].(string), "")
	if code != http.StatusAccepted || body["status"] != "CANCELLATION_REQUESTED" {
		t.Errorf("cancel: %d %v", code, body)
	}
}

func TestValidationAtResult(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{MaxSide: 32})
	tests := []struct {
		name, body string
		loc        string
	}{
		{"prompt required", `{"num_images":1}`, "body.prompt"},
		{"too many images", `{"prompt":"x","num_images":5}`, "body.num_images"},
		{"format enum", `{"prompt":"x","output_format":"webp"}`, "body.output_format"},
		{"size preset", `{"prompt":"x","image_size":"huge"}`, "body.image_size"},
		{"size object", `{"prompt":"x","image_size":{"width":0,"height":512}}`, "body.image_size.width"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, sub := call(t, s, http.MethodPost, "/fal-ai/flux/schnell", tt.body)
			waitState(t, s, sub["status_url"].(string), "COMPLETED")
			code, body := call(t, s, http.MethodGet, sub["response_url"].(string), "")
			if code != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422", code)
			}
			items, _ := body["detail"].([]any)
			if len(items) != 1 {
				t.Fatalf("detail = %v, want one item", body["detail"])
			}
			item := items[0].(map[string]any)
			var loc []string
			for _, l := range item["loc"].([]any) {
				loc = append(loc, l.(string))
			}
			if got := strings.Join(loc, "."); got != tt.loc || item["msg"] == "" || item["type"] == "" {
				t.Errorf("detail item = %v, want loc %s with msg and type", item, tt.loc)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := NewServer(t, Options{})
	for _, auth := range []string{"", "Bearer " + s.Key, "Key wrong"} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/fal-ai/flux/schnell", strings.NewReader(`{"prompt":"x"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, resp.StatusCode)
		}
	}
}
