// Package fal is the adapter for fal.ai's queue API, the contract in
// shared/docs/providers.md section 5: submit to the model's queue, poll the
// status URL until COMPLETED, fetch the result, cancel a request that has
// not started when the caller gives up, and download the images through
// the SSRF-guarded provider.Fetcher (or decode them from data URIs).
package fal

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// DefaultBaseURL is the real queue host.
const DefaultBaseURL = "https://queue.fal.run"

const name = "fal"

// Config configures a Client. Zero values mean the defaults noted.
type Config struct {
	// APIKey is sent as "Authorization: Key <key>".
	APIKey provider.Secret
	// BaseURL defaults to DefaultBaseURL.
	BaseURL string
	// HTTPClient defaults to http.DefaultClient; calls are bounded by their
	// context.
	HTTPClient *http.Client
	// Fetcher downloads output files and caps data URIs; it defaults to
	// provider.NewFetcher(provider.AllowBase(BaseURL)...).
	Fetcher *provider.Fetcher
	// PollInterval is the first delay between status polls, growing ×1.5 up
	// to 5 seconds; zero means 500ms.
	PollInterval time.Duration
	// Timeout bounds submission and polling; zero means 10 minutes. On
	// expiry the request is cancelled (fal only cancels requests still in
	// the queue) and Generate returns a Retryable error wrapping
	// provider.ErrTimeout.
	Timeout time.Duration
}

// Client calls the fal queue API. It is safe for concurrent use.
type Client struct {
	key      provider.Secret
	base     string
	http     *http.Client
	fetcher  *provider.Fetcher
	interval time.Duration
	timeout  time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		key:      cfg.APIKey,
		base:     strings.TrimRight(cmp.Or(cfg.BaseURL, DefaultBaseURL), "/"),
		http:     cmp.Or(cfg.HTTPClient, http.DefaultClient),
		fetcher:  cfg.Fetcher,
		interval: cmp.Or(cfg.PollInterval, 500*time.Millisecond),
		timeout:  cmp.Or(cfg.Timeout, 10*time.Minute),
	}
	if c.fetcher == nil {
		c.fetcher = provider.NewFetcher(provider.AllowBase(c.base)...)
	}
	return c
}

// Name returns "fal".
func (c *Client) Name() string { return name }

const maxPollInterval = 5 * time.Second

var errTimeout = errors.New("fal polling timed out")

var modelID = regexp.MustCompile(`^[\w.-]+/[\w.-]+(/[\w.-]+)*$`)

// queued is the submit and status object.
type queued struct {
	Status      string `json:"status"`
	RequestID   string `json:"request_id"`
	ResponseURL string `json:"response_url"`
	StatusURL   string `json:"status_url"`
	CancelURL   string `json:"cancel_url"`
}

// output is the FLUX result.
type output struct {
	Images []struct {
		URL    string `json:"url"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	} `json:"images"`
	Seed            *int64 `json:"seed"`
	HasNSFWConcepts []bool `json:"has_nsfw_concepts"`
}

// Generate submits one request for req.Count images and waits for it.
//
// Request.Model is the fal model id ("fal-ai/flux/schnell"). Images the
// safety checker flagged (has_nsfw_concepts) are dropped and counted in
// Result.Filtered; if every image was flagged the error is Rejected.
//
// API reference: https://docs.fal.ai/model-endpoints/queue
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	if !modelID.MatchString(req.Model) {
		return provider.Result{}, provider.Errorf(provider.Invalid, name, "model %q is not a fal model id (owner/app[/path])", req.Model)
	}
	body, err := json.Marshal(input(req))
	if err != nil {
		return provider.Result{}, &provider.Error{Class: provider.Invalid, Provider: name, Message: "encode input: " + err.Error(), Err: err}
	}
	pollCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimeout)
	defer cancel()

	q, err := c.submit(pollCtx, req.Model, body)
	if err != nil {
		return provider.Result{}, c.contextError(ctx, pollCtx, err)
	}
	if err := c.wait(ctx, pollCtx, req.Model, q); err != nil {
		return provider.Result{}, withRequestID(err, q.RequestID)
	}
	out, err := c.result(pollCtx, req.Model, q)
	if err != nil {
		return provider.Result{}, withRequestID(c.contextError(ctx, pollCtx, err), q.RequestID)
	}

	res := provider.Result{RequestID: q.RequestID}
	for i, im := range out.Images {
		if i < len(out.HasNSFWConcepts) && out.HasNSFWConcepts[i] {
			res.Filtered++
			continue
		}
		img, err := c.image(ctx, im.URL)
		if err != nil {
			return provider.Result{}, withRequestID(err, q.RequestID)
		}
		res.Images = append(res.Images, img)
	}
	res.Filtered += max(max(req.Count, 1)-len(out.Images), 0)
	if len(res.Images) == 0 {
		return provider.Result{}, &provider.Error{Class: provider.Rejected, Provider: name, Code: "nsfw", RequestID: q.RequestID,
			Message: fmt.Sprintf("all %d images were flagged by the safety checker", res.Filtered)}
	}
	if len(res.Images) == 1 && out.Seed != nil {
		res.Images[0].Seed, res.Images[0].HasSeed = *out.Seed, true
	}
	res.Latency = time.Since(start)
	return res, nil
}

// namedSizes maps ratios onto FLUX's image_size presets.
var namedSizes = map[string]string{
	"1:1": "square_hd", "4:3": "landscape_4_3", "16:9": "landscape_16_9",
	"3:4": "portrait_4_3", "9:16": "portrait_16_9",
}

// input maps req onto the model input. Options pass through, converted by
// provider.OptionValue (enable_safety_checker=false becomes a boolean); the
// request's own fields win over options of the same name.
func input(req provider.Request) map[string]any {
	in := map[string]any{}
	for k, v := range req.Options {
		in[k] = provider.OptionValue(v)
	}
	in["prompt"] = req.Prompt
	if req.NegativePrompt != "" {
		in["negative_prompt"] = req.NegativePrompt
	}
	if req.Width > 0 && req.Height > 0 {
		in["image_size"] = map[string]int{"width": req.Width, "height": req.Height}
	} else if s, ok := namedSizes[req.AspectRatio]; ok {
		in["image_size"] = s
	}
	if req.Count > 0 {
		in["num_images"] = req.Count
	}
	if req.HasSeed {
		in["seed"] = req.Seed
	}
	if req.Format != "" {
		in["output_format"] = req.Format
	}
	return in
}

func (c *Client) submit(ctx context.Context, model string, body []byte) (*queued, error) {
	hr, err := c.newRequest(ctx, http.MethodPost, c.base+"/"+model, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	raw, resp, err := c.send(hr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.apiError(resp, raw)
	}
	var q queued
	if err := json.Unmarshal(raw, &q); err != nil || q.RequestID == "" {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Status: resp.StatusCode, Message: "unreadable submit answer", Err: err}
	}
	return &q, nil
}

// wait polls the status URL until COMPLETED. On the caller's cancellation
// or the Timeout it cancels the request first.
func (c *Client) wait(ctx, pollCtx context.Context, model string, q *queued) error {
	statusURL := c.sameOrigin(q.StatusURL, model, q.RequestID, "/status")
	err := provider.Poll(pollCtx, provider.PollConfig{Initial: c.interval, Max: maxPollInterval}, func(pollCtx context.Context) (bool, error) {
		hr, err := c.newRequest(pollCtx, http.MethodGet, statusURL, nil)
		if err != nil {
			return false, err
		}
		raw, resp, err := c.send(hr)
		switch {
		case pollCtx.Err() != nil:
			return false, pollCtx.Err()
		case err != nil:
			// A network hiccup while polling keeps the request.
		case resp.StatusCode == http.StatusOK:
			return true, nil // COMPLETED, successfully or not: the result says
		case resp.StatusCode == http.StatusAccepted:
			var st queued
			if json.Unmarshal(raw, &st) == nil && st.Status == "COMPLETED" {
				return true, nil
			}
		default:
			if err := c.apiError(resp, raw); provider.ClassOf(err) != provider.Retryable {
				return false, err
			}
		}
		return false, nil
	})
	if pollCtx.Err() != nil && errors.Is(err, pollCtx.Err()) {
		// pollCtx ended, while waiting or during a poll.
		c.cancelRemote(ctx, model, q)
		return c.contextError(ctx, pollCtx, err)
	}
	return err
}

func (c *Client) result(ctx context.Context, model string, q *queued) (*output, error) {
	hr, err := c.newRequest(ctx, http.MethodGet, c.sameOrigin(q.ResponseURL, model, q.RequestID, ""), nil)
	if err != nil {
		return nil, err
	}
	raw, resp, err := c.send(hr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.apiError(resp, raw)
	}
	var out output
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Message: "unreadable result: " + err.Error(), Err: err}
	}
	return &out, nil
}

// cancelRemote asks fal to drop the request, with a short context of its
// own because the caller's is already done. fal only cancels requests that
// have not started; a running one finishes and is billed regardless.
func (c *Client) cancelRemote(ctx context.Context, model string, q *queued) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	hr, err := c.newRequest(ctx, http.MethodPut, c.sameOrigin(q.CancelURL, model, q.RequestID, "/cancel"), nil)
	if err != nil {
		return
	}
	_, _, _ = c.send(hr)
}

// sameOrigin returns raw when it points at the configured API; otherwise
// the URL is rebuilt from the base, so that the key is only ever sent to
// the configured host. Status, result and cancel live under owner/app,
// not under the full model id.
func (c *Client) sameOrigin(raw, model, requestID, suffix string) string {
	u, err := url.Parse(raw)
	b, berr := url.Parse(c.base)
	if raw != "" && err == nil && berr == nil && u.Scheme == b.Scheme && u.Host == b.Host {
		return raw
	}
	parts := strings.SplitN(model, "/", 3)
	return c.base + "/" + parts[0] + "/" + parts[1] + "/requests/" + url.PathEscape(requestID) + suffix
}

func (c *Client) newRequest(ctx context.Context, method, rawURL string, body io.Reader) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, &provider.Error{Class: provider.Invalid, Provider: name, Message: "build request: " + c.key.Scrub(err.Error()), Err: err}
	}
	hr.Header.Set("Authorization", "Key "+c.key.Reveal())
	return hr, nil
}

// send does hr and reads the (capped) body.
func (c *Client) send(hr *http.Request) ([]byte, *http.Response, error) {
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, nil, &provider.Error{Class: provider.Retryable, Provider: name, Message: c.key.Scrub(err.Error()), Err: err}
	}
	defer resp.Body.Close()
	// Results with sync_mode carry the images inline as data URIs.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes()*4/3*4+1<<20))
	if err != nil {
		return nil, nil, &provider.Error{Class: provider.Retryable, Provider: name, Status: resp.StatusCode, Message: "read response: " + c.key.Scrub(err.Error()), Err: err}
	}
	return raw, resp, nil
}

// apiError classifies an error answer: {"detail": "…" | [{loc,msg,type}],
// "error_type": …} plus the X-Fal-* headers.
func (c *Client) apiError(resp *http.Response, raw []byte) error {
	var body struct {
		Detail    json.RawMessage `json:"detail"`
		ErrorType string          `json:"error_type"`
	}
	_ = json.Unmarshal(raw, &body) // a non-JSON body still has a status
	var msg string
	var types []string
	if json.Unmarshal(body.Detail, &msg) != nil {
		var items []struct {
			Loc  []any  `json:"loc"`
			Msg  string `json:"msg"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body.Detail, &items)
		parts := make([]string, 0, len(items))
		for _, it := range items {
			loc := make([]string, len(it.Loc))
			for i, l := range it.Loc {
				loc[i] = fmt.Sprint(l)
			}
			parts = append(parts, strings.Join(loc, ".")+": "+it.Msg)
			types = append(types, it.Type)
		}
		msg = strings.Join(parts, "; ")
	}
	errorType := cmp.Or(body.ErrorType, resp.Header.Get("X-Fal-Error-Type"))
	e := &provider.Error{
		Class:    provider.ClassForStatus(resp.StatusCode),
		Provider: name,
		Status:   resp.StatusCode,
		Code:     cmp.Or(errorType, first(types)),
		Message:  c.key.Scrub(cmp.Or(msg, strings.TrimSpace(string(raw)), resp.Status)),
	}
	retryable := cmp.Or(resp.Header.Get("X-Fal-Retryable"), resp.Header.Get("X-Fal-Needs-Retry"))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Class = provider.Auth
	case slices.Contains(types, "content_policy_violation"):
		e.Class, e.Code = provider.Rejected, "content_policy_violation"
	case strings.EqualFold(resp.Header.Get("X-Fal-Request-Timeout-Type"), "user"):
		// Our own x-fal-request-timeout passed: repeating the call with the
		// same limit would time out again.
		e.Class = provider.Invalid
	case retryable != "":
		if b, err := strconv.ParseBool(retryable); err == nil && b {
			e.Class = provider.Retryable
		} else if e.Class == provider.Retryable {
			e.Class = provider.Invalid // fal says retrying will not help
		}
	}
	if e.Class == provider.Retryable {
		e.RetryAfter = provider.ParseRetryAfter(resp.Header, time.Now())
	}
	return e
}

// image turns one output URL (https or data URI) into an Image.
func (c *Client) image(ctx context.Context, rawURL string) (provider.Image, error) {
	var data []byte
	if strings.HasPrefix(rawURL, "data:") {
		var err error
		if data, err = c.dataURI(rawURL); err != nil {
			return provider.Image{}, err
		}
	} else {
		var err error
		if data, _, err = c.fetcher.Get(ctx, name, rawURL); err != nil {
			return provider.Image{}, err
		}
	}
	format, w, h, err := provider.DecodeImage(data)
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: name,
			Message: fmt.Sprintf("output %s does not decode: %v", shortURL(rawURL), err), Err: err}
	}
	return provider.Image{Data: data, Format: format, Width: w, Height: h}, nil
}

// dataURI decodes "data:<type>;base64,<data>", capped like a download.
func (c *Client) dataURI(raw string) ([]byte, error) {
	meta, payload, ok := strings.Cut(strings.TrimPrefix(raw, "data:"), ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, provider.Errorf(provider.Retryable, name, "output data URI is not base64")
	}
	if int64(base64.StdEncoding.DecodedLen(len(payload))) > c.maxBytes()+2 {
		return nil, &provider.Error{Class: provider.Invalid, Provider: name,
			Message: fmt.Sprintf("inline output exceeds the %d-byte limit", c.maxBytes()), Err: provider.ErrTooLarge}
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Message: "decode data URI: " + err.Error(), Err: err}
	}
	if int64(len(data)) > c.maxBytes() {
		return nil, &provider.Error{Class: provider.Invalid, Provider: name,
			Message: fmt.Sprintf("inline output exceeds the %d-byte limit", c.maxBytes()), Err: provider.ErrTooLarge}
	}
	return data, nil
}

func (c *Client) maxBytes() int64 {
	if c.fetcher.MaxBytes > 0 {
		return c.fetcher.MaxBytes
	}
	return provider.DefaultMaxDownload
}

// contextError turns a failure caused by the caller's cancellation or by
// our own Timeout into the documented errors; others pass unchanged.
func (c *Client) contextError(parent, pollCtx context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return &provider.Error{Class: provider.Retryable, Provider: name, Message: "call abandoned: " + perr.Error(), Err: perr}
	}
	if context.Cause(pollCtx) == errTimeout {
		return &provider.Error{Class: provider.Retryable, Provider: name, Code: "timeout",
			Message: fmt.Sprintf("request not finished within %s", c.timeout), Err: provider.ErrTimeout}
	}
	return err
}

func withRequestID(err error, id string) error {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.RequestID == "" {
		pe.RequestID = id
	}
	return err
}

func shortURL(raw string) string {
	if strings.HasPrefix(raw, "data:") {
		return "data URI"
	}
	return provider.RedactURL(raw)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "fal adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
