// Package geminitest is a local contract server for image output from the
// Gemini API (providers.md section 2): POST
// /v1beta/models/{model}:generateContent with x-goog-api-key or ?key=, the
// Google RPC error envelope, imageConfig validation, safety outcomes as
// HTTP 200, and 429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo in
// per-minute and per-day variants.
//
// Images follow the Gemini 3 size table (1K 16:9 is 1376x768; 2K and 4K
// double and quadruple it), scaled down to Options.MaxEdge on the longer
// side (2048 by default) so that tests stay fast.
package geminitest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulkgen/internal/provider/providertest"
)

// DefaultKey is the API key the server accepts when Options.Key is empty.
const DefaultKey = "AIzaSy-geminitest-0123456789abcdefghij"

// DefaultModel is a model the server serves.
const DefaultModel = "gemini-3.1-flash-image"

// Options configures a Server. Zero values mean defaults.
type Options struct {
	// Key is the accepted API key; DefaultKey if empty.
	Key string
	// Latency is how long one image takes.
	Latency time.Duration
	// RPM is the per-minute request quota over a sliding window; calls
	// over it get 429 RESOURCE_EXHAUSTED with a per-minute QuotaFailure and
	// RetryInfo. Zero means unlimited.
	RPM int
	// Window is the length of the RPM window; one minute if zero.
	Window time.Duration
	// MaxEdge caps the longer side of generated images; 2048 if zero.
	MaxEdge int
	// Thoughts adds an interim image part marked "thought": true (of a
	// different size) before the final image, as Gemini 3 models do.
	Thoughts bool
	// Text adds a text part next to the image.
	Text bool
	// JPEG answers with image/jpeg instead of image/png.
	JPEG bool
}

// Reply is a canned answer that replaces the next generation calls.
type Reply struct {
	Status int
	Header http.Header
	Body   string
}

// Request is what the server decoded from the last generation call.
type Request struct {
	Header http.Header
	// QueryKey is the ?key= parameter, if the key came that way.
	QueryKey string
	// Model is the {model} of the path.
	Model string
	// Fields is every top-level JSON field as sent.
	Fields             map[string]json.RawMessage
	Prompt             string
	ResponseModalities []string
	AspectRatio        string
	ImageSize          string
	// GenerationConfig is the raw generationConfig object.
	GenerationConfig json.RawMessage
}

// Server is a running contract server, safe for concurrent use.
type Server struct {
	// URL is the API root including /v1beta, for Config.BaseURL.
	URL string
	// Key is the accepted API key.
	Key string

	opt    Options
	srv    *httptest.Server
	images providertest.ImageCache
	done   chan struct{}

	queue providertest.Queue[answer]
	calls atomic.Int64
	rpm   *providertest.Window

	mu   sync.Mutex
	last *Request
}

type answer struct {
	fault providertest.Fault
	reply *Reply
}

// Models the server serves, and those it answers 404 for as shut down.
var (
	models     = []string{"gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-2.5-flash-image"}
	shutDown   = []string{"gemini-3.1-flash-image-preview", "gemini-3-pro-image-preview", "imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001", "imagen-4.0-fast-generate-001"}
	baseRatios = []string{"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
	// extraRatios are reported for gemini-3.1-flash-image only.
	extraRatios = []string{"1:4", "4:1", "1:8", "8:1"}
	// sizes1K is the Gemini 3 table at 1K; 2K and 4K scale it by 2 and 4.
	sizes1K = map[string][2]int{
		"1:1": {1024, 1024}, "2:3": {848, 1264}, "3:2": {1264, 848}, "3:4": {896, 1200}, "4:3": {1200, 896},
		"4:5": {928, 1152}, "5:4": {1152, 928}, "9:16": {768, 1376}, "16:9": {1376, 768}, "21:9": {1584, 672},
		"1:4": {512, 2048}, "4:1": {2048, 512}, "1:8": {368, 2944}, "8:1": {2944, 368},
	}
)

// NewServer starts a server that tb's cleanup closes.
func NewServer(tb testing.TB, opt Options) *Server {
	tb.Helper()
	if opt.Key == "" {
		opt.Key = DefaultKey
	}
	if opt.Window <= 0 {
		opt.Window = time.Minute
	}
	if opt.MaxEdge <= 0 {
		opt.MaxEdge = 2048
	}
	s := &Server{Key: opt.Key, opt: opt, done: make(chan struct{}), rpm: providertest.NewWindow(opt.RPM, opt.Window)}
	mux := http.NewServeMux()
	// The method is part of the last segment ("{model}:generateContent"),
	// so one wildcard takes the whole segment and the handler splits it.
	mux.HandleFunc("POST /v1beta/models/{call}", s.handleCall)
	mux.HandleFunc("GET /v1beta/models", s.handleList)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "NOT_FOUND", "The requested URL "+r.URL.Path+" was not found on this server.", nil)
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/v1beta"
	tb.Cleanup(func() {
		close(s.done)
		s.srv.Close()
	})
	return s
}

// Inject makes the next n generation calls answer with fault f as the
// Gemini API does: RateLimit is 429 RESOURCE_EXHAUSTED (per-minute quota,
// retryDelay 1s), ServerError 500 INTERNAL, ContentPolicy a 200 with
// promptFeedback.blockReason PROHIBITED_CONTENT, BadAuth 400
// API_KEY_INVALID, InvalidRequest 400 INVALID_ARGUMENT, Slow holds the
// answer until the client goes away (or 60 s).
func (s *Server) Inject(f providertest.Fault, n int) {
	s.queue.Push(answer{fault: f}, n)
}

// InjectReply makes the next n generation calls answer with r.
func (s *Server) InjectReply(r Reply, n int) {
	s.queue.Push(answer{reply: &r}, n)
}

// Calls reports how many generation calls the server has received.
func (s *Server) Calls() int {
	return int(s.calls.Load())
}

// Throttled reports how many calls the RPM quota answered with 429.
func (s *Server) Throttled() int {
	return s.rpm.Refused()
}

// LastRequest returns the last generation call's decoded request, or nil.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// QuotaReply is a 429 RESOURCE_EXHAUSTED naming quotaID (e.g.
// "GenerateRequestsPerDayPerProjectPerModel-FreeTier") with retryDelay
// (e.g. "41s"; empty for none).
func QuotaReply(quotaID, retryDelay string) Reply {
	details := []any{
		map[string]any{
			"@type": "type.googleapis.com/google.rpc.QuotaFailure",
			"violations": []any{map[string]any{
				"quotaMetric":     "generativelanguage.googleapis.com/generate_content_free_tier_requests",
				"quotaId":         quotaID,
				"quotaDimensions": map[string]string{"model": DefaultModel, "location": "global"},
				"quotaValue":      "20",
			}},
		},
		map[string]any{
			"@type": "type.googleapis.com/google.rpc.Help",
			"links": []any{map[string]string{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}},
		},
	}
	msg := "You exceeded your current quota, please check your plan and billing details."
	if retryDelay != "" {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retryDelay})
		msg += " Please retry in " + retryDelay + "."
	}
	return Reply{Status: 429, Body: errorBody(429, "RESOURCE_EXHAUSTED", msg, details)}
}

// OutputBlockedReply is a 200 whose candidate has no image and the given
// finishReason (IMAGE_SAFETY, NO_IMAGE, ...).
func OutputBlockedReply(finishReason string) Reply {
	b, _ := json.Marshal(map[string]any{
		"candidates": []any{map[string]any{
			"content":       map[string]any{"role": "model", "parts": []any{}},
			"finishReason":  finishReason,
			"finishMessage": "Unable to show the generated image. The image was filtered out because it violated Google's Generative AI Prohibited Use policy.",
			"index":         0,
		}},
		"modelVersion": DefaultModel,
		"responseId":   newID(),
	})
	return Reply{Status: 200, Body: string(b)}
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if !s.checkAuth(w, r) {
		return
	}
	list := make([]any, len(models))
	for i, m := range models {
		list[i] = map[string]any{"name": "models/" + m, "supportedGenerationMethods": []string{"generateContent", "countTokens", "batchGenerateContent"}}
	}
	writeJSON(w, 200, map[string]any{"models": list})
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	model, method, _ := strings.Cut(r.PathValue("call"), ":")
	if method != "generateContent" {
		writeError(w, 404, "NOT_FOUND", fmt.Sprintf("models/%s is not found for API version v1beta, or is not supported for %s. Call ListModels to see the list of available models and their supported methods.", model, method), nil)
		return
	}
	s.calls.Add(1)
	if !s.checkAuth(w, r) {
		return
	}
	req, ok := s.decode(w, r, model)
	if !ok {
		return
	}

	if next, ok := s.queue.Next(); ok {
		if next.reply != nil {
			writeReply(w, *next.reply)
			return
		}
		if !s.fault(w, r, next.fault) {
			return
		}
	}
	if !s.admit(w) {
		return
	}
	if !s.validate(w, req) {
		return
	}
	if !s.wait(r, s.opt.Latency) {
		return
	}
	s.success(w, req)
}

// checkAuth wants the key in x-goog-api-key or ?key=, as the API does.
func (s *Server) checkAuth(w http.ResponseWriter, r *http.Request) bool {
	key := r.Header.Get("X-Goog-Api-Key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	if key == "" {
		writeError(w, 403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", nil)
		return false
	}
	if key != s.Key {
		badKey(w)
		return false
	}
	return true
}

func badKey(w http.ResponseWriter) {
	writeError(w, 400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", []any{
		map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
			"metadata": map[string]string{"service": "generativelanguage.googleapis.com"}},
	})
}

func (s *Server) fault(w http.ResponseWriter, r *http.Request, f providertest.Fault) bool {
	switch f {
	case providertest.RateLimit:
		writeReply(w, QuotaReply("GenerateRequestsPerMinutePerProjectPerModel", "1s"))
	case providertest.ServerError:
		writeError(w, 500, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", nil)
	case providertest.ContentPolicy:
		writeJSON(w, 200, map[string]any{
			"promptFeedback": map[string]any{"blockReason": "PROHIBITED_CONTENT"},
			"usageMetadata":  map[string]int{"promptTokenCount": 12, "totalTokenCount": 12},
			"modelVersion":   DefaultModel,
			"responseId":     newID(),
		})
	case providertest.BadAuth:
		badKey(w)
	case providertest.InvalidRequest:
		writeError(w, 400, "INVALID_ARGUMENT", "Request contains an invalid argument.", nil)
	case providertest.Slow:
		return s.wait(r, 60*time.Second)
	default:
		return true
	}
	return false
}

func (s *Server) wait(r *http.Request, d time.Duration) bool {
	return providertest.Sleep(r, s.done, d)
}

// admit applies the per-minute quota over a sliding window.
func (s *Server) admit(w http.ResponseWriter) bool {
	if s.opt.RPM <= 0 {
		return true
	}
	allowed, _, reset := s.rpm.Admit(time.Now())
	if allowed {
		return true
	}
	secs := math.Ceil(reset.Seconds()*1000) / 1000
	writeReply(w, QuotaReply("GenerateRequestsPerMinutePerProjectPerModel", fmt.Sprintf("%gs", secs)))
	return false
}

// genRequest is the part of GenerateContentRequest the server knows;
// unknown fields are refused like the API's proto parser does.
type genRequest struct {
	Contents []struct {
		Role  string `json:"role"`
		Parts []struct {
			Text       string          `json:"text"`
			InlineData json.RawMessage `json:"inlineData"`
		} `json:"parts"`
	} `json:"contents"`
	GenerationConfig *struct {
		ResponseModalities []string `json:"responseModalities"`
		CandidateCount     int      `json:"candidateCount"`
		Temperature        *float64 `json:"temperature"`
		Seed               *int64   `json:"seed"`
		ImageConfig        *struct {
			AspectRatio string `json:"aspectRatio"`
			ImageSize   string `json:"imageSize"`
		} `json:"imageConfig"`
	} `json:"generationConfig"`
	SafetySettings    json.RawMessage `json:"safetySettings"`
	SystemInstruction json.RawMessage `json:"systemInstruction"`
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, model string) (*Request, bool) {
	body, err := readAll(w, r)
	if err != nil {
		return nil, false
	}
	req := &Request{Header: r.Header.Clone(), QueryKey: r.URL.Query().Get("key"), Model: model}
	s.mu.Lock()
	s.last = req
	s.mu.Unlock()
	if err := json.Unmarshal(body, &req.Fields); err != nil {
		writeError(w, 400, "INVALID_ARGUMENT", "Invalid JSON payload received. "+err.Error(), nil)
		return nil, false
	}
	var gr genRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gr); err != nil {
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			msg = fmt.Sprintf("Unknown name %s: Cannot find field.", name)
		}
		writeError(w, 400, "INVALID_ARGUMENT", "Invalid JSON payload received. "+msg, nil)
		return nil, false
	}
	var texts []string
	for _, c := range gr.Contents {
		for _, p := range c.Parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
	}
	req.Prompt = strings.Join(texts, "\n")
	if gc := gr.GenerationConfig; gc != nil {
		req.ResponseModalities = gc.ResponseModalities
		if gc.ImageConfig != nil {
			req.AspectRatio, req.ImageSize = gc.ImageConfig.AspectRatio, gc.ImageConfig.ImageSize
		}
		req.GenerationConfig = req.Fields["generationConfig"]
	}
	return req, true
}

func (s *Server) validate(w http.ResponseWriter, req *Request) bool {
	bad := func(msg string) bool {
		writeError(w, 400, "INVALID_ARGUMENT", msg, nil)
		return false
	}
	if slices.Contains(shutDown, req.Model) {
		writeError(w, 404, "NOT_FOUND", fmt.Sprintf("models/%s is no longer available to new users. Please update your code to use a newer model for the latest features and improvements.", req.Model), nil)
		return false
	}
	if !slices.Contains(models, req.Model) {
		writeError(w, 404, "NOT_FOUND", fmt.Sprintf("models/%s is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.", req.Model), nil)
		return false
	}
	if _, ok := req.Fields["contents"]; !ok {
		return bad("* GenerateContentRequest.contents: contents is not specified\n")
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return bad("* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n")
	}
	for i, m := range req.ResponseModalities {
		if m != "TEXT" && m != "IMAGE" {
			return bad(fmt.Sprintf("Invalid value at 'generation_config.response_modalities[%d]' (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), %q", i, m))
		}
	}
	if len(req.ResponseModalities) > 0 && !slices.Contains(req.ResponseModalities, "IMAGE") {
		return bad("Model does not support the requested response modalities: text")
	}
	allowed := baseRatios
	if req.Model == "gemini-3.1-flash-image" {
		allowed = append(slices.Clone(baseRatios), extraRatios...)
	}
	if req.AspectRatio != "" && !slices.Contains(allowed, req.AspectRatio) {
		return bad(fmt.Sprintf("* GenerateContentRequest.generation_config.image_config.aspect_ratio: Unsupported aspect ratio %q. Supported values: %s.\n", req.AspectRatio, strings.Join(allowed, ", ")))
	}
	sizes := []string{"1K", "2K", "4K"}
	if req.Model == "gemini-2.5-flash-image" {
		sizes = []string{"1K"}
	}
	if req.ImageSize != "" && !slices.Contains(sizes, req.ImageSize) {
		return bad(fmt.Sprintf("* GenerateContentRequest.generation_config.image_config.image_size: Unsupported image size %q for model %s. Supported values: %s.\n", req.ImageSize, req.Model, strings.Join(sizes, ", ")))
	}
	return true
}

// pixels is the size the model makes for a ratio and size tier.
func pixels(ratio, size string) (int, int) {
	wh, ok := sizes1K[ratio]
	if !ok {
		wh = sizes1K["1:1"]
	}
	f := map[string]int{"2K": 2, "4K": 4}[size]
	if f == 0 {
		f = 1
	}
	return wh[0] * f, wh[1] * f
}

func (s *Server) success(w http.ResponseWriter, req *Request) {
	width, height := pixels(req.AspectRatio, req.ImageSize)
	width, height = providertest.Fit(width, height, s.opt.MaxEdge)
	mime, format := "image/png", "png"
	if s.opt.JPEG {
		mime, format = "image/jpeg", "jpeg"
	}
	final, err := s.images.Get(width, height, format, 0)
	if err != nil {
		writeError(w, 500, "INTERNAL", "An internal error has occurred: "+err.Error(), nil)
		return
	}
	var parts []any
	if s.opt.Text {
		parts = append(parts, map[string]any{"text": "Here is your image."})
	}
	if s.opt.Thoughts {
		// An interim image at a quarter of the size, flagged as thought.
		tw, th := max(width/4, 1), max(height/4, 1)
		thought, err := s.images.Get(tw, th, "png", 1)
		if err != nil {
			writeError(w, 500, "INTERNAL", "An internal error has occurred: "+err.Error(), nil)
			return
		}
		parts = append(parts, map[string]any{"thought": true, "inlineData": map[string]string{
			"mimeType": "image/png", "data": base64.StdEncoding.EncodeToString(thought)}})
	}
	parts = append(parts, map[string]any{
		"inlineData":       map[string]string{"mimeType": mime, "data": base64.StdEncoding.EncodeToString(final)},
		"thoughtSignature": "c2lnbmF0dXJl",
	})
	writeJSON(w, 200, map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"role": "model", "parts": parts},
			"finishReason": "STOP",
			"index":        0,
		}},
		"usageMetadata": map[string]int{"promptTokenCount": 12, "candidatesTokenCount": 1290, "totalTokenCount": 1302},
		"modelVersion":  req.Model,
		"responseId":    newID(),
	})
}

func errorBody(code int, status, msg string, details []any) string {
	e := map[string]any{"code": code, "message": msg, "status": status}
	if details != nil {
		e["details"] = details
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

func writeError(w http.ResponseWriter, code int, status, msg string, details []any) {
	writeReply(w, Reply{Status: code, Body: errorBody(code, status, msg, details)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	writeReply(w, Reply{Status: status, Body: string(b)})
}

func writeReply(w http.ResponseWriter, r Reply) {
	providertest.WriteRaw(w, r.Status, r.Header, r.Body, "application/json; charset=UTF-8")
}

func readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 20<<20)); err != nil {
		writeError(w, 400, "INVALID_ARGUMENT", "Request payload size exceeds the limit: 20971520 bytes.", nil)
		return nil, err
	}
	return buf.Bytes(), nil
}

// newID makes a responseId-like token.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=")
}
