package generate

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"time"

	"bulkgen/internal/imagemeta"
	"bulkgen/internal/provider"
)

// Request is one image to make: an input row after expansion and
// validation against the catalogue, with everything the provider call, the
// file's name and its embedded metadata need. It is the one shape of an
// image request from planning to the file: the planner (batch.Planner)
// makes it, the CLI keeps it in its resume state, the server stores it as
// an item row (and reads it back in the worker), and Generator turns it
// into a provider call and a file with its metadata.
type Request struct {
	// SourceFile and SourceLine locate the input row; Row is the 1-based
	// ordinal of the data row in its batch and Index the 1-based image of
	// the row.
	SourceFile string `json:"source_file,omitempty"`
	SourceLine int    `json:"source_line"`
	Row        int    `json:"row,omitempty"`
	Index      int    `json:"index"`

	// Model is the catalogue id, Provider the adapter that serves it and
	// RemoteModel the provider's own model id.
	Model       string `json:"model"`
	Provider    string `json:"provider"`
	RemoteModel string `json:"remote_model"`

	Prompt         string `json:"prompt"`
	NegativePrompt string `json:"negative_prompt,omitempty"`
	// Width and Height are the pixel size the catalogue resolved for the
	// model; AspectRatio the ratio asked for, when one was.
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	AspectRatio string `json:"aspect_ratio,omitempty"`
	Quality     string `json:"quality,omitempty"`
	Style       string `json:"style,omitempty"`
	// Format is png, jpeg or webp.
	Format string `json:"format"`
	// Seed is always set: the row's own, or one derived from the row.
	Seed int64 `json:"seed"`
	// Options are provider options ("opt.<name>" columns and defaults).
	Options map[string]string `json:"options,omitempty"`
	// Vars are the row's template variables, recorded with the image
	// (recognised fields such as prompt or model are left out: the request
	// has them in their own fields). Shared by a row's requests: do not
	// modify.
	Vars map[string]string `json:"vars,omitempty"`

	// Name is the file name (relative, without extension) before the
	// batch makes it unique; ExplicitName says the row named it itself.
	Name         string `json:"name"`
	ExplicitName bool   `json:"explicit_name,omitempty"`
	// Price is the catalogue's estimate in credits.
	Price int64 `json:"price"`
	// Warnings are the catalogue's notes on the row (a size adjusted, an
	// ignored field); shown when planning, not kept.
	Warnings []string `json:"-"`
}

// ProviderRequest is the call the provider adapter receives: one image.
func (r Request) ProviderRequest() provider.Request {
	return provider.Request{
		Model:          r.RemoteModel,
		Prompt:         r.Prompt,
		NegativePrompt: r.NegativePrompt,
		Width:          r.Width,
		Height:         r.Height,
		AspectRatio:    r.AspectRatio,
		Quality:        r.Quality,
		Style:          r.Style,
		Format:         r.Format,
		Seed:           r.Seed,
		HasSeed:        true,
		Count:          1,
		Options:        r.Options,
	}
}

// FileName is the request's file name with the extension of its format.
func (r Request) FileName() string { return r.Name + Extension(r.Format) }

// Key is the identity of the request: the same key means the same
// request, so a finished image with that key need not be made again (the
// CLI's resume). Source, name and price are not part of it.
func (r Request) Key() string {
	// Length-prefixed fields in one buffer, hashed once: no field can run
	// into the next, and the hot path of planning allocates little.
	var arr [512]byte
	b := arr[:0]
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	field(r.Provider)
	field(r.RemoteModel)
	field(r.Model)
	field(r.Prompt)
	field(r.NegativePrompt)
	b = strconv.AppendInt(b, int64(r.Width), 10)
	b = append(b, 'x')
	b = strconv.AppendInt(b, int64(r.Height), 10)
	b = append(b, ';')
	field(r.AspectRatio)
	field(r.Quality)
	field(r.Style)
	field(r.Format)
	b = strconv.AppendInt(b, r.Seed, 10)
	b = append(b, ';')
	if len(r.Options) > 0 {
		for _, k := range slices.Sorted(maps.Keys(r.Options)) {
			field(k)
			field(r.Options[k])
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Metadata is what an image file carries about itself (the "bulkgen" PNG
// text chunk, or XMP in JPEG and WebP): the request, and what the provider
// reported. Its JSON field names are those of the manifest's columns, so
// that a file and a manifest line read alike.
type Metadata struct {
	SourceFile     string `json:"source_file,omitempty"`
	SourceLine     int    `json:"source_line"`
	Index          int    `json:"index"`
	Prompt         string `json:"prompt"`
	NegativePrompt string `json:"negative_prompt,omitempty"`
	Model          string `json:"model"`
	Provider       string `json:"provider"`
	Width          int    `json:"width"`
	Height         int    `json:"height"`
	AspectRatio    string `json:"aspect_ratio,omitempty"`
	Quality        string `json:"quality,omitempty"`
	Style          string `json:"style,omitempty"`
	Format         string `json:"format"`
	Seed           int64  `json:"seed"`
	Cost           int64  `json:"cost"`
	LatencyMS      int64  `json:"latency_ms,omitempty"`
	RequestID      string `json:"request_id,omitempty"`
	// Preview is true for the keyless preview engine: its pictures are
	// never presented as AI output.
	Preview    bool              `json:"preview"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Vars       map[string]string `json:"vars,omitempty"`
}

// metadata is the record embedded in the file of out, made for r.
func (r Request) metadata(out *Output) Metadata {
	return Metadata{
		SourceFile: r.SourceFile, SourceLine: r.SourceLine, Index: r.Index,
		Prompt: r.Prompt, NegativePrompt: r.NegativePrompt, Model: r.Model, Provider: r.Provider,
		Width: out.Width, Height: out.Height, AspectRatio: r.AspectRatio, Quality: r.Quality, Style: r.Style,
		Format: out.Format, Seed: out.Seed, Cost: r.Price, LatencyMS: out.Latency.Milliseconds(),
		RequestID: out.RequestID, Preview: out.Preview, StartedAt: out.StartedAt, FinishedAt: out.FinishedAt,
		Vars: r.Vars,
	}
}

// parameters is the AUTOMATIC1111-style "parameters" text that image tools
// read, made for r and out.
func (r Request) parameters(out *Output) imagemeta.Parameters {
	p := imagemeta.Parameters{
		Prompt:         r.Prompt,
		NegativePrompt: r.NegativePrompt,
		Seed:           out.Seed,
		Width:          out.Width,
		Height:         out.Height,
		Model:          r.Model,
		Extra:          [][2]string{{"Provider", r.Provider}},
	}
	if out.Preview {
		// Never presented as AI output: the parameters say so too.
		p.Extra = append(p.Extra, [2]string{"Generator", "bulkgen preview engine (not AI)"})
	}
	if r.Quality != "" {
		p.Extra = append(p.Extra, [2]string{"Quality", r.Quality})
	}
	return p
}

// Extension is the file extension for a format.
func Extension(format string) string {
	switch format {
	case "jpeg":
		return ".jpg"
	case "":
		return ".png"
	}
	return "." + format
}
