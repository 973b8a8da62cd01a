package gemini

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig for returned JPEGs
	_ "image/png"  // DecodeConfig for returned PNGs

	_ "golang.org/x/image/webp" // DecodeConfig for returned WebPs

	"bulkgen/internal/provider"
)

// sniffFormat names the file format of data from its magic bytes. The part's
// mimeType says what the model meant to send; the bytes say what arrived,
// and the bytes are what gets stored.
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
func decodeImage(data []byte) (provider.Image, error) {
	format := sniffFormat(data)
	switch format {
	case "png", "jpeg", "webp":
	case "":
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: "returned image is in an unknown format"}
	default:
		return provider.Image{}, &provider.Error{Class: provider.Invalid, Provider: Name, Message: fmt.Sprintf("returned image is %s, which bulkgen does not store", format)}
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return provider.Image{}, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "returned " + format + " image does not decode", Err: err}
	}
	return provider.Image{Data: data, Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

// decodeB64 decodes an inlineData payload.
func decodeB64(s string) ([]byte, error) {
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &provider.Error{Class: provider.Retryable, Provider: Name, Message: "inlineData does not decode", Err: err}
	}
	return data, nil
}
