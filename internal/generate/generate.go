// Package generate makes one image: it takes the provider's rate budget,
// calls the provider, converts the result to the requested format when the
// provider chose another, embeds the metadata record in the file, and
// hashes it. `bulkgen run` calls it from its worker pool and the server from
// its queue worker, so both produce byte-identical files for a request.
package generate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for format conversion
	_ "image/png"
	"maps"
	"slices"
	"strconv"
	"time"

	_ "golang.org/x/image/webp"

	"bulkgen/internal/imagemeta"
	"bulkgen/internal/manifest"
	"bulkgen/internal/provider"
	"bulkgen/internal/ratelimit"
)

// Job is one image request, as stored by the runner or the server.
type Job struct {
	// Provider names the adapter; RemoteModel is the provider's model id.
	Provider    string
	RemoteModel string
	Request     provider.Request
	// Record is the manifest record so far (source, prompt, parameters);
	// Generate fills in what the provider reports.
	Record manifest.Record
}

// Output is a finished image file.
type Output struct {
	Data   []byte
	Format string
	SHA256 string
	Record manifest.Record
}

// Providers finds the adapter for a provider name.
type Providers interface {
	Get(name string) (provider.Provider, error)
}

// Generator makes images through providers within their rate budgets.
type Generator struct {
	Providers Providers
	// Limits may be nil (no limits).
	Limits *ratelimit.Set
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Generate makes the image for job. A provider failure is returned as the
// adapter's *provider.Error; a Retry-After from the provider pauses every
// request to that provider before the error is returned.
func (g *Generator) Generate(ctx context.Context, job Job) (Output, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	p, err := g.Providers.Get(job.Provider)
	if err != nil {
		return Output{}, err
	}
	req := job.Request
	req.Model = job.RemoteModel
	req.Count = 1

	var lim *ratelimit.Limiter
	if g.Limits != nil {
		lim = g.Limits.For(job.Provider, job.RemoteModel)
		release, err := lim.Acquire(ctx)
		if err != nil {
			return Output{}, fmt.Errorf("wait for %s rate budget: %w", job.Provider, err)
		}
		defer release()
	}
	started := now()
	res, err := p.Generate(ctx, req)
	if err != nil {
		if d := provider.RetryAfterOf(err); d > 0 && lim != nil {
			lim.Pause(d)
		}
		return Output{}, err
	}
	if len(res.Images) == 0 {
		return Output{}, &provider.Error{Class: provider.Rejected, Provider: job.Provider, Message: "the provider returned no image (filtered)", RequestID: res.RequestID}
	}
	img := res.Images[0]
	finished := now()

	data, format := img.Data, img.Format
	want := req.Format
	if want == "" {
		want = format
	}
	if format != want {
		data, err = convert(data, want)
		if err != nil {
			return Output{}, &provider.Error{Class: provider.Invalid, Provider: job.Provider, Message: fmt.Sprintf("convert %s output to %s: %v", format, want, err)}
		}
		format = want
	}
	w, h := img.Width, img.Height
	if w == 0 || h == 0 {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			w, h = cfg.Width, cfg.Height
		}
	}

	rec := job.Record
	rec.Provider = job.Provider
	rec.Width, rec.Height, rec.Format = w, h, format
	if img.HasSeed {
		rec.Seed = img.Seed
	}
	rec.RequestID = res.RequestID
	rec.Preview = res.Preview
	rec.LatencyMS = finished.Sub(started).Milliseconds()
	if res.Latency > 0 {
		rec.LatencyMS = res.Latency.Milliseconds()
	}
	rec.StartedAt, rec.FinishedAt = &started, &finished
	rec.Status = manifest.StatusSucceeded
	rec.Error, rec.ErrorClass = "", ""

	recJSON, err := json.Marshal(rec)
	if err != nil {
		return Output{}, fmt.Errorf("encode record: %w", err)
	}
	params := imagemeta.Parameters{
		Prompt:         rec.Prompt,
		NegativePrompt: rec.NegativePrompt,
		Seed:           rec.Seed,
		Width:          w,
		Height:         h,
		Model:          rec.Model,
		Extra:          [][2]string{{"Provider", rec.Provider}},
	}
	if rec.Preview {
		// Never presented as AI output: the parameters say so too.
		params.Extra = append(params.Extra, [2]string{"Generator", "bulkgen preview engine (not AI)"})
	}
	if rec.Quality != "" {
		params.Extra = append(params.Extra, [2]string{"Quality", rec.Quality})
	}
	data, err = imagemeta.Embed(data, format, params, recJSON)
	if err != nil {
		return Output{}, fmt.Errorf("embed metadata: %w", err)
	}
	sum := sha256.Sum256(data)
	rec.SHA256 = hex.EncodeToString(sum[:])
	rec.Bytes = int64(len(data))
	return Output{Data: data, Format: format, SHA256: rec.SHA256, Record: rec}, nil
}

func convert(data []byte, format string) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := imagemeta.Encode(&buf, img, format, 92); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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

// Key is the identity of an image request: the same key means the same
// request, so a finished image with that key need not be made again.
func Key(job Job) string {
	r := job.Request
	// Length-prefixed fields in one buffer, hashed once: no field can run
	// into the next, and the hot path of planning allocates little.
	var arr [512]byte
	b := arr[:0]
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	field(job.Provider)
	field(job.RemoteModel)
	field(job.Record.Model)
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
