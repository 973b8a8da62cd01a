package gemini

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"bulkgen/internal/provider"
)

// rpcError is the Google RPC error envelope.
type rpcError struct {
	Error *struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Status  string            `json:"status"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

// errorDetail holds the fields of the detail types we read: ErrorInfo
// (reason), QuotaFailure (violations) and RetryInfo (retryDelay).
type errorDetail struct {
	Type       string `json:"@type"`
	Reason     string `json:"reason"`
	RetryDelay string `json:"retryDelay"`
	Violations []struct {
		QuotaID string `json:"quotaId"`
	} `json:"violations"`
}

// retryInMessage finds "Please retry in 41.2s." in a quota message, the
// fallback when the body has no RetryInfo.
var retryInMessage = regexp.MustCompile(`retry in ([0-9.]+m?s)`)

// classifyResponse turns a non-200 answer into a *provider.Error following
// providers.md section 2.
func classifyResponse(status int, h http.Header, body []byte, key provider.Secret, now time.Time) *provider.Error {
	e := &provider.Error{Provider: Name, Status: status}
	var re rpcError
	var rpcStatus, reason string
	var delay time.Duration
	perDay := false
	if json.Unmarshal(body, &re) == nil && re.Error != nil {
		rpcStatus = re.Error.Status
		e.Message = re.Error.Message
		for _, raw := range re.Error.Details {
			var d errorDetail
			if json.Unmarshal(raw, &d) != nil {
				continue
			}
			switch {
			case strings.HasSuffix(d.Type, "google.rpc.ErrorInfo"):
				reason = d.Reason
			case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
				delay, _ = time.ParseDuration(d.RetryDelay)
			case strings.HasSuffix(d.Type, "google.rpc.QuotaFailure"):
				for _, v := range d.Violations {
					if strings.Contains(v.QuotaID, "PerDay") {
						perDay = true
					}
				}
			}
		}
	} else {
		e.Message = http.StatusText(status) + ": " + provider.BodySnippet(body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	e.Message = key.Scrub(e.Message)
	e.Code = rpcStatus
	if reason != "" {
		e.Code = reason
	}
	if delay <= 0 {
		delay = provider.ParseRetryAfter(h, now)
	}
	if m := retryInMessage.FindStringSubmatch(e.Message); delay <= 0 && m != nil {
		delay, _ = time.ParseDuration(m[1])
	}

	switch {
	case reason == "API_KEY_INVALID" || strings.Contains(e.Message, "API key not valid") || strings.Contains(e.Message, "API key expired"):
		// Gemini answers a bad key with 400 INVALID_ARGUMENT.
		e.Class = provider.Auth
	case status == 401 || status == 403 || rpcStatus == "FAILED_PRECONDITION":
		// FAILED_PRECONDITION: the API is not available to this account
		// (region, billing); a human must act.
		e.Class = provider.Auth
	case status == 429 && perDay:
		// A per-day quota is spent. We classify it Retryable with a
		// RetryAfter reaching past the daily reset rather than Auth:
		// the key is fine and the quota refills by itself, the quota is
		// per model (Auth would pause every Gemini model), and a
		// snoozed job does not use up its attempts. The reset is
		// reported as midnight Pacific time.
		e.Class = provider.Retryable
		e.Code = "RESOURCE_EXHAUSTED_PER_DAY"
		e.RetryAfter = max(delay, untilPacificMidnight(now))
	case status == 429 || status == 408 || status >= 500:
		e.Class = provider.Retryable
		e.RetryAfter = delay
	default:
		// 400 INVALID_ARGUMENT, 404 NOT_FOUND (a shut-down model).
		e.Class = provider.ClassForStatus(status)
	}
	return e
}

// untilPacificMidnight is the time from now to the next midnight in
// America/Los_Angeles. Without time zone data it assumes UTC-8 (standard
// time), which during daylight time lands an hour after the reset: late,
// never early.
func untilPacificMidnight(now time.Time) time.Duration {
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		loc = time.FixedZone("PST", -8*60*60)
	}
	t := now.In(loc)
	next := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	return next.Sub(now)
}
