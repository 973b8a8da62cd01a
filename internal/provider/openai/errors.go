package openai

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// apiError is the body of every OpenAI error answer:
// {"error":{"message","type","param","code"}}. code and param may be null;
// code is read raw because OpenAI-style gateways send it as a number too.
type apiError struct {
	Error *struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Param   *string         `json:"param"`
		Code    json.RawMessage `json:"code"`
	} `json:"error"`
}

// classifyResponse turns a non-200 answer into a *provider.Error following
// the table in providers.md section 1.
func classifyResponse(status int, h http.Header, body []byte, key provider.Secret, now time.Time) *provider.Error {
	e := &provider.Error{Provider: Name, Status: status, RequestID: h.Get("X-Request-Id")}
	var typ, code string
	var ae apiError
	if json.Unmarshal(body, &ae) == nil && ae.Error != nil {
		typ, code = ae.Error.Type, provider.JSONCode(ae.Error.Code)
		e.Message = ae.Error.Message
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
	} else {
		// A proxy or load balancer answered instead of the API.
		e.Message = http.StatusText(status) + ": " + provider.BodySnippet(body)
	}
	e.Message = key.Scrub(e.Message)
	e.Code = code
	if e.Code == "" {
		e.Code = typ
	}

	switch {
	case code == "moderation_blocked" || code == "content_policy_violation" || typ == "image_generation_user_error":
		// The safety system refused the prompt or the output.
		e.Class = provider.Rejected
	case status == 429 && (typ == "insufficient_quota" || code == "insufficient_quota" || code == "credit_balance_exhausted"):
		// Out of credit: retrying only burns attempts until a human pays.
		e.Class = provider.Auth
	case status == 429:
		e.Class = provider.Retryable
		e.RetryAfter = provider.RateLimitDelay(h, now)
	case status == 401 || status == 403:
		e.Class = provider.Auth
	case status == 404:
		// model_not_found: a retired model (dall-e) or a typo in the
		// catalogue; our request was wrong.
		e.Class = provider.Invalid
	case status == 408 || status == 409 || status >= 500:
		e.Class = provider.Retryable
		e.RetryAfter = provider.ParseRetryAfter(h, now)
	default:
		e.Class = provider.ClassForStatus(status)
	}

	// The official SDK lets x-should-retry override the status code. We
	// follow it for the two classes where it can change the decision: a
	// "false" on something we would retry becomes Invalid (not retried,
	// logged loudly), a "true" on something we would call our own mistake
	// becomes Retryable. Auth and Rejected stay as they are: no server hint
	// makes a refused key or a blocked prompt worth repeating unchanged.
	switch strings.ToLower(h.Get("X-Should-Retry")) {
	case "false":
		if e.Class == provider.Retryable {
			e.Class = provider.Invalid
			e.RetryAfter = 0
		}
	case "true":
		if e.Class == provider.Invalid {
			e.Class = provider.Retryable
			e.RetryAfter = provider.ParseRetryAfter(h, now)
		}
	}
	return e
}
