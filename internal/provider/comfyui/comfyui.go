// Package comfyui is the adapter for a self-hosted ComfyUI server (section 7
// of shared/docs/providers.md): it fills the placeholders of a user-supplied
// API-format workflow, queues it with POST /prompt, polls
// GET /history/{prompt_id} until the prompt has run, and downloads each
// output image with GET /view. comfyuitest holds a local server that speaks
// the same contract; docs/comfyui.md describes the placeholders.
//
// The WebSocket (/ws) is not used: its events only add progress, and
// history polling sees the same terminal states, needs no connection
// state, and survives a reconnect.
//
// Upstream reference: https://docs.comfy.org/development/comfyui-server/comms_routes
package comfyui

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// Name is the provider identifier used in the catalogue.
const Name = "comfyui"

// DefaultBaseURL is where ComfyUI listens by default.
const DefaultBaseURL = "http://127.0.0.1:8188"

const (
	defaultPollInterval = 250 * time.Millisecond
	defaultTimeout      = 30 * time.Minute
	cancelTimeout       = 5 * time.Second
	maxErrorBody        = 256 << 10
)

// Config configures a Client. Zero values mean defaults.
type Config struct {
	// BaseURL of the ComfyUI server; default DefaultBaseURL. The server is
	// the user's own, so private addresses are expected and allowed.
	BaseURL string
	// HTTPClient makes every call, /view downloads included; nil means a
	// plain client (calls are bounded by the context and Timeout).
	HTTPClient *http.Client
	// Workflow is the API-format workflow JSON with "{{name}}" placeholders
	// (see docs/comfyui.md). Required.
	Workflow []byte
	// PollInterval is the first delay between history polls; it grows by
	// half each time up to eight times its value. Zero means 250 ms.
	PollInterval time.Duration
	// Timeout bounds one Generate call, queueing included (a busy server
	// runs one prompt at a time). Zero means 30 minutes.
	Timeout time.Duration
	// MaxBytes caps one downloaded image; zero means
	// provider.DefaultMaxDownload.
	MaxBytes int64
}

// Client is a ComfyUI adapter. It is safe for concurrent use.
type Client struct {
	base         *url.URL
	http         *http.Client
	wf           *workflow
	clientID     string
	pollInterval time.Duration
	timeout      time.Duration
	maxBytes     int64
}

// New parses and checks cfg.Workflow and returns a Client. The error says
// what is wrong with the workflow, for the user who supplied it.
func New(cfg Config) (*Client, error) {
	wf, err := parseWorkflow(cfg.Workflow)
	if err != nil {
		return nil, fmt.Errorf("comfyui: %w", err)
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("comfyui: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	c := &Client{
		base:         u,
		http:         cfg.HTTPClient,
		wf:           wf,
		clientID:     newUUID(),
		pollInterval: cfg.PollInterval,
		timeout:      cfg.Timeout,
		maxBytes:     cfg.MaxBytes,
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.pollInterval <= 0 {
		c.pollInterval = defaultPollInterval
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.maxBytes <= 0 {
		c.maxBytes = provider.DefaultMaxDownload
	}
	return c, nil
}

// Name returns "comfyui".
func (c *Client) Name() string { return Name }

// Generate runs the workflow once with req's values. req.Count becomes
// {{batch_size}}; a workflow that ignores it returns as many images as it
// makes. The seed reported on every image is the batch seed.
//
// On cancellation or timeout the prompt is interrupted (if running) and
// deleted from the queue (if waiting), so that an abandoned image does not
// hold the GPU.
//
// Upstream: POST /prompt, GET /history/{prompt_id}, GET /view,
// POST /interrupt, POST /queue;
// https://docs.comfy.org/development/comfyui-server/comms_routes
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	vals, err := c.wf.valuesFor(req)
	if err != nil {
		return provider.Result{}, err
	}
	// The id is ours, not the server's, so that a prompt whose submit
	// answer was lost can still be found and cancelled.
	promptID := newUUID()
	tctx, cancel := context.WithTimeoutCause(ctx, c.timeout, provider.ErrTimeout)
	defer cancel()

	submitted, err := c.submit(tctx, promptID, c.wf.build(vals))
	if err != nil {
		if tctx.Err() != nil {
			if submitted {
				c.cancelRemote(ctx, promptID)
			}
			return provider.Result{}, c.ctxError(tctx, promptID)
		}
		return provider.Result{}, err
	}
	entry, err := c.wait(tctx, promptID)
	if err != nil {
		if tctx.Err() != nil {
			c.cancelRemote(ctx, promptID)
			return provider.Result{}, c.ctxError(tctx, promptID)
		}
		return provider.Result{}, err
	}
	if err := entryError(entry, promptID); err != nil {
		return provider.Result{}, err
	}
	res := provider.Result{RequestID: promptID}
	for _, f := range entry.outputFiles() {
		img, err := c.view(tctx, f)
		if err != nil {
			if tctx.Err() != nil {
				return provider.Result{}, c.ctxError(tctx, promptID)
			}
			err.RequestID = promptID
			return provider.Result{}, err
		}
		if c.wf.uses["seed"] {
			img.Seed, img.HasSeed = vals.numbers["seed"], true
		}
		res.Images = append(res.Images, img)
	}
	if len(res.Images) == 0 {
		return provider.Result{}, &provider.Error{Class: provider.Invalid, Provider: Name, RequestID: promptID,
			Message: "the workflow finished without output images (does it end in a SaveImage node?)"}
	}
	res.Latency = time.Since(start)
	return res, nil
}

// submit queues the workflow. submitted reports whether the request may
// have reached the server (so that a cancel is worth sending).
func (c *Client) submit(ctx context.Context, promptID string, wf map[string]any) (submitted bool, err error) {
	body, err := json.Marshal(map[string]any{
		"prompt":    wf,
		"client_id": c.clientID,
		"prompt_id": promptID,
	})
	if err != nil {
		return false, &provider.Error{Class: provider.Invalid, Provider: Name, Err: err}
	}
	resp, err := c.call(ctx, http.MethodPost, "prompt", nil, body)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode == http.StatusOK {
		return true, nil
	}
	return false, submitError(resp, raw)
}

// submitError classifies a refused POST /prompt. A 400 means the workflow
// failed validation: not transient, so Invalid with the node errors spelled
// out for the user who wrote the workflow.
func submitError(resp *http.Response, raw []byte) *provider.Error {
	var eb struct {
		Error json.RawMessage `json:"error"`
		// NodeErrors maps node id → {errors: [{type, message, details}], class_type}.
		NodeErrors map[string]struct {
			ClassType string `json:"class_type"`
			Errors    []struct {
				Type    string `json:"type"`
				Message string `json:"message"`
				Details string `json:"details"`
			} `json:"errors"`
		} `json:"node_errors"`
	}
	_ = json.Unmarshal(raw, &eb)
	var top struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Details string `json:"details"`
	}
	if json.Unmarshal(eb.Error, &top) != nil {
		// Older servers and plain failures send a string.
		_ = json.Unmarshal(eb.Error, &top.Message)
	}
	var parts []string
	if top.Message != "" {
		parts = append(parts, joinNonEmpty(": ", top.Message, top.Details))
	}
	for _, id := range sortedKeys(eb.NodeErrors) {
		ne := eb.NodeErrors[id]
		for _, e := range ne.Errors {
			parts = append(parts, fmt.Sprintf("node %s (%s): %s", id, ne.ClassType, joinNonEmpty(": ", e.Message, e.Details)))
		}
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
		if msg == "" {
			msg = resp.Status
		}
	}
	class := provider.ClassForStatus(resp.StatusCode)
	if resp.StatusCode == http.StatusNotFound {
		// No /prompt route: the base URL points at something else.
		class = provider.Invalid
	}
	return &provider.Error{Class: class, Provider: Name, Status: resp.StatusCode, Code: top.Type, Message: msg}
}

// historyEntry is one prompt in GET /history/{id}.
type historyEntry struct {
	Outputs map[string]struct {
		Images []viewFile `json:"images"`
	} `json:"outputs"`
	Status struct {
		StatusStr string `json:"status_str"`
		Completed bool   `json:"completed"`
		// Messages are [event type, data] pairs.
		Messages [][2]json.RawMessage `json:"messages"`
	} `json:"status"`
}

type viewFile struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// outputFiles lists saved images in node order, skipping previews (type
// "temp"), which are not results.
func (e historyEntry) outputFiles() []viewFile {
	var files []viewFile
	for _, id := range sortedKeys(e.Outputs) {
		for _, f := range e.Outputs[id].Images {
			if f.Type == "output" {
				files = append(files, f)
			}
		}
	}
	return files
}

// wait polls the history with a growing interval until the prompt appears.
func (c *Client) wait(ctx context.Context, promptID string) (historyEntry, error) {
	delay := c.pollInterval
	for {
		if err := sleep(ctx, delay); err != nil {
			return historyEntry{}, err
		}
		delay = min(delay*3/2, 8*c.pollInterval)
		resp, err := c.call(ctx, http.MethodGet, "history/"+url.PathEscape(promptID), nil, nil)
		if err != nil {
			return historyEntry{}, err
		}
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if rerr != nil {
			return historyEntry{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "read history", Err: rerr}
		}
		if resp.StatusCode != http.StatusOK {
			return historyEntry{}, &provider.Error{Class: provider.ClassForStatus(resp.StatusCode), Provider: Name,
				Status: resp.StatusCode, Message: "history: " + strings.TrimSpace(string(raw)), RequestID: promptID}
		}
		var h map[string]historyEntry
		if err := json.Unmarshal(raw, &h); err != nil {
			return historyEntry{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "decode history", Err: err}
		}
		if e, ok := h[promptID]; ok {
			return e, nil
		}
	}
}

// entryError classifies a finished prompt that did not succeed. A node
// exception is a problem of the workflow or its inputs and is Invalid,
// except running out of GPU memory, which may pass when the server is less
// busy; an interruption by someone else is Retryable.
func entryError(e historyEntry, promptID string) *provider.Error {
	if e.Status.StatusStr != "error" {
		return nil
	}
	for _, m := range e.Status.Messages {
		var typ string
		_ = json.Unmarshal(m[0], &typ)
		switch typ {
		case "execution_error":
			var d struct {
				NodeID           any    `json:"node_id"`
				NodeType         string `json:"node_type"`
				ExceptionMessage string `json:"exception_message"`
				ExceptionType    string `json:"exception_type"`
			}
			_ = json.Unmarshal(m[1], &d)
			msg := strings.TrimSpace(d.ExceptionMessage)
			if d.NodeType != "" {
				msg = fmt.Sprintf("node %v (%s): %s", d.NodeID, d.NodeType, msg)
			}
			class := provider.Invalid
			if isOOM(d.ExceptionType, d.ExceptionMessage) {
				class = provider.Retryable
			}
			return &provider.Error{Class: class, Provider: Name, Code: d.ExceptionType, Message: msg, RequestID: promptID}
		case "execution_interrupted":
			return &provider.Error{Class: provider.Retryable, Provider: Name, Code: typ,
				Message: "the prompt was interrupted on the server", RequestID: promptID}
		}
	}
	return &provider.Error{Class: provider.Retryable, Provider: Name, Code: "error",
		Message: "the prompt failed without an error message", RequestID: promptID}
}

func isOOM(typ, msg string) bool {
	s := strings.ToLower(typ + " " + msg)
	return strings.Contains(s, "outofmemory") || strings.Contains(s, "out of memory") ||
		strings.Contains(s, "allocation on device")
}

// view downloads one output file through GET /view.
func (c *Client) view(ctx context.Context, f viewFile) (provider.Image, *provider.Error) {
	q := url.Values{"filename": {f.Filename}, "subfolder": {f.Subfolder}, "type": {f.Type}}
	resp, err := c.call(ctx, http.MethodGet, "view", q, nil)
	if err != nil {
		var pe *provider.Error
		errors.As(err, &pe)
		return provider.Image{}, pe
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, Status: resp.StatusCode,
			Message: fmt.Sprintf("view %s: %s", f.Filename, resp.Status)}
	}
	if resp.ContentLength > c.maxBytes {
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: Name, Err: provider.ErrTooLarge,
			Message: fmt.Sprintf("output %s is %d bytes, limit %d", f.Filename, resp.ContentLength, c.maxBytes)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "download output", Err: err}
	}
	if int64(len(data)) > c.maxBytes {
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: Name, Err: provider.ErrTooLarge,
			Message: fmt.Sprintf("output %s exceeds the %d-byte limit", f.Filename, c.maxBytes)}
	}
	format, w, h, err := provider.DecodeImage(data)
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: Name,
			Message: fmt.Sprintf("output %s is not an image this service reads", f.Filename), Err: err}
	}
	return provider.Image{Data: data, Format: format, Width: w, Height: h}, nil
}

// cancelRemote interrupts the prompt if it is running and removes it from
// the queue if it is waiting. It uses a fresh short deadline because ctx is
// already done; failures are ignored since the caller is leaving anyway.
func (c *Client) cancelRemote(ctx context.Context, promptID string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	for _, call := range []struct {
		path string
		body any
	}{
		{"interrupt", map[string]any{"prompt_id": promptID}},
		{"queue", map[string]any{"delete": []string{promptID}}},
	} {
		body, _ := json.Marshal(call.body)
		if resp, err := c.call(cctx, http.MethodPost, call.path, nil, body); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// ctxError reports why the call stopped: its own deadline (Retryable,
// wrapping provider.ErrTimeout) or the caller's cancellation (wrapping the
// context's error).
func (c *Client) ctxError(tctx context.Context, promptID string) error {
	if errors.Is(context.Cause(tctx), provider.ErrTimeout) {
		return &provider.Error{Class: provider.Retryable, Provider: Name, RequestID: promptID,
			Message: fmt.Sprintf("no result within %s", c.timeout),
			Err:     fmt.Errorf("comfyui: %w", provider.ErrTimeout)}
	}
	return &provider.Error{Class: provider.Retryable, Provider: Name, RequestID: promptID,
		Message: "cancelled", Err: tctx.Err()}
}

// call sends one request to the server. Connection failures are Retryable:
// a self-hosted server restarting is the usual cause.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, &provider.Error{Class: provider.Invalid, Provider: Name, Err: err}
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: Name, Message: err.Error(), Err: err}
	}
	return resp, nil
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" && !strings.Contains(strings.Join(out, sep), p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// newUUID returns a random (version 4) UUID in lowercase, the form ComfyUI
// accepts as prompt_id and client_id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "comfyui adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
