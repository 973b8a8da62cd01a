package openaicompat

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig for returned JPEGs
	_ "image/png"  // DecodeConfig for returned PNGs
	"strings"

	_ "golang.org/x/image/webp" // DecodeConfig for returned WebPs

	"bulkgen/internal/provider"
)

// sniffFormat names the file format of data from its magic bytes: servers
// behind this contract say nothing reliable about the format (LocalAI's
// URLs end in .png whatever the backend wrote), so the bytes decide.
func sniffFormat(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return "jpeg"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(data, []byte("GIF8")):
		return "gif"
	}
	return ""
}

// decodeImage turns returned bytes into a provider.Image with the real format
// and size. Bytes in a format bulkgen does not store (GIF, SVG) are Invalid:
// the request asked for something the pipeline cannot handle. Bytes that
// claim a known format but do not decode are Retryable: a truncated or
// corrupted answer is worth asking again.
func decodeImage(name string, data []byte) (provider.Image, error) {
	format := sniffFormat(data)
	switch format {
	case "png", "jpeg", "webp":
	case "":
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: name, Message: "returned image is in an unknown format"}
	default:
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: name, Message: fmt.Sprintf("returned image is %s, which bulkgen does not store", format)}
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: name, Message: "returned " + format + " image does not decode", Err: err}
	}
	return provider.Image{Data: data, Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

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
