package provider

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// OptionValue converts an "opt.<name>" string into the JSON type a model
// input schema most likely wants, for providers whose models take free-form
// JSON inputs (fal, Replicate): "true"/"false" become booleans, integers
// and finite decimals numbers, JSON arrays and objects pass as such, and a
// value in double quotes is the string inside them (to force a string
// where a number would be guessed). Anything else stays a string.
func OptionValue(v string) any {
	switch {
	case v == "true":
		return true
	case v == "false":
		return false
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	case strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{"):
		var x any
		if json.Unmarshal([]byte(v), &x) == nil {
			return x
		}
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f
	}
	return v
}
