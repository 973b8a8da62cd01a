// Package gemini is the provider adapter for image output from the Gemini
// API (POST /v1beta/models/{model}:generateContent), the wire contract in
// providers.md section 2.
//
// Gemini image models make one image per request and have no "n", so
// Generate sends Count requests concurrently and gathers them. Content
// safety outcomes arrive as HTTP 200 without an image; the adapter turns
// them into Rejected errors, or into Result.Filtered when some of the
// requested images did come back.
package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"bulkgen/internal/provider"
)

// Name is the provider's stable identifier in the catalogue.
const Name = "gemini"

// DefaultBaseURL is the real API root.
const DefaultBaseURL = "https://generativelanguage.googleapis.com/v1beta"

// DefaultTimeout bounds one Generate call when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// DefaultConcurrency is how many of one call's requests run at once.
const DefaultConcurrency = 4

const maxResponse = 256 << 20

// Config configures a Client. Zero values mean defaults.
type Config struct {
	// APIKey is sent in the x-goog-api-key header (never in the URL, where
	// it would end up in logs and error messages).
	APIKey provider.Secret
	// BaseURL is the API root including /v1beta; DefaultBaseURL if empty.
	BaseURL string
	// HTTPClient makes the API calls; a plain client if nil.
	HTTPClient *http.Client
	// Fetcher downloads fileData parts that point at an http(s) URL, which
	// image models do not normally send; by default one that refuses
	// non-public addresses except BaseURL's own.
	Fetcher *provider.Fetcher
	// Timeout bounds one Generate call (all its requests); DefaultTimeout
	// if zero.
	Timeout time.Duration
	// Concurrency caps the requests one Generate runs at once;
	// DefaultConcurrency if zero.
	Concurrency int
}

// Client is the Gemini adapter. It is safe for concurrent use.
type Client struct {
	key         provider.Secret
	baseURL     string
	http        *http.Client
	fetcher     *provider.Fetcher
	timeout     time.Duration
	concurrency int
	now         func() time.Time
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		key:         cfg.APIKey,
		baseURL:     strings.TrimRight(cfg.BaseURL, "/"),
		http:        cfg.HTTPClient,
		fetcher:     cfg.Fetcher,
		timeout:     cfg.Timeout,
		concurrency: cfg.Concurrency,
		now:         time.Now,
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
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	return c
}

// Name returns "gemini".
func (c *Client) Name() string { return Name }

type generateRequest struct {
	Contents         []content        `json:"contents"`
	GenerationConfig generationConfig `json:"generationConfig"`
}

type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

type part struct {
	Text       string    `json:"text,omitempty"`
	Thought    bool      `json:"thought,omitempty"`
	InlineData *blob     `json:"inlineData,omitempty"`
	FileData   *fileData `json:"fileData,omitempty"`
}

type blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type fileData struct {
	MimeType string `json:"mimeType"`
	FileURI  string `json:"fileUri"`
}

type generationConfig struct {
	ResponseModalities []string     `json:"responseModalities"`
	ImageConfig        *imageConfig `json:"imageConfig,omitempty"`
}

type imageConfig struct {
	AspectRatio string `json:"aspectRatio,omitempty"`
	ImageSize   string `json:"imageSize,omitempty"`
}

type generateResponse struct {
	Candidates []struct {
		Content       content `json:"content"`
		FinishReason  string  `json:"finishReason"`
		FinishMessage string  `json:"finishMessage"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason        string `json:"blockReason"`
		BlockReasonMessage string `json:"blockReasonMessage"`
	} `json:"promptFeedback"`
	ResponseID string `json:"responseId"`
}

// ratios are the documented imageConfig.aspectRatio values (plus the
// extra ones reported for gemini-3.1-flash-image); a ratio derived from
// Width and Height is sent only when it is one of them.
var ratios = []string{"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"}

// buildRequest maps a provider.Request onto one GenerateContentRequest.
// NegativePrompt, Seed, Quality and Format have no Gemini API field (seed
// is unconfirmed for image models, output format is Vertex-only) and are
// left out; the catalogue tells the user.
func buildRequest(req provider.Request) (generateRequest, error) {
	if req.Model == "" {
		return generateRequest{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "no model given"}
	}
	ic := &imageConfig{AspectRatio: req.AspectRatio, ImageSize: req.Options["image_size"]}
	if ic.AspectRatio == "" {
		if r := reducedRatio(req.Width, req.Height); slices.Contains(ratios, r) {
			ic.AspectRatio = r
		}
	}
	if ic.ImageSize == "" {
		ic.ImageSize = sizeTier(req.Width, req.Height)
	}
	gr := generateRequest{
		Contents:         []content{{Role: "user", Parts: []part{{Text: req.Prompt}}}},
		GenerationConfig: generationConfig{ResponseModalities: []string{"IMAGE"}},
	}
	if *ic != (imageConfig{}) {
		gr.GenerationConfig.ImageConfig = ic
	}
	return gr, nil
}

// sizeTier picks imageSize from the wanted pixel count: 1K is about one
// megapixel (1024x1024, 1376x768, 1584x672), 2K four, 4K sixteen; the
// cut-offs sit halfway between, by area, so every ratio lands in its tier.
// 1K is the default and is left out of the request, which also keeps
// requests valid for models that know no other size.
func sizeTier(w, h int) string {
	area := w * h
	switch {
	case area <= 0 || area <= 2<<20:
		return ""
	case area <= 8<<20:
		return "2K"
	default:
		return "4K"
	}
}

func reducedRatio(w, h int) string {
	if w <= 0 || h <= 0 {
		return ""
	}
	a, b := w, h
	for b != 0 {
		a, b = b, a%b
	}
	return fmt.Sprintf("%d:%d", w/a, h/a)
}

// outcome is what one generateContent request produced: an image, or a
// safety refusal (an error of class Rejected).
type outcome struct {
	image      *provider.Image
	refusal    *provider.Error
	responseID string
}

// Generate implements provider.Provider: Count generateContent requests
// (https://ai.google.dev/api/generate-content#method:-models.generatecontent),
// run concurrently. Any error other than a safety refusal fails the whole
// call (the queue retries it); refusals become Result.Filtered, or a
// Rejected error when no image came back at all.
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
	endpoint := c.baseURL + "/models/" + url.PathEscape(strings.TrimPrefix(req.Model, "models/")) + ":generateContent"

	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, provider.ErrTimeout)
	defer cancel()
	outcomes := make([]outcome, max(req.Count, 1))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.concurrency)
	for i := range outcomes {
		g.Go(func() error {
			o, err := c.generateOne(gctx, endpoint, payload)
			outcomes[i] = o
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return provider.Result{}, err
	}

	var res provider.Result
	var ids []string
	var refusal *provider.Error
	for _, o := range outcomes {
		if o.responseID != "" {
			ids = append(ids, o.responseID)
		}
		switch {
		case o.image != nil:
			res.Images = append(res.Images, *o.image)
		case o.refusal != nil:
			res.Filtered++
			refusal = o.refusal
		}
	}
	res.RequestID = strings.Join(ids, ",")
	if len(res.Images) == 0 {
		if refusal != nil {
			return provider.Result{}, refusal
		}
		return provider.Result{}, &provider.Error{Class: provider.Retryable, Provider: Name, RequestID: res.RequestID, Message: "no image in the answers"}
	}
	res.Latency = time.Since(start)
	return res, nil
}

// generateOne sends one request and reads its image or refusal.
func (c *Client) generateOne(ctx context.Context, endpoint string, payload []byte) (outcome, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return outcome{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "build request", Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("x-goog-api-key", c.key.Reveal())
	resp, err := c.http.Do(hreq)
	if err != nil {
		return outcome{}, c.transportError(ctx, "send request", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return outcome{}, classifyResponse(resp.StatusCode, resp.Header, data, c.key, c.now())
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return outcome{}, c.transportError(ctx, "read response", err)
	}
	var gr generateResponse
	if err := json.Unmarshal(data, &gr); err != nil {
		return outcome{}, &provider.Error{Class: provider.Retryable, Provider: Name, Status: resp.StatusCode, Message: "decode response", Err: err}
	}
	o := outcome{responseID: gr.ResponseID}
	img, err := c.readAnswer(ctx, &gr)
	if err != nil {
		var pe *provider.Error
		if errors.As(err, &pe) {
			pe.RequestID = gr.ResponseID
			if pe.Class == provider.Rejected {
				o.refusal = pe
				return o, nil
			}
		}
		return o, err
	}
	o.image = &img
	return o, nil
}

// blockedFinish are the finish reasons that mean the output was withheld
// for content reasons (providers.md: "Output withheld").
var blockedFinish = []string{"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE",
	"SAFETY", "PROHIBITED_CONTENT", "RECITATION", "OTHER", "BLOCKLIST", "SPII"}

// readAnswer finds the image in a 200 answer, or says why there is none.
func (c *Client) readAnswer(ctx context.Context, gr *generateResponse) (provider.Image, error) {
	if pf := gr.PromptFeedback; pf != nil && pf.BlockReason != "" {
		msg := pf.BlockReasonMessage
		if msg == "" {
			msg = "prompt blocked: " + pf.BlockReason
		}
		return provider.Image{}, &provider.Error{Class: provider.Rejected, Provider: Name, Status: 200, Code: pf.BlockReason, Message: c.key.Scrub(msg)}
	}
	if len(gr.Candidates) == 0 {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, Status: 200, Message: "answer holds no candidates"}
	}
	cand := gr.Candidates[0]
	// Gemini 3 models may send interim "thought" images before the final
	// one; skip them. Of the final image parts, keep the last: with
	// interleaved output, later parts are the model's refinements.
	var found *part
	var text []string
	for i := range cand.Content.Parts {
		p := &cand.Content.Parts[i]
		switch {
		case p.Thought:
		case p.InlineData != nil && strings.HasPrefix(p.InlineData.MimeType, "image/"),
			p.FileData != nil && strings.HasPrefix(p.FileData.MimeType, "image/"):
			found = p
		case p.Text != "":
			text = append(text, p.Text)
		}
	}
	if found == nil {
		msg := cand.FinishMessage
		if msg == "" {
			msg = strings.Join(text, " ")
		}
		if msg == "" {
			msg = "no image in the answer"
		}
		msg = c.key.Scrub(msg)
		if slices.Contains(blockedFinish, cand.FinishReason) {
			return provider.Image{}, &provider.Error{Class: provider.Rejected, Provider: Name, Status: 200, Code: cand.FinishReason, Message: msg}
		}
		// STOP with text only, MAX_TOKENS and the like: the model did not
		// draw this time, which another try may change.
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, Status: 200, Code: cand.FinishReason, Message: msg}
	}
	var raw []byte
	var err error
	if found.InlineData != nil {
		raw, err = decodeB64(found.InlineData.Data)
	} else {
		raw, _, err = c.fetcher.Get(ctx, Name, found.FileData.FileURI)
	}
	if err != nil {
		return provider.Image{}, err
	}
	return provider.ImageFrom(Name, raw)
}

// transportError classifies a failure to send or read as Retryable,
// wrapping provider.ErrTimeout when our own deadline passed.
func (c *Client) transportError(ctx context.Context, what string, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, provider.ErrTimeout) {
		err = fmt.Errorf("%w after %s: %w", provider.ErrTimeout, c.timeout, err)
	}
	return &provider.Error{Class: provider.Retryable, Provider: Name, Message: what + ": " + c.key.Scrub(err.Error()), Err: err}
}

// Interface guard.
var _ provider.Provider = (*Client)(nil)

// String describes the adapter without its settings: fmt reads unexported
// fields directly, so without this a %+v of the client would print its key.
func (c *Client) String() string { return "gemini adapter" }

// GoString is String for %#v.
func (c *Client) GoString() string { return c.String() }
