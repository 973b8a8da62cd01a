package provider

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig for returned JPEGs
	_ "image/png"  // DecodeConfig for returned PNGs

	_ "golang.org/x/image/webp" // DecodeConfig for returned WebPs

	"bulkgen/internal/imagemeta"
)

// ErrUnsupportedImage is wrapped by DecodeImage when the bytes are not a
// PNG, JPEG or WebP file, the formats bulkgen stores. Adapters classify it
// as Invalid (asking again brings the same format back); any other
// DecodeImage error means a known format that does not decode, which is
// usually a truncated answer and worth a retry.
var ErrUnsupportedImage = errors.New("not a PNG, JPEG or WebP image")

// DecodeImage reports the real format ("png", "jpeg" or "webp") and size
// of an image a provider returned. The format comes from the file's magic
// bytes, not from what the provider said it sent: providers answer JPEG
// under .png names, or another format than the one asked for, and the bytes
// are what gets stored. Only the header is decoded.
func DecodeImage(data []byte) (format string, w, h int, err error) {
	format = imagemeta.Format(data)
	if format == "" {
		if bytes.HasPrefix(data, []byte("GIF8")) {
			return "gif", 0, 0, fmt.Errorf("image is a GIF: %w", ErrUnsupportedImage)
		}
		return "", 0, 0, fmt.Errorf("image is in an unknown format: %w", ErrUnsupportedImage)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return format, 0, 0, fmt.Errorf("%s image does not decode: %w", format, err)
	}
	// A header can parse and still declare no pixels (a truncated WebP
	// frame header reads as 0x0); that is no image.
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return format, 0, 0, fmt.Errorf("%s image declares a size of %dx%d", format, cfg.Width, cfg.Height)
	}
	return format, cfg.Width, cfg.Height, nil
}

// ImageFrom decodes returned bytes with DecodeImage into an Image for the
// named provider. Failures are classified: bytes in a format bulkgen does
// not store are Invalid (the request asked for something the pipeline
// cannot handle); bytes of a known format that do not decode are Retryable
// (a truncated or corrupted answer is worth asking again).
func ImageFrom(providerName string, data []byte) (Image, error) {
	format, w, h, err := DecodeImage(data)
	if err != nil {
		class := Retryable
		if errors.Is(err, ErrUnsupportedImage) {
			class = Invalid
		}
		return Image{}, &Error{Class: class, Provider: providerName, Message: "returned " + err.Error(), Err: err}
	}
	return Image{Data: data, Format: format, Width: w, Height: h}, nil
}
