package openaicompat

import (
	"encoding/base64"
	"strings"

	"bulkgen/internal/provider"
)

// decodeB64 decodes a b64_json field, tolerating a data: URI prefix that
// some gateways add.
func decodeB64(name, s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		return decodeDataURI(name, s)
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Message: "b64_json does not decode", Err: err}
	}
	return data, nil
}

// decodeDataURI decodes "data:image/png;base64,...", the form bridges such
// as OpenedAI Images put in data[].url.
func decodeDataURI(name, uri string) ([]byte, error) {
	meta, payload, ok := strings.Cut(strings.TrimPrefix(uri, "data:"), ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, &provider.Error{Class: provider.Invalid, Provider: name, Message: "output data: URI is not base64"}
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: name, Message: "output data: URI does not decode", Err: err}
	}
	return data, nil
}
