package gemini

import (
	"encoding/base64"

	"bulkgen/internal/provider"
)

// decodeB64 decodes an inlineData payload.
func decodeB64(s string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "inlineData does not decode", Err: err}
	}
	return data, nil
}
