// Package openai is the provider adapter for the OpenAI Images API
// (POST /v1/images/generations), the wire contract in providers.md section 1.
//
// It speaks to GPT image models only: they always answer with base64
// (data[].b64_json), so the adapter never sends response_format. The retired
// dall-e models are refused by the catalogue before a call is made; if one
// slips through, the API's 404 model_not_found comes back as Invalid.
//
// The adapter makes exactly one HTTP call per Generate and never retries:
// retries, Retry-After and rate budgets belong to the queue.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// Name is the provider's stable identifier in the catalogue.
const Name = "openai"

// DefaultBaseURL is the real API.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultTimeout bounds one Generate call when Config.Timeout is zero. GPT
// image models take up to a couple of minutes for large, high-quality images.
const DefaultTimeout = 5 * time.Minute

// maxResponse caps a success body: ten 4K images in base64 fit easily.
const maxResponse = 512 << 20

// Config configures a Client. Zero values mean defaults.
type Config struct {
	// APIKey is sent as "Authorization: Bearer <key>".
	APIKey provider.Secret
	// BaseURL is the API root including /v1; DefaultBaseURL if empty.
	BaseURL string
	// Organization and Project, when set, are sent as the OpenAI-Organization
	// and OpenAI-Project headers.
	Organization, Project string
	// HTTPClient makes the API calls; a client with no overall timeout (the
	// adapter applies Timeout per call) if nil.
	HTTPClient *http.Client
	// Fetcher downloads URL outputs (legacy answers only); by default one
	// that refuses non-public addresses except BaseURL's own.
	Fetcher *provider.Fetcher
	// Timeout bounds one Generate call; DefaultTimeout if zero.
	Timeout time.Duration
}

// Client is the OpenAI Images adapter. It is safe for concurrent use.
type Client struct {
	key          provider.Secret
	baseURL      string
	organization string
	project      string
	http         *http.Client
	fetcher      *provider.Fetcher
	timeout      time.Duration
	now          func() time.Time
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		key:          cfg.APIKey,
		baseURL:      strings.TrimRight(cfg.BaseURL, "/"),
		organization: cfg.Organization,
		project:      cfg.Project,
		http:         cfg.HTTPClient,
		fetcher:      cfg.Fetcher,
		timeout:      cfg.Timeout,
		now:          time.Now,
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
	return c
}

// Name returns "openai".
func (c *Client) Name() string { return Name }

// imageRequest is CreateImageRequest, limited to the fields GPT image models
// accept and bulkgen sets. response_format is deliberately absent.
type imageRequest struct {
	Model             string `json:"model"`
	Prompt            string `json:"prompt"`
	N                 int    `json:"n,omitempty"`
	Size              string `json:"size,omitempty"`
	Quality           string `json:"quality,omitempty"`
	OutputFormat      string `json:"output_format,omitempty"`
	OutputCompression *int   `json:"output_compression,omitempty"`
	Background        string `json:"background,omitempty"`
	Moderation        string `json:"moderation,omitempty"`
	User              string `json:"user,omitempty"`
}

// imagesResponse is ImagesResponse.
type imagesResponse struct {
	Created      int64  `json:"created"`
	OutputFormat string `json:"output_format"`
	Data         []struct {
		B64JSON       string `json:"b64_json"`
		URL           string `json:"url"`
		RevisedPrompt string `json:"revised_prompt"`
	} `json:"data"`
}

// buildRequest maps a provider.Request onto CreateImageRequest. Seed,
// NegativePrompt and Style have no field for GPT image models and are left
// out (the catalogue tells the user).
func buildRequest(req provider.Request) (imageRequest, error) {
	r := imageRequest{
		Model:        req.Model,
		Prompt:       req.Prompt,
		N:            max(req.Count, 1),
		Size:         "auto",
		Quality:      req.Quality,
		OutputFormat: req.Format,
		Background:   req.Options["background"],
		Moderation:   req.Options["moderation"],
		User:         req.Options["user"],
	}
	if req.Width > 0 && req.Height > 0 {
		r.Size = fmt.Sprintf("%dx%d", req.Width, req.Height)
	}
	if v := req.Options["quality"]; v != "" && r.Quality == "" {
		r.Quality = v
	}
	if v := req.Options["output_format"]; v != "" {
		r.OutputFormat = v
	}
	if v := req.Options["output_compression"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return r, &provider.Error{Class: provider.Invalid, Provider: Name, Code: "output_compression",
				Message: fmt.Sprintf("opt.output_compression %q is not an integer", v)}
		}
		r.OutputCompression = &n
	}
	if r.Model == "" {
		return r, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "no model given"}
	}
	return r, nil
}

// Generate implements provider.Provider with one call to
// POST /v1/images/generations
// (https://platform.openai.com/docs/api-reference/images/create).
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	body, err := buildRequest(req)
	if err != nil {
		return provider.Result{}, err
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return provider.Result{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "encode request", Err: err}
	}

	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, provider.ErrTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/images/generations", bytes.NewReader(payload))
	if err != nil {
		return provider.Result{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "build request", Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	if c.organization != "" {
		hreq.Header.Set("OpenAI-Organization", c.organization)
	}
	if c.project != "" {
		hreq.Header.Set("OpenAI-Project", c.project)
	}

	resp, err := c.http.Do(hreq)
	if err != nil {
		return provider.Result{}, c.transportError(ctx, "send request", err)
	}
	defer resp.Body.Close()
	requestID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return provider.Result{}, classifyResponse(resp.StatusCode, resp.Header, data, c.key, c.now())
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return provider.Result{}, c.transportError(ctx, "read response", err)
	}
	var ir imagesResponse
	if err := json.Unmarshal(data, &ir); err != nil {
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name, Status: resp.StatusCode, RequestID: requestID, Message: "decode response", Err: err}
	}

	res := provider.Result{RequestID: requestID}
	for i, d := range ir.Data {
		var raw []byte
		switch {
		case d.B64JSON != "":
			raw, err = decodeB64(d.B64JSON)
		case d.URL != "":
			// Only legacy dall-e answers carried URLs; kept for
			// gateways that still answer that way.
			raw, _, err = c.fetcher.Get(ctx, Name, d.URL)
		default:
			err = &provider.Error{Class: provider.Retryable, Provider: Name, Message: fmt.Sprintf("data[%d] has neither b64_json nor url", i)}
		}
		if err != nil {
			return provider.Result{}, withRequestID(err, requestID)
		}
		img, err := provider.ImageFrom(Name, raw)
		if err != nil {
			return provider.Result{}, withRequestID(err, requestID)
		}
		img.RevisedPrompt = d.RevisedPrompt
		res.Images = append(res.Images, img)
	}
	if len(res.Images) == 0 {
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name, Status: resp.StatusCode, RequestID: requestID, Message: "answer holds no images"}
	}
	res.Latency = time.Since(start)
	return res, nil
}

// transportError classifies a failure to send or read: Retryable, wrapping
// both the cause and, when our own deadline passed, provider.ErrTimeout, so
// that errors.Is finds context.Canceled for a caller's cancellation.
func (c *Client) transportError(ctx context.Context, what string, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, provider.ErrTimeout) {
		err = fmt.Errorf("%w after %s: %w", provider.ErrTimeout, c.timeout, err)
	}
	return &provider.Error{Class: provider.Retryable, Provider: Name, Message: what + ": " + c.key.Scrub(err.Error()), Err: err}
}

// withRequestID stamps the call's request id on an adapter error.
func withRequestID(err error, id string) error {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.RequestID == "" {
		pe.RequestID = id
	}
	return err
}

// Interface guard.
var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "openai adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
