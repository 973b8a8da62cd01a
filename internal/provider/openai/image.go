package openai

import (
	"encoding/base64"
	"strings"

	"bulkgen/internal/provider"
)

// decodeB64 decodes a b64_json field, tolerating a data: URI prefix that
// some gateways add.
func decodeB64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ","); i >= 0 {
			s = s[i+1:]
		}
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "b64_json does not decode", Err: err}
	}
	return data, nil
}
