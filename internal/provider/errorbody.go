package provider

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Helpers for reading error answers that more than one adapter shares.
// The classification itself stays in each adapter: it follows that
// provider's table in providers.md.

// BodySnippet keeps the start of an error body that is not the provider's
// envelope (a proxy's HTML page, a bare string) for an error message:
// valid UTF-8, at most about 200 bytes, "empty body" when there is none.
func BodySnippet(body []byte) string {
	s := strings.ToValidUTF8(strings.TrimSpace(string(body)), "")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	if s == "" {
		return "empty body"
	}
	return s
}

// JSONCode renders a raw JSON error code (string, number or null) as
// text, for envelopes whose "code" is a word on one server and a number on
// another (OpenAI and OpenAI-compatible gateways).
func JSONCode(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// RateLimitDelay reads the delay of an OpenAI-style 429: retry-after-ms or
// Retry-After when present (see ParseRetryAfter), else the reset time of
// the exhausted x-ratelimit-reset-{requests,tokens} budget (durations such
// as "12ms", "6s", "1m0s"). Without x-ratelimit-remaining-* headers it
// takes the longest reset, which is never too early. Zero means no hint.
func RateLimitDelay(h http.Header, now time.Time) time.Duration {
	if d := ParseRetryAfter(h, now); d > 0 {
		return d
	}
	var d time.Duration
	for _, kind := range []string{"requests", "tokens"} {
		reset, err := time.ParseDuration(strings.TrimSpace(h.Get("X-Ratelimit-Reset-" + kind)))
		if err != nil || reset <= 0 {
			continue
		}
		if h.Get("X-Ratelimit-Remaining-"+kind) == "0" {
			return reset
		}
		d = max(d, reset)
	}
	return d
}
