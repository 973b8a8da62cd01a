// Package openaicompat is the provider adapter for self-hosted and
// third-party servers that speak the OpenAI images path and envelope —
// LocalAI first among them — following providers.md section 9.
//
// "OpenAI-compatible" is taken to mean the same path and data[] envelope
// only. The adapter always sends model and response_format "b64_json",
// accepts b64_json or url answers (data: URIs, server-relative and absolute
// URLs, the latter downloaded through a Fetcher that refuses other internal
// addresses), packs the negative prompt the way the server expects
// (NegativeMode), reads error.code as a string or a number, and honours
// Retry-After on 503 (model loading) as well as 429.
package openaicompat

import (
	"bytes"
	"context"
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

// DefaultName is the provider name when Config.Name is empty.
const DefaultName = "openaicompat"

// DefaultBaseURL is LocalAI's default address.
const DefaultBaseURL = "http://localhost:8080/v1"

// DefaultTimeout bounds one Generate call when Config.Timeout is zero. Local
// diffusion on a CPU can take minutes per image.
const DefaultTimeout = 10 * time.Minute

const maxResponse = 512 << 20

// NegativeMode says how a negative prompt reaches the server.
type NegativeMode string

const (
	// NegativePipe packs it into the prompt as "positive|negative", the
	// LocalAI convention. It is the default.
	NegativePipe NegativeMode = "pipe"
	// NegativeField sends it as a separate "negative_prompt" field.
	NegativeField NegativeMode = "field"
	// NegativeIgnore drops it, for servers that have no negative prompt.
	NegativeIgnore NegativeMode = "ignore"
)

// Config configures a Client. Zero values mean defaults.
type Config struct {
	// Name is the provider name reported by Name and in errors, so that
	// several compatible servers can be configured side by side;
	// DefaultName if empty.
	Name string
	// APIKey, when set, is sent as "Authorization: Bearer <key>".
	APIKey provider.Secret
	// BaseURL is the API root including /v1; DefaultBaseURL if empty.
	BaseURL string
	// HTTPClient makes the API calls; a plain client if nil (the adapter
	// applies Timeout per call).
	HTTPClient *http.Client
	// Fetcher downloads URL outputs; by default one that refuses non-public
	// addresses except BaseURL's own (a self-hosted server serves its
	// /generated-images/ from there).
	Fetcher *provider.Fetcher
	// Timeout bounds one Generate call; DefaultTimeout if zero.
	Timeout time.Duration
	// NegativeMode is how negative prompts are sent; NegativePipe if empty.
	NegativeMode NegativeMode
}

// Client is the OpenAI-compatible adapter. It is safe for concurrent use.
type Client struct {
	name     string
	key      provider.Secret
	baseURL  string
	http     *http.Client
	fetcher  *provider.Fetcher
	timeout  time.Duration
	negative NegativeMode
	now      func() time.Time
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		name:     cfg.Name,
		key:      cfg.APIKey,
		baseURL:  strings.TrimRight(cfg.BaseURL, "/"),
		http:     cfg.HTTPClient,
		fetcher:  cfg.Fetcher,
		timeout:  cfg.Timeout,
		negative: cfg.NegativeMode,
		now:      time.Now,
	}
	if c.name == "" {
		c.name = DefaultName
	}
	if c.baseURL == "" {
		c.baseURL = DefaultBaseURL
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.fetcher == nil {
		c.fetcher = provider.NewFetcher(provider.AllowBase(c.baseURL)...)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.negative == "" {
		c.negative = NegativePipe
	}
	return c
}

// Name returns the configured provider name.
func (c *Client) Name() string { return c.name }

// reserved are the fields the adapter sets itself; Options cannot override
// them.
var reserved = map[string]bool{"model": true, "prompt": true, "n": true, "size": true, "response_format": true}

// buildRequest maps a provider.Request onto the server's JSON body. Options
// are passed through as extra fields (opt.step=25 becomes "step": 25), since
// each compatible server has its own extras.
func (c *Client) buildRequest(req provider.Request) (map[string]any, error) {
	if req.Model == "" {
		// LocalAI answers 400 without one; say so before spending a call.
		return nil, &provider.Error{Class: provider.Invalid, Provider: c.name, Message: "no model given; OpenAI-compatible servers require one"}
	}
	body := map[string]any{
		"model":           req.Model,
		"n":               max(req.Count, 1),
		"response_format": "b64_json",
	}
	prompt := req.Prompt
	switch c.negative {
	case NegativePipe:
		// LocalAI splits the prompt at "|": a bar in the positive part
		// would silently become a negative prompt.
		if strings.Contains(prompt, "|") {
			return nil, &provider.Error{Class: provider.Invalid, Provider: c.name, Message: `prompt contains "|", which this server reads as the start of the negative prompt`}
		}
		if req.NegativePrompt != "" {
			prompt += "|" + req.NegativePrompt
		}
	case NegativeField:
		if req.NegativePrompt != "" {
			body["negative_prompt"] = req.NegativePrompt
		}
	}
	body["prompt"] = prompt
	if req.Width > 0 && req.Height > 0 {
		body["size"] = fmt.Sprintf("%dx%d", req.Width, req.Height)
	}
	if req.Quality != "" {
		body["quality"] = req.Quality
	}
	if req.Style != "" {
		body["style"] = req.Style
	}
	if req.HasSeed {
		body["seed"] = req.Seed
	}
	for k, v := range req.Options {
		if !reserved[k] {
			body[k] = optionValue(v)
		}
	}
	return body, nil
}

// optionValue types an option string the way a JSON field would carry it:
// integers and decimals as numbers, true/false as booleans, the rest as text.
func optionValue(v string) any {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		return b
	}
	return v
}

type imagesResponse struct {
	ID   string `json:"id"`
	Data []struct {
		B64JSON string `json:"b64_json"`
		URL     string `json:"url"`
	} `json:"data"`
}

// Generate implements provider.Provider with one call to
// POST {BaseURL}/images/generations (LocalAI:
// https://localai.io/features/image-generation/).
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	body, err := c.buildRequest(req)
	if err != nil {
		return provider.Result{}, err
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return provider.Result{}, &provider.Error{Class: provider.Invalid, Provider: c.name, Message: "encode request", Err: err}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, provider.ErrTimeout)
	defer cancel()
	resp, data, err := c.call(ctx, http.MethodPost, "/images/generations", payload)
	if err != nil {
		return provider.Result{}, err
	}
	var ir imagesResponse
	if err := json.Unmarshal(data, &ir); err != nil {
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: c.name, Status: resp.StatusCode, Message: "decode response", Err: err}
	}
	requestID := resp.Header.Get("X-Request-Id")
	if requestID == "" {
		requestID = ir.ID
	}
	res := provider.Result{RequestID: requestID}
	for i, d := range ir.Data {
		raw, err := c.output(ctx, i, d.B64JSON, d.URL)
		var img provider.Image
		if err == nil {
			img, err = provider.ImageFrom(c.name, raw)
		}
		if err != nil {
			var pe *provider.Error
			if errors.As(err, &pe) && pe.RequestID == "" {
				pe.RequestID = requestID
			}
			return provider.Result{}, err
		}
		res.Images = append(res.Images, img)
	}
	if len(res.Images) == 0 {
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: c.name, Status: resp.StatusCode, RequestID: requestID, Message: "answer holds no images"}
	}
	res.Latency = time.Since(start)
	return res, nil
}

// output returns the bytes of data[i]: inline base64, a data: URI, or a
// URL resolved against BaseURL (LocalAI answers with absolute URLs on its
// own host; others answer with server-relative paths) and downloaded.
func (c *Client) output(ctx context.Context, i int, b64, rawURL string) ([]byte, error) {
	switch {
	case b64 != "":
		return decodeB64(c.name, b64)
	case strings.HasPrefix(rawURL, "data:"):
		return decodeDataURI(c.name, rawURL)
	case rawURL != "":
		base, err := url.Parse(c.baseURL)
		if err != nil {
			return nil, &provider.Error{Class: provider.Invalid, Provider: c.name, Message: "base URL does not parse", Err: err}
		}
		ref, err := url.Parse(rawURL)
		if err != nil {
			return nil, &provider.Error{Class: provider.Retryable, Provider: c.name, Message: fmt.Sprintf("data[%d].url does not parse", i), Err: err}
		}
		data, _, err := c.fetcher.Get(ctx, c.name, base.ResolveReference(ref).String())
		return data, err
	}
	return nil, &provider.Error{Class: provider.Retryable, Provider: c.name, Message: fmt.Sprintf("data[%d] has neither b64_json nor url", i)}
}

// ListModels implements provider.ModelLister with GET {BaseURL}/models.
func (c *Client) ListModels(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, min(c.timeout, time.Minute), provider.ErrTimeout)
	defer cancel()
	resp, data, err := c.call(ctx, http.MethodGet, "/models", nil)
	if err != nil {
		return nil, err
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: c.name, Status: resp.StatusCode, Message: "decode model list", Err: err}
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// call sends one request and returns the 200 answer's body, or a classified
// error.
func (c *Client) call(ctx context.Context, method, path string, payload []byte) (*http.Response, []byte, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return nil, nil, &provider.Error{Class: provider.Invalid, Provider: c.name, Message: "build request", Err: err}
	}
	if payload != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Accept", "application/json")
	if c.key != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, nil, c.transportError(ctx, "send request", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, nil, c.classify(resp.StatusCode, resp.Header, data)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, nil, c.transportError(ctx, "read response", err)
	}
	return resp, data, nil
}

// transportError classifies a failure to send or read as Retryable,
// wrapping provider.ErrTimeout when our own deadline passed.
func (c *Client) transportError(ctx context.Context, what string, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, provider.ErrTimeout) {
		err = fmt.Errorf("%w after %s: %w", provider.ErrTimeout, c.timeout, err)
	}
	return &provider.Error{Class: provider.Retryable, Provider: c.name, Message: what + ": " + c.key.Scrub(err.Error()), Err: err}
}

// Interface guards.
var (
	_ provider.Provider    = (*Client)(nil)
	_ provider.ModelLister = (*Client)(nil)
)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "openaicompat adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
