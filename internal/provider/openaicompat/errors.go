package openaicompat

import (
	"encoding/json"
	"net/http"
	"strings"

	"bulkgen/internal/provider"
)

// apiError is the OpenAI error envelope as compatible servers send it.
// LocalAI puts the HTTP status in code as a number ({"code":500,...}) and
// a word in it while loading ({"code":"model_loading",...}); some servers
// send "error" as a bare string.
type apiError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

// parseError reads the message, type and code of an error body, whatever
// its shape; ok is false when the body is not an error envelope at all.
func parseError(body []byte) (msg, typ, code string, ok bool) {
	var env struct {
		Error  json.RawMessage `json:"error"`
		Detail string          `json:"detail"`
	}
	if json.Unmarshal(body, &env) != nil {
		return "", "", "", false
	}
	var ae apiError
	var s string
	switch {
	case len(env.Error) > 0 && json.Unmarshal(env.Error, &ae) == nil && (ae.Message != "" || len(ae.Code) > 0):
		return ae.Message, ae.Type, provider.JSONCode(ae.Code), true
	case len(env.Error) > 0 && json.Unmarshal(env.Error, &s) == nil:
		return s, "", "", true
	case env.Detail != "":
		return env.Detail, "", "", true
	}
	return "", "", "", false
}

// classify turns a non-200 answer into a *provider.Error.
func (c *Client) classify(status int, h http.Header, body []byte) *provider.Error {
	e := &provider.Error{Provider: c.name, Status: status, RequestID: h.Get("X-Request-Id")}
	msg, typ, code, ok := parseError(body)
	if !ok {
		msg = http.StatusText(status) + ": " + provider.BodySnippet(body)
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = c.key.Scrub(msg)
	// A numeric code only repeats the status; the type says more.
	e.Code = code
	if typ != "" && (code == "" || isNumber(code)) {
		e.Code = typ
	}
	now := c.now()

	switch {
	case code == "moderation_blocked" || code == "content_policy_violation" || typ == "image_generation_user_error":
		// A gateway relaying a hosted model's safety refusal.
		e.Class = provider.Rejected
	case status == 429 && (typ == "insufficient_quota" || code == "insufficient_quota" || code == "credit_balance_exhausted"):
		// OpenAI's "out of credit" through a gateway: never retried.
		e.Class = provider.Auth
	case status == 429:
		// LocalAI's per-user quota (type quota_exceeded) comes with a
		// Retry-After: it refills, so wait rather than pause the provider.
		e.Class = provider.Retryable
		e.RetryAfter = provider.RateLimitDelay(h, now)
	case status == 401 || status == 403:
		e.Class = provider.Auth
	case status == 408 || status == 409 || status >= 500:
		// 503 is LocalAI's "model loading" / "backend busy", with Retry-After.
		e.Class = provider.Retryable
		e.RetryAfter = provider.ParseRetryAfter(h, now)
	default:
		e.Class = provider.ClassForStatus(status)
	}

	// x-should-retry, where a gateway sends it, overrides as in the
	// OpenAI SDK, except that Auth and Rejected stay final.
	switch strings.ToLower(h.Get("X-Should-Retry")) {
	case "false":
		if e.Class == provider.Retryable {
			e.Class, e.RetryAfter = provider.Invalid, 0
		}
	case "true":
		if e.Class == provider.Invalid {
			e.Class, e.RetryAfter = provider.Retryable, provider.ParseRetryAfter(h, now)
		}
	}
	return e
}

func isNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
