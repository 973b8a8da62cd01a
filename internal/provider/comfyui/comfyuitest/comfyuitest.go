// Package comfyuitest is a local contract server for the ComfyUI server API
// (section 7 of shared/docs/providers.md): POST /prompt with workflow
// validation (400 with error and node_errors), one FIFO queue run one
// prompt at a time, GET /history/{id} empty until the prompt is done,
// GET /view serving the PNGs it "made", POST /interrupt and POST /queue.
// Every route is also served under /api, as ComfyUI does. The WebSocket is
// not implemented (the adapter polls the history).
//
// A node of class "FailNode" makes the prompt end in execution_error, as an
// exception inside a node would.
package comfyuitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// DefaultCheckpoints are the checkpoint files the server has unless
// Options.Checkpoints says otherwise.
var DefaultCheckpoints = []string{"sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"}

const (
	defaultRunFor = 20 * time.Millisecond
	slowRunFor    = time.Hour
	maxImageSide  = 1024
	oomMessage    = "Allocation on device 0 would exceed allowed memory. (out of memory)"
)

// Options configures the server. Zero values mean the defaults.
type Options struct {
	// RunFor is how long one prompt takes to execute. Default 20 ms.
	RunFor time.Duration
	// Checkpoints are the values CheckpointLoaderSimple accepts as
	// ckpt_name.
	Checkpoints []string
	// ImageBytes pads every produced PNG with trailing bytes up to this
	// size (decoders ignore them), to test download limits.
	ImageBytes int
}

// Request is a POST /prompt as the server received it.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// Server is a running contract server.
type Server struct {
	// URL is the base URL to configure the adapter with.
	URL string

	opt  Options
	wake chan struct{}
	stop chan struct{}

	faults providertest.Queue[providertest.Fault]
	calls  atomic.Int64

	mu         sync.Mutex
	number     int
	last       Request
	queue      []*job
	running    *job
	history    map[string]map[string]any
	files      map[string][]byte // "type/subfolder/filename" → PNG
	fileNo     int
	interrupts int
	deleted    []string
}

type job struct {
	id, clientID string
	number       int
	workflow     map[string]any
	outputs      []string
	fault        providertest.Fault
	interrupt    chan struct{}
}

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.RunFor == 0 {
		opt.RunFor = defaultRunFor
	}
	if opt.Checkpoints == nil {
		opt.Checkpoints = DefaultCheckpoints
	}
	s := &Server{
		opt:     opt,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		history: map[string]map[string]any{},
		files:   map[string][]byte{},
	}
	mux := http.NewServeMux()
	for _, prefix := range []string{"", "/api"} {
		mux.HandleFunc("POST "+prefix+"/prompt", s.handlePrompt)
		mux.HandleFunc("GET "+prefix+"/prompt", s.handleQueueInfo)
		mux.HandleFunc("GET "+prefix+"/history/{id}", s.handleHistory)
		mux.HandleFunc("GET "+prefix+"/view", s.handleView)
		mux.HandleFunc("POST "+prefix+"/interrupt", s.handleInterrupt)
		mux.HandleFunc("GET "+prefix+"/queue", s.handleQueue)
		mux.HandleFunc("POST "+prefix+"/queue", s.handleQueueControl)
	}
	hs := httptest.NewServer(mux)
	s.URL = hs.URL
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.worker()
	}()
	tb.Cleanup(func() {
		close(s.stop)
		<-done
		hs.Close()
	})
	return s
}

// Inject makes the next n prompts end in f the way ComfyUI produces it:
// ServerError is an execution_error for running out of GPU memory,
// InvalidRequest a 400 with node_errors, Slow a prompt that runs for an
// hour unless interrupted. RateLimit, BadAuth and ContentPolicy cannot
// happen with ComfyUI and are ignored.
func (s *Server) Inject(f providertest.Fault, n int) {
	switch f {
	case providertest.ServerError, providertest.InvalidRequest, providertest.Slow:
	default:
		return
	}
	s.faults.Push(f, n)
}

// Calls reports how many POST /prompt the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// LastRequest returns the last POST /prompt received.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Header = r.Header.Clone()
	r.Body = slices.Clone(r.Body)
	return r
}

// Interrupts reports how many POST /interrupt calls the server received.
func (s *Server) Interrupts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interrupts
}

// Deleted returns the prompt ids named in POST /queue {"delete": [...]}.
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// Running returns the id of the prompt executing now, or "".
func (s *Server) Running() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return ""
	}
	return s.running.id
}

// History returns the history entry of a finished prompt, or nil.
func (s *Server) History(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.history[id]
}

// handlePrompt serves POST /prompt.
func (s *Server) handlePrompt(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.Add(1)
	s.last = Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	fault, _ := s.faults.Next()

	var in struct {
		Prompt   json.RawMessage `json:"prompt"`
		ClientID string          `json:"client_id"`
		PromptID string          `json:"prompt_id"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, "invalid JSON", http.StatusBadRequest)
		return
	}
	var wf map[string]any
	if len(in.Prompt) == 0 || json.Unmarshal(in.Prompt, &wf) != nil || len(wf) == 0 {
		writePromptError(w, "no_prompt", "No prompt provided", "", nil)
		return
	}
	outputs, status := s.validate(wf, fault)
	if status != nil {
		providertest.WriteJSON(w, http.StatusBadRequest, status)
		return
	}
	id := in.PromptID
	if id == "" {
		id = providertest.UUID()
	} else if _, dup := s.history[id]; dup || s.queued(id) {
		writePromptError(w, "invalid_prompt_id", "prompt_id already in use", id, nil)
		return
	}
	s.number++
	s.queue = append(s.queue, &job{id: id, clientID: in.ClientID, number: s.number, workflow: wf,
		outputs: outputs, fault: fault, interrupt: make(chan struct{})})
	select {
	case s.wake <- struct{}{}:
	default:
	}
	providertest.WriteJSON(w, http.StatusOK, map[string]any{"prompt_id": id, "number": s.number, "node_errors": map[string]any{}})
}

func (s *Server) queued(id string) bool {
	if s.running != nil && s.running.id == id {
		return true
	}
	return slices.ContainsFunc(s.queue, func(j *job) bool { return j.id == id })
}

func writePromptError(w http.ResponseWriter, typ, msg, details string, nodeErrors map[string]any) {
	providertest.WriteJSON(w, http.StatusBadRequest, promptError(typ, msg, details, nodeErrors))
}

// promptError is the body of a 400 from POST /prompt.
func promptError(typ, msg, details string, nodeErrors map[string]any) map[string]any {
	if nodeErrors == nil {
		nodeErrors = map[string]any{}
	}
	return map[string]any{
		"error":       map[string]any{"type": typ, "message": msg, "details": details, "extra_info": map[string]any{}},
		"node_errors": nodeErrors,
	}
}

// intInputs are inputs ComfyUI converts to INT, which fails for strings
// such as an unreplaced "{{width}}".
var intInputs = map[string][]string{
	"EmptyLatentImage": {"width", "height", "batch_size"},
	"KSampler":         {"seed", "steps"},
}

// validate checks the workflow as ComfyUI's validate_prompt does, in
// short: node shape, links to existing nodes, typed inputs, checkpoint
// names, at least one output node. It returns the output node ids or the
// 400 answer.
func (s *Server) validate(wf map[string]any, fault providertest.Fault) ([]string, map[string]any) {
	errBody := promptError
	var outputs []string
	nodeErrors := map[string]any{}
	addErr := func(id, class, typ, msg, details string) {
		ne, ok := nodeErrors[id].(map[string]any)
		if !ok {
			ne = map[string]any{"errors": []any{}, "dependent_outputs": []string{}, "class_type": class}
			nodeErrors[id] = ne
		}
		ne["errors"] = append(ne["errors"].([]any), map[string]any{
			"type": typ, "message": msg, "details": details, "extra_info": map[string]any{}})
	}
	for _, id := range sortedKeys(wf) {
		node, ok := wf[id].(map[string]any)
		if !ok {
			return nil, errBody("invalid_prompt", "Cannot execute because a node is not an object.", "Node ID '#"+id+"'", nil)
		}
		class, ok := node["class_type"].(string)
		if !ok || class == "" {
			return nil, errBody("invalid_prompt", "Cannot execute because a node is missing the class_type property.", "Node ID '#"+id+"'", nil)
		}
		inputs, ok := node["inputs"].(map[string]any)
		if !ok {
			return nil, errBody("invalid_prompt", "Cannot execute because a node is missing the inputs property.", "Node ID '#"+id+"'", nil)
		}
		if class == "SaveImage" || class == "PreviewImage" {
			outputs = append(outputs, id)
		}
		for _, name := range sortedKeys(inputs) {
			link, ok := inputs[name].([]any)
			if !ok || len(link) != 2 {
				continue
			}
			src, isStr := link[0].(string)
			_, isNum := link[1].(float64)
			if !isStr || !isNum {
				continue
			}
			if _, exists := wf[src]; !exists {
				addErr(id, class, "required_input_missing", "Required input is missing",
					fmt.Sprintf("%s: links to node '%s', which does not exist", name, src))
			}
		}
		for _, name := range intInputs[class] {
			v, present := inputs[name]
			if !present {
				addErr(id, class, "required_input_missing", "Required input is missing", name)
				continue
			}
			if f, ok := v.(float64); !ok || f != float64(int64(f)) {
				addErr(id, class, "invalid_input_type", "Failed to convert an input value to a INT value",
					fmt.Sprintf("%s, %v, invalid literal for int()", name, v))
			}
		}
		if class == "CheckpointLoaderSimple" {
			ckpt, _ := inputs["ckpt_name"].(string)
			if fault == providertest.InvalidRequest || !slices.Contains(s.opt.Checkpoints, ckpt) {
				addErr(id, class, "value_not_in_list", "Value not in list",
					fmt.Sprintf("ckpt_name: '%s' not in %v", ckpt, s.opt.Checkpoints))
			}
		}
	}
	if fault == providertest.InvalidRequest && len(nodeErrors) == 0 {
		addErr(sortedKeys(wf)[0], "", "value_not_in_list", "Value not in list", "injected")
	}
	if len(outputs) == 0 {
		return nil, errBody("prompt_no_outputs", "Prompt has no outputs", "", nil)
	}
	if len(nodeErrors) > 0 {
		return nil, errBody("prompt_outputs_failed_validation", "Prompt outputs failed validation", "", nodeErrors)
	}
	return outputs, nil
}

// worker runs queued prompts one at a time, in order.
func (s *Server) worker() {
	for {
		s.mu.Lock()
		var j *job
		if len(s.queue) > 0 {
			j, s.queue = s.queue[0], s.queue[1:]
			s.running = j
		}
		s.mu.Unlock()
		if j == nil {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				return
			}
		}
		d := s.opt.RunFor
		if j.fault == providertest.Slow {
			d = slowRunFor
		}
		t := time.NewTimer(d)
		interrupted := false
		select {
		case <-t.C:
		case <-j.interrupt:
			interrupted = true
		case <-s.stop:
			t.Stop()
			return
		}
		t.Stop()
		s.mu.Lock()
		s.running = nil
		s.history[j.id] = s.finish(j, interrupted)
		s.mu.Unlock()
	}
}

// finish builds the history entry of a prompt that stopped running.
func (s *Server) finish(j *job, interrupted bool) map[string]any {
	now := time.Now().UnixMilli()
	messages := []any{
		[]any{"execution_start", map[string]any{"prompt_id": j.id, "timestamp": now}},
		[]any{"execution_cached", map[string]any{"nodes": []string{}, "prompt_id": j.id, "timestamp": now}},
	}
	entry := map[string]any{
		"prompt":  []any{j.number, j.id, j.workflow, map[string]any{"client_id": j.clientID}, j.outputs},
		"outputs": map[string]any{},
		"meta":    map[string]any{},
	}
	failNode, failClass := "", ""
	for _, id := range sortedKeys(j.workflow) {
		if node, _ := j.workflow[id].(map[string]any); node["class_type"] == "FailNode" {
			failNode, failClass = id, "FailNode"
			break
		}
	}
	status := func(str string, completed bool, msg ...any) map[string]any {
		return map[string]any{"status_str": str, "completed": completed, "messages": append(messages, msg...)}
	}
	switch {
	case interrupted:
		entry["status"] = status("error", false, []any{"execution_interrupted", map[string]any{
			"prompt_id": j.id, "node_id": "3", "node_type": "KSampler", "executed": []string{}, "timestamp": now}})
	case j.fault == providertest.ServerError || failNode != "":
		exType, exMsg, node, class := "torch.OutOfMemoryError", oomMessage, "3", "KSampler"
		if failNode != "" {
			exType, exMsg, node, class = "RuntimeError", "FailNode: this node always fails", failNode, failClass
		}
		entry["status"] = status("error", false, []any{"execution_error", map[string]any{
			"prompt_id": j.id, "node_id": node, "node_type": class, "executed": []string{},
			"exception_message": exMsg, "exception_type": exType,
			"traceback": []string{"Traceback (most recent call last):\n"}, "current_inputs": map[string]any{},
			"current_outputs": map[string]any{}, "timestamp": now}})
	default:
		w, h, n := latentSize(j.workflow)
		outs := map[string]any{}
		for _, id := range j.outputs {
			node := j.workflow[id].(map[string]any)
			inputs := node["inputs"].(map[string]any)
			typ := "output"
			if node["class_type"] == "PreviewImage" {
				typ = "temp"
			}
			prefix, _ := inputs["filename_prefix"].(string)
			if prefix == "" {
				prefix = "ComfyUI"
			}
			var images []any
			for i := range n {
				s.fileNo++
				name := fmt.Sprintf("%s_%05d_.png", prefix, s.fileNo)
				fw, fh := providertest.Fit(w, h, maxImageSide)
				file, err := providertest.TestImage(fw, fh, "png", int64(s.fileNo+i))
				if err != nil {
					// Shown as an exception in the saving node, as ComfyUI
					// reports a node that could not write its file.
					entry["status"] = status("error", false, []any{"execution_error", map[string]any{
						"prompt_id": j.id, "node_id": id, "node_type": node["class_type"], "executed": []string{},
						"exception_message": err.Error(), "exception_type": "OSError", "timestamp": now}})
					return entry
				}
				if pad := s.opt.ImageBytes - len(file); pad > 0 {
					file = append(file, make([]byte, pad)...)
				}
				s.files[typ+"//"+name] = file
				images = append(images, map[string]any{"filename": name, "subfolder": "", "type": typ})
			}
			outs[id] = map[string]any{"images": images}
		}
		entry["outputs"] = outs
		entry["status"] = status("success", true, []any{"execution_success", map[string]any{"prompt_id": j.id, "timestamp": now}})
	}
	return entry
}

// latentSize reads width, height and batch size from the first
// EmptyLatentImage node (512×512×1 without one).
func latentSize(wf map[string]any) (w, h, n int) {
	w, h, n = 512, 512, 1
	for _, id := range sortedKeys(wf) {
		node, _ := wf[id].(map[string]any)
		if node["class_type"] != "EmptyLatentImage" {
			continue
		}
		in, _ := node["inputs"].(map[string]any)
		num := func(k string, def int) int {
			if f, ok := in[k].(float64); ok && f > 0 {
				return int(f)
			}
			return def
		}
		return num("width", w), num("height", h), num("batch_size", n)
	}
	return w, h, n
}

// handleHistory serves GET /history/{id}: {} until the prompt finished.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	out := map[string]any{}
	if e, ok := s.history[id]; ok {
		out[id] = e
	}
	body, _ := json.Marshal(out)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// handleView serves GET /view?filename=&subfolder=&type=.
func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, sub, typ := q.Get("filename"), q.Get("subfolder"), q.Get("type")
	if typ == "" {
		typ = "output"
	}
	if name == "" || strings.Contains(name, "..") || strings.Contains(sub, "..") || strings.HasPrefix(sub, "/") {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	file, ok := s.files[typ+"/"+sub+"/"+name]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "404: Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Disposition", `filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(file)))
	_, _ = w.Write(file)
}

// handleInterrupt serves POST /interrupt: with a prompt_id only that
// prompt is interrupted (if running), without one whatever runs.
func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PromptID string `json:"prompt_id"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in)
	s.mu.Lock()
	s.interrupts++
	if j := s.running; j != nil && (in.PromptID == "" || in.PromptID == j.id) {
		select {
		case <-j.interrupt:
		default:
			close(j.interrupt)
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// handleQueue serves GET /queue.
func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	row := func(j *job) []any {
		return []any{j.number, j.id, j.workflow, map[string]any{"client_id": j.clientID}, j.outputs}
	}
	running, pending := []any{}, []any{}
	if s.running != nil {
		running = append(running, row(s.running))
	}
	for _, j := range s.queue {
		pending = append(pending, row(j))
	}
	providertest.WriteJSON(w, http.StatusOK, map[string]any{"queue_running": running, "queue_pending": pending})
}

// handleQueueControl serves POST /queue {"delete": [ids]} or {"clear": true}.
func (s *Server) handleQueueControl(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Delete []string `json:"delete"`
		Clear  bool     `json:"clear"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in)
	s.mu.Lock()
	s.deleted = append(s.deleted, in.Delete...)
	s.queue = slices.DeleteFunc(s.queue, func(j *job) bool { return in.Clear || slices.Contains(in.Delete, j.id) })
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// handleQueueInfo serves GET /prompt.
func (s *Server) handleQueueInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.queue)
	if s.running != nil {
		n++
	}
	s.mu.Unlock()
	providertest.WriteJSON(w, http.StatusOK, map[string]any{"exec_info": map[string]any{"queue_remaining": n}})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ai, aerr := strconv.Atoi(a)
		bi, berr := strconv.Atoi(b)
		if aerr == nil && berr == nil {
			return ai - bi
		}
		return strings.Compare(a, b)
	})
	return keys
}
