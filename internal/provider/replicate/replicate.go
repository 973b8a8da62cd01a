// Package replicate is the adapter for Replicate's predictions API, the
// contract in shared/docs/providers.md section 4: create a prediction
// (holding the request open with "Prefer: wait" so that fast models answer
// at once), poll it until it ends, cancel it when the caller gives up, and
// download its output files through the SSRF-guarded provider.Fetcher.
package replicate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// DefaultBaseURL is the real API; request paths start with /v1.
const DefaultBaseURL = "https://api.replicate.com"

const name = "replicate"

// Config configures a Client. Zero values mean the defaults noted.
type Config struct {
	// APIKey is the API token, sent as "Authorization: Bearer <token>".
	APIKey provider.Secret
	// BaseURL defaults to DefaultBaseURL.
	BaseURL string
	// HTTPClient defaults to http.DefaultClient; calls are bounded by their
	// context.
	HTTPClient *http.Client
	// Fetcher downloads output files; it defaults to
	// provider.NewFetcher(provider.AllowBase(BaseURL)...).
	Fetcher *provider.Fetcher
	// PollInterval is the first delay between polls, growing ×1.5 up to 5
	// seconds; zero means one second.
	PollInterval time.Duration
	// Timeout bounds creation and polling; zero means 10 minutes. On expiry
	// the prediction is cancelled and Generate returns a Retryable error
	// wrapping provider.ErrTimeout.
	Timeout time.Duration
	// Wait is sent as "Prefer: wait=N" (whole seconds, 1–60): the create
	// call is held until the prediction ends or N passes. Zero means 30
	// seconds; negative sends no Prefer header and polls from the start.
	Wait time.Duration
}

// Client calls the Replicate API. It is safe for concurrent use.
type Client struct {
	key      provider.Secret
	base     string
	http     *http.Client
	fetcher  *provider.Fetcher
	interval time.Duration
	timeout  time.Duration
	wait     time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		key:      cfg.APIKey,
		base:     strings.TrimRight(cmp.Or(cfg.BaseURL, DefaultBaseURL), "/"),
		http:     cmp.Or(cfg.HTTPClient, http.DefaultClient),
		fetcher:  cfg.Fetcher,
		interval: cmp.Or(cfg.PollInterval, time.Second),
		timeout:  cmp.Or(cfg.Timeout, 10*time.Minute),
		wait:     cmp.Or(cfg.Wait, 30*time.Second),
	}
	if c.fetcher == nil {
		c.fetcher = provider.NewFetcher(provider.AllowBase(c.base)...)
	}
	return c
}

// Name returns "replicate".
func (c *Client) Name() string { return name }

const maxPollInterval = 5 * time.Second

var errTimeout = errors.New("replicate polling timed out")

// prediction is the part of the prediction object the adapter reads.
type prediction struct {
	ID     string          `json:"id"`
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  json.RawMessage `json:"error"`
	URLs   struct {
		Get    string `json:"get"`
		Cancel string `json:"cancel"`
	} `json:"urls"`
}

func (p *prediction) done() bool {
	return p.Status == "succeeded" || p.Status == "failed" || p.Status == "canceled"
}

// Generate runs one prediction for req.Count images.
//
// Request.Model is "owner/name" (an official model, created through
// /v1/models/{owner}/{name}/predictions), a 64-hex version id, or
// "owner/name:<version id>" (both created through /v1/predictions).
// Outputs missing from a successful prediction were removed by the model's
// safety checker and are counted in Result.Filtered.
//
// A prediction that ends "failed" is Rejected when its error mentions NSFW
// content or a safety check, and Retryable otherwise: Replicate reports
// infrastructure failures ("Prediction interrupted; please retry") the same
// way as model errors, and the queue's attempt limit bounds the retries of
// a model that fails every time.
//
// API reference: https://replicate.com/docs/reference/http#predictions.create
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	path, body, err := createRequest(req)
	if err != nil {
		return provider.Result{}, err
	}
	pollCtx, cancel := context.WithTimeoutCause(ctx, c.timeout, errTimeout)
	defer cancel()

	p, err := c.create(pollCtx, path, body)
	if err != nil {
		return provider.Result{}, c.contextError(ctx, pollCtx, err)
	}
	if p, err = c.poll(ctx, pollCtx, p); err != nil {
		return provider.Result{}, err
	}
	switch p.Status {
	case "failed":
		return provider.Result{}, failedError(p)
	case "canceled":
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: name, Code: "canceled", RequestID: p.ID,
			Message: "the prediction was cancelled on Replicate's side"}
	}

	urls := outputURLs(p.Output)
	want := max(req.Count, 1)
	res := provider.Result{RequestID: p.ID, Filtered: max(want-len(urls), 0)}
	if len(urls) == 0 {
		return provider.Result{}, &provider.Error{Class: provider.Rejected, Provider: name, Code: "nsfw", RequestID: p.ID,
			Message: "the prediction succeeded without outputs (all removed by the safety checker)"}
	}
	for _, u := range urls {
		img, err := c.download(ctx, u)
		if err != nil {
			return provider.Result{}, withRequestID(err, p.ID)
		}
		res.Images = append(res.Images, img)
	}
	res.Latency = time.Since(start)
	return res, nil
}

var (
	versionID    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	modelVersion = regexp.MustCompile(`^([\w.-]+)/([\w.-]+):([0-9a-f]{64})$`)
	modelName    = regexp.MustCompile(`^([\w.-]+)/([\w.-]+)$`)
)

// createRequest builds the create path and JSON body for req.
func createRequest(req provider.Request) (string, []byte, error) {
	body := map[string]any{"input": input(req)}
	var path string
	switch {
	case versionID.MatchString(req.Model):
		path, body["version"] = "/v1/predictions", req.Model
	case modelVersion.MatchString(req.Model):
		// Send only the id: every API generation accepts it.
		path, body["version"] = "/v1/predictions", modelVersion.FindStringSubmatch(req.Model)[3]
	case modelName.MatchString(req.Model):
		m := modelName.FindStringSubmatch(req.Model)
		path = "/v1/models/" + url.PathEscape(m[1]) + "/" + url.PathEscape(m[2]) + "/predictions"
	default:
		return "", nil, provider.Errorf(provider.Invalid, name, "model %q is not owner/name, owner/name:version or a version id", req.Model)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return "", nil, &provider.Error{Class: provider.Invalid, Provider: name, Message: "encode input: " + err.Error(), Err: err}
	}
	return path, data, nil
}

// fluxRatios are the aspect ratios FLUX models take; a ratio derived from
// a pixel size is only sent when it is one of them.
var fluxRatios = map[string]bool{"1:1": true, "16:9": true, "21:9": true, "3:2": true, "2:3": true,
	"4:5": true, "5:4": true, "3:4": true, "4:3": true, "9:16": true, "9:21": true}

// input maps req onto the model input. Options pass through, converted by
// optionValue; the request's own fields win over options of the same name.
func input(req provider.Request) map[string]any {
	in := map[string]any{}
	for k, v := range req.Options {
		in[k] = optionValue(k, v)
	}
	in["prompt"] = req.Prompt
	if req.NegativePrompt != "" {
		in["negative_prompt"] = req.NegativePrompt
	}
	if ratio := req.AspectRatio; ratio != "" {
		in["aspect_ratio"] = ratio
	} else if req.Width > 0 && req.Height > 0 {
		g := gcd(req.Width, req.Height)
		if r := fmt.Sprintf("%d:%d", req.Width/g, req.Height/g); fluxRatios[r] {
			in["aspect_ratio"] = r
		}
	}
	if req.Count > 0 {
		in["num_outputs"] = req.Count
	}
	switch req.Format {
	case "jpeg":
		in["output_format"] = "jpg" // Replicate's spelling
	case "png", "webp":
		in["output_format"] = req.Format
	}
	if req.HasSeed {
		in["seed"] = req.Seed
	}
	return in
}

// stringOptions are inputs whose values look like numbers but are string
// enums in the model schemas (flux "megapixels": "1" or "0.25").
var stringOptions = map[string]bool{"megapixels": true}

// optionValue converts an "opt.<name>" string with provider.OptionValue,
// except for stringOptions, which stay strings.
func optionValue(key, v string) any {
	if stringOptions[key] {
		return v
	}
	return provider.OptionValue(v)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// create posts the prediction, holding for up to c.wait.
func (c *Client) create(ctx context.Context, path string, body []byte) (*prediction, error) {
	hr, err := c.newRequest(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.wait > 0 {
		hr.Header.Set("Prefer", fmt.Sprintf("wait=%d", min(max(int(math.Ceil(c.wait.Seconds())), 1), 60)))
	}
	return c.do(hr, http.StatusOK, http.StatusCreated)
}

// poll waits until p ends. On the caller's cancellation or the Timeout it
// cancels the prediction first.
func (c *Client) poll(ctx, pollCtx context.Context, p *prediction) (*prediction, error) {
	if p.done() {
		return p, nil
	}
	err := provider.Poll(pollCtx, provider.PollConfig{Initial: c.interval, Max: maxPollInterval}, func(pollCtx context.Context) (bool, error) {
		hr, err := c.newRequest(pollCtx, http.MethodGet, c.sameOrigin(p.URLs.Get, "/v1/predictions/"+url.PathEscape(p.ID)), nil)
		if err != nil {
			return false, err
		}
		next, err := c.do(hr, http.StatusOK)
		switch {
		case pollCtx.Err() != nil:
			return false, pollCtx.Err()
		case err != nil && provider.ClassOf(err) != provider.Retryable:
			return false, withRequestID(err, p.ID)
		case err == nil:
			// A transient poll failure keeps the prediction; only a
			// good answer replaces it.
			p = next
		}
		return p.done(), nil
	})
	if pollCtx.Err() != nil && errors.Is(err, pollCtx.Err()) {
		// pollCtx ended, while waiting or during a poll.
		c.cancelRemote(ctx, p)
		return nil, c.contextError(ctx, pollCtx, err)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// cancelRemote asks Replicate to stop p, with a short context of its own
// because the caller's is already done. Failure is ignored: the prediction
// then runs to its end and is billed, which is all that can happen.
func (c *Client) cancelRemote(ctx context.Context, p *prediction) {
	if p.ID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	hr, err := c.newRequest(ctx, http.MethodPost, c.sameOrigin(p.URLs.Cancel, "/v1/predictions/"+url.PathEscape(p.ID)+"/cancel"), nil)
	if err != nil {
		return
	}
	resp, err := c.http.Do(hr)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
}

// sameOrigin returns raw when it points at the configured API, else the
// API URL for path: the token is only ever sent to the configured host.
func (c *Client) sameOrigin(raw, path string) string {
	u, err := url.Parse(raw)
	b, berr := url.Parse(c.base)
	if raw == "" || err != nil || berr != nil || u.Scheme != b.Scheme || u.Host != b.Host {
		return c.base + path
	}
	return raw
}

func (c *Client) newRequest(ctx context.Context, method, rawURL string, body io.Reader) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, &provider.Error{Class: provider.Invalid, Provider: name, Message: "build request: " + c.key.Scrub(err.Error()), Err: err}
	}
	hr.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	return hr, nil
}

// do sends hr and decodes a prediction from an answer with one of the ok
// statuses; any other answer becomes a classified error.
func (c *Client) do(hr *http.Request, ok ...int) (*prediction, error) {
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Message: c.key.Scrub(err.Error()), Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Status: resp.StatusCode, Message: "read response: " + c.key.Scrub(err.Error()), Err: err}
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			var p prediction
			if err := json.Unmarshal(raw, &p); err != nil || p.ID == "" {
				return nil, &provider.Error{Class: provider.Retryable, Provider: name, Status: resp.StatusCode, Message: "unreadable prediction object", Err: err}
			}
			return &p, nil
		}
	}
	return nil, c.apiError(resp, raw)
}

var resetsIn = regexp.MustCompile(`resets in ~?(\d+)\s*s`)

// apiError classifies a problem-details answer.
func (c *Client) apiError(resp *http.Response, raw []byte) error {
	var pd struct {
		Title         string `json:"title"`
		Detail        string `json:"detail"`
		InvalidFields []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"invalid_fields"`
	}
	_ = json.Unmarshal(raw, &pd) // a non-JSON body still has a status
	msg := strings.TrimSpace(pd.Detail)
	if len(pd.InvalidFields) > 0 {
		parts := make([]string, len(pd.InvalidFields))
		for i, f := range pd.InvalidFields {
			parts[i] = f.Field + ": " + f.Description
		}
		msg = cmp.Or(pd.Title, "Input validation failed") + ": " + strings.Join(parts, "; ")
	}
	msg = cmp.Or(msg, pd.Title, strings.TrimSpace(string(raw)), resp.Status)
	e := &provider.Error{
		Class:    provider.ClassForStatus(resp.StatusCode),
		Provider: name,
		Status:   resp.StatusCode,
		Code:     pd.Title,
		Message:  c.key.Scrub(msg),
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		e.RetryAfter = provider.ParseRetryAfter(resp.Header, time.Now())
		if m := resetsIn.FindStringSubmatch(pd.Detail); e.RetryAfter == 0 && m != nil {
			n, _ := strconv.Atoi(m[1])
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}

// failedError classifies a prediction that ended "failed".
func failedError(p *prediction) error {
	var msg string
	if json.Unmarshal(p.Error, &msg) != nil {
		msg = strings.TrimSpace(string(p.Error))
	}
	msg = cmp.Or(msg, "the prediction failed without an error message")
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "nsfw") || strings.Contains(lower, "safety") {
		return &provider.Error{Class: provider.Rejected, Provider: name, Code: "nsfw", RequestID: p.ID, Message: msg}
	}
	return &provider.Error{Class: provider.Retryable, Provider: name, Code: "prediction_failed", RequestID: p.ID, Message: msg}
}

// outputURLs reads output as a URL string or an array of URL strings.
func outputURLs(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	var many []any
	_ = json.Unmarshal(raw, &many)
	var urls []string
	for _, v := range many {
		if s, ok := v.(string); ok && s != "" {
			urls = append(urls, s)
		}
	}
	return urls
}

func (c *Client) download(ctx context.Context, rawURL string) (provider.Image, error) {
	data, _, err := c.fetcher.Get(ctx, name, rawURL)
	if err != nil {
		return provider.Image{}, err
	}
	format, w, h, err := provider.DecodeImage(data)
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: name,
			Message: fmt.Sprintf("output %s does not decode: %v", provider.RedactURL(rawURL), err), Err: err}
	}
	return provider.Image{Data: data, Format: format, Width: w, Height: h}, nil
}

// contextError turns a failure caused by the caller's cancellation or by
// our own Timeout into the documented errors; others pass unchanged.
func (c *Client) contextError(parent, pollCtx context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return &provider.Error{Class: provider.Retryable, Provider: name, Message: "call abandoned: " + perr.Error(), Err: perr}
	}
	if context.Cause(pollCtx) == errTimeout {
		return &provider.Error{Class: provider.Retryable, Provider: name, Code: "timeout",
			Message: fmt.Sprintf("prediction not finished within %s", c.timeout), Err: provider.ErrTimeout}
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

var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "replicate adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
