// Package imagemeta writes bulkgen's metadata into image files and reads it
// back, so that every image carries its prompt and settings wherever it is
// copied.
//
// Two things are stored: the generation parameters as AUTOMATIC1111
// "infotext" (readable by A1111's PNG Info tab and most image sites) and
// bulkgen's full JSON record of the image, which this package treats as
// opaque bytes.
//
//   - PNG: a "parameters" text chunk (tEXt, or iTXt when the text is not
//     Latin-1, exactly as A1111 writes it) and an iTXt chunk "bulkgen"
//     holding the record, placed before the first IDAT.
//   - JPEG: an XMP packet in an APP1 segment with the properties
//     bulkgen:parameters and bulkgen:record. A JPEG segment holds at most
//     65533 bytes; when the packet is larger, the properties move to
//     Adobe's ExtendedXMP (split across further APP1 segments, the main
//     packet pointing at them with xmpNote:HasExtendedXMP), so nothing is
//     truncated.
//   - WebP: the same XMP packet in an "XMP " chunk, with a VP8X header
//     announcing it (added if the file had the simple format).
//
// XMP cannot carry most C0 control characters; they become U+FFFD there.
// PNG text keeps every character.
//
// Read is meant for untrusted files: it never panics and never allocates
// more than about twice the input based on a length field it read. The one
// exception is compressed PNG text (zTXt, compressed iTXt, which other tools
// write), whose inflated size is capped at 4 MiB.
package imagemeta

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"

	"bulkgen/internal/imagemeta/webpenc"
)

var (
	// ErrNoMetadata is returned by Read when the file carries neither
	// parameters nor a bulkgen record.
	ErrNoMetadata = errors.New("imagemeta: no metadata")
	// ErrUnknownFormat is returned for data that is not PNG, JPEG or WebP,
	// or not the format the caller named.
	ErrUnknownFormat = errors.New("imagemeta: unknown image format")
	// ErrMalformed is returned when the container structure is broken
	// (truncated chunks or segments, missing image data).
	ErrMalformed = errors.New("imagemeta: malformed image file")
)

// Format reports the format of data from its signature: "png", "jpeg",
// "webp", or "" when it is none of them.
func Format(data []byte) string {
	switch {
	case bytes.HasPrefix(data, pngSignature):
		return "png"
	case len(data) >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff:
		return "jpeg"
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// Embed returns a copy of data, an encoded image in format ("png", "jpeg"
// or "webp"; empty means detect it), with p and record written into it.
// What a previous Embed wrote is replaced, so embedding twice leaves one
// copy; so is an A1111 "parameters" PNG chunk and, in JPEG and WebP, any
// XMP packet already there (a file holds one). The pixels are untouched.
func Embed(data []byte, format string, p Parameters, record []byte) ([]byte, error) {
	got := Format(data)
	if got == "" || (format != "" && format != got) {
		return nil, fmt.Errorf("embed into %q data: %w", format, ErrUnknownFormat)
	}
	params := p.A1111()
	switch got {
	case "png":
		return embedPNG(data, params, record)
	case "jpeg":
		return embedJPEG(data, params, record)
	default:
		return embedWebP(data, params, record)
	}
}

// Read returns the parameters and record that Embed wrote into data (or,
// for a PNG made by A1111 itself, its parameters and a nil record). It
// returns ErrNoMetadata when there is neither. When only the record is
// present, p is the zero Parameters with Seed -1.
func Read(data []byte) (p Parameters, record []byte, err error) {
	var (
		params    string
		hasParams bool
	)
	switch Format(data) {
	case "png":
		params, hasParams, record, err = readPNG(data)
	case "jpeg":
		params, hasParams, record, err = readJPEG(data)
	case "webp":
		params, hasParams, record, err = readWebP(data)
	default:
		return Parameters{Seed: -1}, nil, ErrUnknownFormat
	}
	p = Parameters{Seed: -1}
	if err != nil {
		return p, nil, err
	}
	if hasParams {
		if parsed, perr := ParseA1111(params); perr == nil {
			p = parsed
		} else {
			hasParams = false
		}
	}
	if !hasParams && record == nil {
		return p, nil, ErrNoMetadata
	}
	return p, record, nil
}

// Encode writes img in format: "png" (fastest compression, since bulkgen
// writes many images and disk is cheaper than CPU), "jpeg" at quality
// (1–100; 0 means 90) or "webp" (lossless, quality ignored).
func Encode(w io.Writer, img image.Image, format string, quality int) error {
	switch format {
	case "png":
		if err := encodePNG(w, img); err != nil {
			return fmt.Errorf("encode png: %w", err)
		}
	case "jpeg":
		if quality == 0 {
			quality = 90
		}
		quality = min(max(quality, 1), 100)
		if err := jpeg.Encode(w, img, &jpeg.Options{Quality: quality}); err != nil {
			return fmt.Errorf("encode jpeg: %w", err)
		}
	case "webp":
		if err := webpenc.Encode(w, img); err != nil {
			return fmt.Errorf("encode webp: %w", err)
		}
	default:
		return fmt.Errorf("encode %q: %w", format, ErrUnknownFormat)
	}
	return nil
}
