// Package a1111 is the adapter for a self-hosted AUTOMATIC1111
// stable-diffusion-webui or Forge server started with --api (section 8 of
// shared/docs/providers.md): one blocking POST /sdapi/v1/txt2img per call,
// images back as base64, HTTP Basic auth when the server uses --api-auth.
// a1111test holds a local server that speaks the same contract.
//
// Upstream reference: https://github.com/AUTOMATIC1111/stable-diffusion-webui/wiki/API
package a1111

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// Name is the provider identifier used in the catalogue.
const Name = "a1111"

// DefaultBaseURL is where the web UI listens by default.
const DefaultBaseURL = "http://127.0.0.1:7860"

const (
	defaultTimeout   = 30 * time.Minute
	interruptTimeout = 5 * time.Second
	// maxResponse bounds the txt2img answer: base64 PNGs of a large batch.
	maxResponse  = 512 << 20
	maxErrorBody = 64 << 10
)

// Config configures a Client. Zero values mean defaults.
type Config struct {
	// BaseURL of the server; default DefaultBaseURL. The server is the
	// user's own, so private addresses are expected and allowed.
	BaseURL string
	// Username and Password are sent as HTTP Basic auth when Username is
	// set (servers started with --api-auth user:pass).
	Username string
	Password provider.Secret
	// HTTPClient makes every call; nil means a plain client (calls are
	// bounded by the context and Timeout).
	HTTPClient *http.Client
	// Timeout bounds one Generate call. The server runs one generation at a
	// time and makes the others wait, so this includes time spent queued
	// behind other callers. Zero means 30 minutes.
	Timeout time.Duration
}

// Client is an A1111/Forge adapter. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	user     string
	password provider.Secret
	http     *http.Client
	timeout  time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		u = &url.URL{} // Generate reports the broken URL on every call
	}
	c := &Client{base: u, user: cfg.Username, password: cfg.Password, http: cfg.HTTPClient, timeout: cfg.Timeout}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	return c
}

// Name returns "a1111".
func (c *Client) Name() string { return Name }

// txt2imgResponse is the answer of POST /sdapi/v1/txt2img. Info is a JSON
// document encoded as a string.
type txt2imgResponse struct {
	Images []string `json:"images"`
	Info   string   `json:"info"`
}

type txt2imgInfo struct {
	AllSeeds          []int64 `json:"all_seeds"`
	Seed              int64   `json:"seed"`
	IndexOfFirstImage int     `json:"index_of_first_image"`
}

// Generate makes req.Count images in one batch. Grids the server adds are
// skipped (index_of_first_image); each image reports its seed from
// all_seeds. On cancellation or timeout the server's running job is
// interrupted: A1111 runs one job at a time and has no per-job cancel, so
// the interrupt hits whatever runs, which with bulkgen as the only client
// is this call.
//
// Upstream: POST /sdapi/v1/txt2img, POST /sdapi/v1/interrupt,
// https://github.com/AUTOMATIC1111/stable-diffusion-webui/wiki/API
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	if c.base.Scheme != "http" && c.base.Scheme != "https" {
		return provider.Result{}, provider.Errorf(provider.Invalid, Name, "base URL %q is not http(s)", c.base.String())
	}
	body, err := buildBody(req)
	if err != nil {
		return provider.Result{}, err
	}
	tctx, cancel := context.WithTimeoutCause(ctx, c.timeout, provider.ErrTimeout)
	defer cancel()

	resp, err := c.call(tctx, http.MethodPost, "sdapi/v1/txt2img", body)
	if err != nil {
		return provider.Result{}, c.stopped(ctx, tctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return provider.Result{}, httpError(resp, raw)
	}
	var out txt2imgResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&out); err != nil {
		if tctx.Err() != nil {
			return provider.Result{}, c.stopped(ctx, tctx, err)
		}
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "decode txt2img answer", Err: err}
	}
	var info txt2imgInfo
	if out.Info != "" {
		if err := json.Unmarshal([]byte(out.Info), &info); err != nil {
			return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "decode info", Err: err}
		}
	}
	first := min(max(info.IndexOfFirstImage, 0), len(out.Images))
	want := max(req.Count, 1)
	res := provider.Result{}
	for i, b64 := range out.Images[first:min(len(out.Images), first+want)] {
		img, err := decodeImage(b64)
		if err != nil {
			return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name,
				Message: fmt.Sprintf("image %d", i), Err: err}
		}
		if i < len(info.AllSeeds) {
			img.Seed, img.HasSeed = info.AllSeeds[i], true
		}
		res.Images = append(res.Images, img)
	}
	if len(res.Images) == 0 {
		return provider.Result{}, provider.Errorf(provider.Retryable, Name, "the server answered without images")
	}
	res.Latency = time.Since(start)
	return res, nil
}

// buildBody maps req onto txt2img fields. Typed options ("opt.steps",
// "opt.cfg_scale", ...) are checked here so that a typo fails the row
// instead of a generation.
func buildBody(req provider.Request) ([]byte, error) {
	if strings.TrimSpace(req.Prompt) == "" {
		return nil, provider.Errorf(provider.Invalid, Name, "empty prompt")
	}
	body := map[string]any{
		"prompt":          req.Prompt,
		"negative_prompt": req.NegativePrompt,
		"seed":            -1,
		"batch_size":      max(req.Count, 1),
		"n_iter":          1,
		"send_images":     true,
		"save_images":     false,
	}
	if req.HasSeed {
		body["seed"] = req.Seed
	}
	if req.Width > 0 && req.Height > 0 {
		body["width"], body["height"] = req.Width, req.Height
	}
	if req.Style != "" {
		body["styles"] = []string{req.Style}
	}
	if req.Model != "" {
		// Switches the checkpoint for this request only
		// (override_settings_restore_afterwards defaults to true).
		body["override_settings"] = map[string]any{"sd_model_checkpoint": req.Model}
	}
	for name, v := range req.Options {
		bad := func(want string) error {
			return provider.Errorf(provider.Invalid, Name, "option %s = %q: want %s", name, v, want)
		}
		switch name {
		case "steps":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				return nil, bad("an integer from 1 to 500")
			}
			body[name] = n
		case "cfg_scale", "distilled_cfg_scale", "denoising_strength":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, bad("a number")
			}
			body[name] = f
		case "sampler_name", "sampler", "scheduler":
			if name == "sampler" {
				name = "sampler_name"
			}
			body[name] = v
		}
	}
	return json.Marshal(body)
}

func decodeImage(b64 string) (provider.Image, error) {
	// Some extensions return data URIs; the API itself sends bare base64.
	if i := strings.Index(b64, ";base64,"); i >= 0 && strings.HasPrefix(b64, "data:") {
		b64 = b64[i+len(";base64,"):]
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return provider.Image{}, fmt.Errorf("decode base64: %w", err)
	}
	format, w, h, err := provider.DecodeImage(data)
	if err != nil {
		return provider.Image{}, fmt.Errorf("decode image: %w", err)
	}
	return provider.Image{Data: data, Format: format, Width: w, Height: h}, nil
}

// errorBody covers A1111's handled errors {error, detail, body, errors}
// and FastAPI's {"detail": [...]}.
type errorBody struct {
	Error  string          `json:"error"`
	Detail json.RawMessage `json:"detail"`
	Errors string          `json:"errors"`
}

// httpError classifies a failed txt2img: 401/403 are Auth; 404 (unknown
// sampler, or no API at this URL) and 422 (bad field, unknown script) are
// Invalid; 500 is Retryable (out of memory, a model still loading) unless
// the message names a bad input, which would fail again.
func httpError(resp *http.Response, raw []byte) *provider.Error {
	var eb errorBody
	_ = json.Unmarshal(raw, &eb)
	msg := joinNonEmpty(": ", detailText(eb.Detail), eb.Errors)
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
		if len(msg) > 300 {
			msg = msg[:300]
		}
	}
	if msg == "" {
		msg = resp.Status
	}
	class := provider.ClassForStatus(resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		class = provider.Invalid
	case resp.StatusCode == http.StatusInternalServerError && isInputError(msg):
		class = provider.Invalid
	}
	return &provider.Error{Class: class, Provider: Name, Status: resp.StatusCode, Code: eb.Error, Message: msg}
}

// inputErrors are phrases of 500 answers caused by the request itself.
var inputErrors = []string{"not found", "invalid encoded image", "incorrect padding", "unknown script"}

func isInputError(msg string) bool {
	m := strings.ToLower(msg)
	if strings.Contains(m, "out of memory") {
		return false
	}
	for _, p := range inputErrors {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

func detailText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var items []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	if json.Unmarshal(raw, &items) == nil {
		var parts []string
		for _, it := range items {
			var loc []string
			for _, l := range it.Loc {
				if l != "body" {
					loc = append(loc, fmt.Sprint(l))
				}
			}
			parts = append(parts, joinNonEmpty(": ", strings.Join(loc, "."), it.Msg))
		}
		return strings.Join(parts, "; ")
	}
	return string(raw)
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// ListModels returns the model_name of every checkpoint the server has,
// the values Request.Model accepts.
//
// Upstream: GET /sdapi/v1/sd-models.
func (c *Client) ListModels(ctx context.Context) ([]string, error) {
	resp, err := c.call(ctx, http.MethodGet, "sdapi/v1/sd-models", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, httpError(resp, raw)
	}
	var models []struct {
		Title     string `json:"title"`
		ModelName string `json:"model_name"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody*16)).Decode(&models); err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "decode sd-models", Err: err}
	}
	names := make([]string, 0, len(models))
	for _, m := range models {
		if m.ModelName != "" {
			names = append(names, m.ModelName)
		} else {
			names = append(names, m.Title)
		}
	}
	return names, nil
}

// stopped handles a failed request: if the caller cancelled or the call's
// deadline passed, the server keeps generating for nobody, so it is told
// to stop, and the context's reason is returned; otherwise err stands.
func (c *Client) stopped(ctx, tctx context.Context, err error) error {
	if tctx.Err() == nil {
		return err
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptTimeout)
	defer cancel()
	if resp, ierr := c.call(ictx, http.MethodPost, "sdapi/v1/interrupt", nil); ierr == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if errors.Is(context.Cause(tctx), provider.ErrTimeout) {
		return &provider.Error{Class: provider.Retryable, Provider: Name,
			Message: fmt.Sprintf("no result within %s", c.timeout),
			Err:     fmt.Errorf("a1111: %w", provider.ErrTimeout)}
	}
	return &provider.Error{Class: provider.Retryable, Provider: Name, Message: "cancelled", Err: ctx.Err()}
}

// call sends one request with Basic auth when configured. Connection
// failures are Retryable: a self-hosted server restarting is the usual
// cause.
func (c *Client) call(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), r)
	if err != nil {
		return nil, &provider.Error{Class: provider.Invalid, Provider: Name, Err: err}
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Accept", "application/json")
	if c.user != "" {
		hreq.SetBasicAuth(c.user, c.password.Reveal())
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: Name, Message: c.password.Scrub(err.Error()), Err: err}
	}
	return resp, nil
}

var (
	_ provider.Provider    = (*Client)(nil)
	_ provider.ModelLister = (*Client)(nil)
)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "a1111 adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
