// Package stability is the adapter for Stability AI's REST v2beta "Stable
// Image generate" endpoints (Ultra, Core and SD3.x), the contract in
// shared/docs/providers.md section 3.
//
// The API is synchronous and makes one image per call, so a request for
// several images becomes several calls, made one after the other to stay
// well inside the 150-requests-per-10-seconds limit whose penalty is a
// 60-second lockout.
package stability

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// DefaultBaseURL is the real API.
const DefaultBaseURL = "https://api.stability.ai"

// name is the adapter's provider name, as in the catalogue.
const name = "stability"

// defaultLockout is the documented cool-down after a 429; the API is not
// known to send Retry-After.
const defaultLockout = 60 * time.Second

// maxSeed is the largest seed the API accepts.
const maxSeed = 4294967294

// Config configures a Client. Zero values mean the defaults noted.
type Config struct {
	// APIKey is sent as "Authorization: Bearer <key>".
	APIKey provider.Secret
	// BaseURL defaults to DefaultBaseURL.
	BaseURL string
	// HTTPClient defaults to http.DefaultClient; Generate bounds each call
	// with its context.
	HTTPClient *http.Client
	// Fetcher is only used for its MaxBytes, the cap on one returned image:
	// Stability answers with base64 image bytes, never with URLs. It
	// defaults to provider.NewFetcher(provider.AllowBase(BaseURL)...).
	Fetcher *provider.Fetcher
	// PollInterval is unused: the API is synchronous. It is kept so that
	// every adapter is configured alike.
	PollInterval time.Duration
	// Timeout bounds a whole Generate call (all its images); zero means 10
	// minutes. On expiry Generate returns a Retryable error wrapping
	// provider.ErrTimeout.
	Timeout time.Duration
}

// Client calls the Stability API. It is safe for concurrent use.
type Client struct {
	key     provider.Secret
	base    string
	http    *http.Client
	fetcher *provider.Fetcher
	timeout time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		key:     cfg.APIKey,
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		http:    cfg.HTTPClient,
		fetcher: cfg.Fetcher,
		timeout: cfg.Timeout,
	}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.fetcher == nil {
		c.fetcher = provider.NewFetcher(provider.AllowBase(c.base)...)
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Minute
	}
	return c
}

// Name returns "stability".
func (c *Client) Name() string { return name }

// errTimeout is the cause attached to the call context when Timeout
// passes, to tell it apart from the caller's own cancellation.
var errTimeout = errors.New("stability call timed out")

// Generate makes req.Count images with one API call each.
//
// Request.Model is "ultra", "core", "sd3" (the endpoint's default model) or
// an SD3 model name such as "sd3.5-large", sent to the sd3 endpoint. When a
// seed is given, image i uses seed+i so that several images differ but stay
// reproducible. Images the moderation blurred (finish_reason
// CONTENT_FILTERED) are not returned but counted in Result.Filtered; if
// every image was filtered the error is Rejected. If one call fails, the
// whole request fails with its error.
//
// API reference: https://platform.stability.ai/docs/api-reference
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	path, model, err := endpoint(req.Model)
	if err != nil {
		return provider.Result{}, err
	}
	if req.HasSeed && (req.Seed < 0 || req.Seed > maxSeed) {
		return provider.Result{}, provider.Errorf(provider.Invalid, name, "seed %d is outside 0..%d", req.Seed, int64(maxSeed))
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimeout)
	defer cancel()

	var res provider.Result
	for i := range max(req.Count, 1) {
		fields := formFields(req, model, i)
		img, requestID, filtered, err := c.generateOne(callCtx, path, fields)
		if err != nil {
			return provider.Result{}, c.contextError(ctx, callCtx, err)
		}
		if res.RequestID == "" {
			res.RequestID = requestID
		}
		if filtered {
			res.Filtered++
			continue
		}
		res.Images = append(res.Images, img)
	}
	res.Latency = time.Since(start)
	if len(res.Images) == 0 {
		return provider.Result{}, &provider.Error{
			Class: provider.Rejected, Provider: name, Code: "CONTENT_FILTERED", RequestID: res.RequestID,
			Message: fmt.Sprintf("all %d images were blurred by content moderation", res.Filtered),
		}
	}
	return res, nil
}

// endpoint maps Request.Model onto the endpoint path and the sd3 "model"
// form field.
func endpoint(model string) (path, sd3Model string, err error) {
	const prefix = "/v2beta/stable-image/generate/"
	switch {
	case model == "ultra" || model == "core" || model == "sd3":
		return prefix + model, "", nil
	case strings.HasPrefix(model, "sd3"):
		return prefix + "sd3", model, nil
	default:
		return "", "", provider.Errorf(provider.Invalid, name, "unknown model %q (want ultra, core or an sd3 model)", model)
	}
}

// formFields builds the form for the i-th image of req. Options are passed
// through as form fields (cfg_scale, and anything newer the API accepts);
// the request's own fields win over options of the same name.
func formFields(req provider.Request, model string, i int) map[string]string {
	f := map[string]string{}
	for k, v := range req.Options {
		f[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			f[k] = v
		}
	}
	set("prompt", req.Prompt)
	set("negative_prompt", req.NegativePrompt)
	set("aspect_ratio", req.AspectRatio)
	set("output_format", req.Format)
	set("style_preset", req.Style)
	set("model", model)
	if req.HasSeed {
		seed := req.Seed
		if seed != 0 { // 0 means "random"; keep it so
			seed = (seed+int64(i)-1)%maxSeed + 1
		}
		f["seed"] = strconv.FormatInt(seed, 10)
	}
	return f
}

// generateOne makes one call and returns its image, or filtered=true.
func (c *Client) generateOne(ctx context.Context, path string, fields map[string]string) (provider.Image, string, bool, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // stable order makes requests comparable in logs
	for _, k := range keys {
		if err := mw.WriteField(k, fields[k]); err != nil {
			return provider.Image{}, "", false, &provider.Error{Class: provider.Invalid, Provider: name, Message: "build form: " + err.Error(), Err: err}
		}
	}
	if err := mw.Close(); err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Invalid, Provider: name, Message: "build form: " + err.Error(), Err: err}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, &body)
	if err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Invalid, Provider: name, Message: "build request: " + c.key.Scrub(err.Error()), Err: err}
	}
	hr.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	hr.Header.Set("Content-Type", mw.FormDataContentType())
	hr.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(hr)
	if err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Retryable, Provider: name, Message: c.key.Scrub(err.Error()), Err: err}
	}
	defer resp.Body.Close()
	requestID := resp.Header.Get("X-Request-Id")

	limit := c.maxBytes()*4/3 + 64<<10 // base64 plus the JSON around it
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Retryable, Provider: name, Status: resp.StatusCode, RequestID: requestID, Message: "read response: " + c.key.Scrub(err.Error()), Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return provider.Image{}, "", false, c.apiError(resp, raw, requestID)
	}
	if int64(len(raw)) > limit {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Invalid, Provider: name, RequestID: requestID, Message: fmt.Sprintf("response exceeds the %d-byte image limit", c.maxBytes()), Err: provider.ErrTooLarge}
	}
	var out struct {
		Image        string `json:"image"`
		FinishReason string `json:"finish_reason"`
		Seed         *int64 `json:"seed"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Retryable, Provider: name, RequestID: requestID, Message: "decode response: " + err.Error(), Err: err}
	}
	switch out.FinishReason {
	case "SUCCESS":
	case "CONTENT_FILTERED":
		return provider.Image{}, requestID, true, nil
	default:
		return provider.Image{}, "", false, &provider.Error{Class: provider.Retryable, Provider: name, RequestID: requestID, Code: out.FinishReason, Message: "generation did not finish"}
	}
	data, err := base64.StdEncoding.DecodeString(out.Image)
	if err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Retryable, Provider: name, RequestID: requestID, Message: "decode image: " + err.Error(), Err: err}
	}
	if int64(len(data)) > c.maxBytes() {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Invalid, Provider: name, RequestID: requestID, Message: fmt.Sprintf("image is %d bytes, limit %d", len(data), c.maxBytes()), Err: provider.ErrTooLarge}
	}
	format, w, h, err := provider.DecodeImage(data)
	if err != nil {
		return provider.Image{}, "", false, &provider.Error{Class: provider.Retryable, Provider: name, RequestID: requestID, Message: "returned image does not decode: " + err.Error(), Err: err}
	}
	img := provider.Image{Data: data, Format: format, Width: w, Height: h}
	if out.Seed != nil {
		img.Seed, img.HasSeed = *out.Seed, true
	}
	return img, requestID, false, nil
}

func (c *Client) maxBytes() int64 {
	if c.fetcher.MaxBytes > 0 {
		return c.fetcher.MaxBytes
	}
	return provider.DefaultMaxDownload
}

// apiError classifies an error answer {"id","name","errors":[…]}.
func (c *Client) apiError(resp *http.Response, raw []byte, requestID string) error {
	var body struct {
		ID     string   `json:"id"`
		Name   string   `json:"name"`
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(raw, &body) // a non-JSON body still has a status
	e := &provider.Error{
		Class:     provider.ClassForStatus(resp.StatusCode),
		Provider:  name,
		Status:    resp.StatusCode,
		Code:      body.Name,
		Message:   c.key.Scrub(strings.Join(body.Errors, "; ")),
		RequestID: cmp.Or(body.ID, requestID),
	}
	if e.Message == "" {
		e.Message = c.key.Scrub(strings.TrimSpace(string(raw)))
	}
	if e.Message == "" {
		e.Message = resp.Status
	}
	switch resp.StatusCode {
	case http.StatusForbidden:
		if body.Name == "content_moderation" {
			e.Class = provider.Rejected
		}
	case http.StatusTooManyRequests:
		e.RetryAfter = provider.ParseRetryAfter(resp.Header, time.Now())
		if e.RetryAfter == 0 {
			e.RetryAfter = defaultLockout
		}
	}
	return e
}

// contextError turns a failure caused by the caller's cancellation or by
// our own Timeout into the documented errors; others pass unchanged.
func (c *Client) contextError(parent, callCtx context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return &provider.Error{Class: provider.Retryable, Provider: name, Message: "call abandoned: " + perr.Error(), Err: perr}
	}
	if context.Cause(callCtx) == errTimeout {
		return &provider.Error{Class: provider.Retryable, Provider: name, Code: "timeout",
			Message: fmt.Sprintf("no answer within %s", c.timeout), Err: provider.ErrTimeout}
	}
	return err
}

var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "stability adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
