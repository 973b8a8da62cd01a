// Package bfl is the adapter for the Black Forest Labs API (FLUX models):
// submit one task per image, poll its polling_url, download the signed
// result.sample URL. The wire contract is section 6 of
// shared/docs/providers.md; bfltest holds a local server that speaks it.
//
// Upstream reference: https://docs.bfl.ai/api_integration/integration_guidelines
package bfl

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
	"sync"
	"time"

	"bulkgen/internal/provider"
)

// Name is the provider identifier used in the catalogue.
const Name = "bfl"

// DefaultBaseURL is BFL's global endpoint.
const DefaultBaseURL = "https://api.bfl.ai"

const (
	defaultPollInterval = 500 * time.Millisecond
	defaultTimeout      = 10 * time.Minute
	// defaultRetryAfter is used on a 429 that names no delay: the limit is
	// on active tasks, which usually finish within a few seconds.
	defaultRetryAfter = 5 * time.Second
	maxErrorBody      = 64 << 10
)

// Config configures a Client. Zero values mean defaults.
type Config struct {
	// APIKey is sent as the x-key header.
	APIKey provider.Secret
	// BaseURL defaults to DefaultBaseURL (regional hosts work too).
	BaseURL string
	// HTTPClient makes the submit and poll calls; nil means a plain client
	// (every call is bounded by the context and Timeout).
	HTTPClient *http.Client
	// Fetcher downloads result.sample. Nil means one that refuses
	// non-public addresses except BaseURL's own host (see provider.AllowBase).
	Fetcher *provider.Fetcher
	// PollInterval is the first delay between polls; it grows by half each
	// time up to eight times its value. Zero means 500 ms.
	PollInterval time.Duration
	// Timeout bounds one Generate call, polling and download included.
	// Zero means 10 minutes.
	Timeout time.Duration
}

// Client is a BFL adapter. It is safe for concurrent use.
type Client struct {
	key          provider.Secret
	base         *url.URL
	http         *http.Client
	fetcher      *provider.Fetcher
	pollInterval time.Duration
	timeout      time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		// Generate reports the broken URL on every call.
		u = &url.URL{}
	}
	c := &Client{
		key:          cfg.APIKey,
		base:         u,
		http:         cfg.HTTPClient,
		fetcher:      cfg.Fetcher,
		pollInterval: cfg.PollInterval,
		timeout:      cfg.Timeout,
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.fetcher == nil {
		c.fetcher = provider.NewFetcher(provider.AllowBase(base)...)
	}
	if c.pollInterval <= 0 {
		c.pollInterval = defaultPollInterval
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	return c
}

// Name returns "bfl".
func (c *Client) Name() string { return Name }

// Generate submits req.Count tasks (BFL makes one image per task, so image
// i gets seed Seed+i), polls them concurrently and downloads each sample.
// Moderated outputs are counted in Result.Filtered when at least one image
// came back; when none did, the moderation is the error (Rejected). Any
// other failure fails the whole call.
//
// Upstream: POST /v1/{model} and GET /v1/get_result,
// https://docs.bfl.ai/api_integration/integration_guidelines
func (c *Client) Generate(ctx context.Context, req provider.Request) (provider.Result, error) {
	start := time.Now()
	if c.key == "" {
		return provider.Result{}, provider.Errorf(provider.Auth, Name, "no API key configured")
	}
	if c.base.Scheme != "http" && c.base.Scheme != "https" {
		return provider.Result{}, provider.Errorf(provider.Invalid, Name, "base URL %q is not http(s)", c.base.String())
	}
	if req.Model == "" {
		return provider.Result{}, provider.Errorf(provider.Invalid, Name, "no model given")
	}
	n := max(req.Count, 1)
	bodies := make([][]byte, n)
	for i := range n {
		b, err := buildBody(req, i)
		if err != nil {
			return provider.Result{}, err
		}
		bodies[i] = b
	}

	tctx, cancel := context.WithTimeoutCause(ctx, c.timeout, provider.ErrTimeout)
	defer cancel()

	outs := make([]taskOutcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { outs[i] = c.runTask(tctx, req.Model, bodies[i]) })
	}
	wg.Wait()

	res := provider.Result{Latency: time.Since(start)}
	var ids []string
	var moderated, failed error
	for _, o := range outs {
		if o.id != "" {
			ids = append(ids, o.id)
		}
		switch {
		case o.err == nil:
			res.Images = append(res.Images, o.img)
		case provider.ClassOf(o.err) == provider.Rejected:
			res.Filtered++
			moderated = o.err
		case failed == nil:
			failed = o.err
		}
	}
	res.RequestID = strings.Join(ids, ",")
	if ctx.Err() != nil {
		// BFL has no cancel endpoint: the submitted tasks run to completion
		// on BFL's side and are billed; we only stop waiting.
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "cancelled", Err: ctx.Err()}
	}
	if failed != nil {
		return provider.Result{}, failed
	}
	if len(res.Images) == 0 {
		return provider.Result{}, moderated
	}
	return res, nil
}

type taskOutcome struct {
	id  string
	img provider.Image
	err error
}

// runTask submits one task and follows it to a downloaded image.
func (c *Client) runTask(ctx context.Context, model string, body []byte) taskOutcome {
	sub, err := c.submit(ctx, model, body)
	if err != nil {
		return taskOutcome{err: c.wrapCtx(ctx, err)}
	}
	out := taskOutcome{id: sub.ID}
	poll := c.pollURL(sub)
	// Transport, context and download errors come back from Poll and are
	// put in context terms; the task's own end states are set in out.err
	// as they are.
	err = provider.Poll(ctx, provider.PollConfig{Initial: c.pollInterval, Max: 8 * c.pollInterval}, func(ctx context.Context) (bool, error) {
		r, err := c.poll(ctx, poll)
		if err != nil {
			return false, err
		}
		switch r.Status {
		case "Pending":
			return false, nil
		case "Ready":
			out.img, err = c.download(ctx, r)
			return true, err
		case "Request Moderated", "Content Moderated":
			out.err = &provider.Error{Class: provider.Rejected, Provider: Name, Code: r.Status,
				Message: moderationMessage(r), RequestID: sub.ID}
		case "Task not found":
			// The task expired or was lost; a resubmit (the queue's retry)
			// is the only way forward.
			out.err = &provider.Error{Class: provider.Retryable, Provider: Name, Code: r.Status,
				Message: "task " + sub.ID + " not found", RequestID: sub.ID}
		default: // "Error" and anything unknown: BFL failed the task.
			out.err = &provider.Error{Class: provider.Retryable, Provider: Name, Code: r.Status,
				Message: "task failed: " + detailText(r.Details, r.Status), RequestID: sub.ID}
		}
		return true, nil
	})
	if err != nil {
		out.err = c.wrapCtx(ctx, err)
	}
	return out
}

type submitResponse struct {
	ID         string `json:"id"`
	PollingURL string `json:"polling_url"`
}

func (c *Client) submit(ctx context.Context, model string, body []byte) (submitResponse, error) {
	u := c.base.JoinPath("v1", model)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return submitResponse{}, &provider.Error{Class: provider.Invalid, Provider: Name, Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("x-key", c.key.Reveal())
	var sub submitResponse
	if err := c.do(hreq, &sub); err != nil {
		return submitResponse{}, err
	}
	if sub.ID == "" {
		return submitResponse{}, provider.Errorf(provider.Retryable, Name, "submit answered without a task id")
	}
	return sub, nil
}

// pollURL returns the URL to poll. The key travels with every poll, so a
// polling_url is used only when it points at the configured host or at a
// BFL host over HTTPS; otherwise the documented get_result path is used.
func (c *Client) pollURL(sub submitResponse) string {
	if p, err := url.Parse(sub.PollingURL); err == nil && sub.PollingURL != "" {
		host := p.Hostname()
		sameHost := p.Scheme == c.base.Scheme && p.Host == c.base.Host
		bflHost := p.Scheme == "https" && (host == "bfl.ai" || strings.HasSuffix(host, ".bfl.ai") ||
			host == "bfl.ml" || strings.HasSuffix(host, ".bfl.ml"))
		if sameHost || bflHost {
			return p.String()
		}
	}
	u := c.base.JoinPath("v1", "get_result")
	u.RawQuery = url.Values{"id": {sub.ID}}.Encode()
	return u.String()
}

type pollResponse struct {
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Result  *pollResult     `json:"result"`
	Details json.RawMessage `json:"details"`
}

type pollResult struct {
	Sample string          `json:"sample"`
	Seed   json.RawMessage `json:"seed"`
	Prompt string          `json:"prompt"`
}

func (c *Client) poll(ctx context.Context, pollURL string) (pollResponse, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, pollURL, nil)
	if err != nil {
		return pollResponse{}, &provider.Error{Class: provider.Invalid, Provider: Name, Err: err}
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("x-key", c.key.Reveal())
	var r pollResponse
	if err := c.do(hreq, &r); err != nil {
		return pollResponse{}, err
	}
	return r, nil
}

func (c *Client) download(ctx context.Context, r pollResponse) (provider.Image, error) {
	if r.Result == nil || r.Result.Sample == "" {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, RequestID: r.ID,
			Message: "task ready without a sample URL"}
	}
	data, _, err := c.fetcher.Get(ctx, Name, r.Result.Sample)
	if err != nil {
		return provider.Image{}, err
	}
	img, err := describe(data)
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, RequestID: r.ID,
			Message: "sample is not an image", Err: err}
	}
	if seed, err := strconv.ParseInt(strings.Trim(string(r.Result.Seed), `"`), 10, 64); err == nil {
		img.Seed, img.HasSeed = seed, true
	}
	return img, nil
}

// do sends hreq and decodes a 200 JSON answer into out, or classifies the
// failure.
func (c *Client) do(hreq *http.Request, out any) error {
	resp, err := c.http.Do(hreq)
	if err != nil {
		return &provider.Error{Class: provider.Retryable, Provider: Name, Message: c.key.Scrub(err.Error()), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return c.httpError(resp, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &provider.Error{Class: provider.Retryable, Provider: Name, Status: resp.StatusCode,
			Message: "decode answer", Err: err}
	}
	return nil
}

// errorBody covers FastAPI's {"detail": ...} and the documented 429 body
// {"error", "message", "retry_after"}.
type errorBody struct {
	Detail     json.RawMessage `json:"detail"`
	Error      string          `json:"error"`
	Message    string          `json:"message"`
	RetryAfter json.Number     `json:"retry_after"`
}

// httpError classifies a non-200 answer: 401/402/403 are Auth (402 is "out
// of credits", which only the account owner can fix), 422 and other 4xx
// are Invalid, 429 and 5xx Retryable.
func (c *Client) httpError(resp *http.Response, body []byte) *provider.Error {
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	msg := eb.Message
	if d := detailText(eb.Detail, ""); d != "" {
		msg = d
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 300 {
			msg = msg[:300]
		}
	}
	if msg == "" {
		msg = resp.Status
	}
	e := &provider.Error{
		Class:    provider.ClassForStatus(resp.StatusCode),
		Provider: Name,
		Status:   resp.StatusCode,
		Code:     eb.Error,
		Message:  c.key.Scrub(msg),
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		e.RetryAfter = retryAfter(resp.Header, eb)
	}
	return e
}

// retryAfter reads the delay from the Retry-After headers, then from the
// body's retry_after field, else a default: a 429 always carries a delay so
// that the queue snoozes instead of hammering the active-task limit.
func retryAfter(h http.Header, eb errorBody) time.Duration {
	if d := provider.ParseRetryAfter(h, time.Now()); d > 0 {
		return d
	}
	if s, err := eb.RetryAfter.Float64(); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	return defaultRetryAfter
}

// detailText flattens FastAPI's detail (a string or a list of
// {loc, msg, type}) into one line.
func detailText(raw json.RawMessage, fallback string) string {
	if len(raw) == 0 || string(raw) == "null" {
		return fallback
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var items []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	if json.Unmarshal(raw, &items) == nil && len(items) > 0 {
		parts := make([]string, 0, len(items))
		for _, it := range items {
			loc := make([]string, 0, len(it.Loc))
			for _, l := range it.Loc {
				if l != "body" {
					loc = append(loc, fmt.Sprint(l))
				}
			}
			if len(loc) > 0 {
				parts = append(parts, strings.Join(loc, ".")+": "+it.Msg)
			} else {
				parts = append(parts, it.Msg)
			}
		}
		return strings.Join(parts, "; ")
	}
	return string(raw)
}

func moderationMessage(r pollResponse) string {
	what := "the output was flagged by moderation"
	if r.Status == "Request Moderated" {
		what = "the prompt was flagged by moderation"
	}
	if d := detailText(r.Details, ""); d != "" {
		return what + ": " + d
	}
	return what
}

// wrapCtx turns a failure caused by the call's own deadline into a
// Retryable timeout, and one caused by the caller's cancellation into an
// error wrapping the context's error. Other errors pass through.
func (c *Client) wrapCtx(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if errors.Is(context.Cause(ctx), provider.ErrTimeout) {
		return &provider.Error{Class: provider.Retryable, Provider: Name,
			Message: fmt.Sprintf("no result within %s", c.timeout),
			Err:     fmt.Errorf("bfl: %w", provider.ErrTimeout)}
	}
	return &provider.Error{Class: provider.Retryable, Provider: Name, Message: "cancelled", Err: ctx.Err()}
}

var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "bfl adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
