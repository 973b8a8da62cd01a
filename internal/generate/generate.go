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
	"time"

	_ "golang.org/x/image/webp"

	"bulkgen/internal/imagemeta"
	"bulkgen/internal/provider"
	"bulkgen/internal/ratelimit"
)

// Output is a finished image file and what the provider reported.
type Output struct {
	Data   []byte
	Format string
	SHA256 string
	// Width and Height are the image's, as reported or decoded.
	Width, Height int
	// Seed is the seed the provider reports it used, or the request's.
	Seed      int64
	RequestID string
	// Preview is true for the keyless preview engine's pictures.
	Preview bool
	// Latency is the provider call's; StartedAt and FinishedAt bound it.
	Latency               time.Duration
	StartedAt, FinishedAt time.Time
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

// Generate makes the image for req. A provider failure is returned as the
// adapter's *provider.Error; a Retry-After from the provider pauses every
// request to that provider before the error is returned.
func (g *Generator) Generate(ctx context.Context, req Request) (Output, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	p, err := g.Providers.Get(req.Provider)
	if err != nil {
		return Output{}, err
	}
	var lim *ratelimit.Limiter
	if g.Limits != nil {
		lim = g.Limits.For(req.Provider, req.RemoteModel)
		release, err := lim.Acquire(ctx)
		if err != nil {
			return Output{}, fmt.Errorf("wait for %s rate budget: %w", req.Provider, err)
		}
		defer release()
	}
	started := now()
	res, err := p.Generate(ctx, req.ProviderRequest())
	if err != nil {
		if d := provider.RetryAfterOf(err); d > 0 && lim != nil {
			lim.Pause(d)
		}
		return Output{}, err
	}
	if len(res.Images) == 0 {
		return Output{}, &provider.Error{Class: provider.Rejected, Provider: req.Provider, Message: "the provider returned no image (filtered)", RequestID: res.RequestID}
	}
	img := res.Images[0]
	out := Output{Format: img.Format, Seed: req.Seed, RequestID: res.RequestID, Preview: res.Preview,
		StartedAt: started, FinishedAt: now(), Width: img.Width, Height: img.Height}
	out.Latency = out.FinishedAt.Sub(started)
	if res.Latency > 0 {
		out.Latency = res.Latency
	}
	if img.HasSeed {
		out.Seed = img.Seed
	}

	data := img.Data
	if want := req.Format; want != "" && out.Format != want {
		data, err = convert(data, want)
		if err != nil {
			return Output{}, &provider.Error{Class: provider.Invalid, Provider: req.Provider, Message: fmt.Sprintf("convert %s output to %s: %v", out.Format, want, err)}
		}
		out.Format = want
	}
	if out.Width == 0 || out.Height == 0 {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			out.Width, out.Height = cfg.Width, cfg.Height
		}
	}
	meta, err := json.Marshal(req.metadata(&out))
	if err != nil {
		return Output{}, fmt.Errorf("encode metadata: %w", err)
	}
	if out.Data, err = imagemeta.Embed(data, out.Format, req.parameters(&out), meta); err != nil {
		return Output{}, fmt.Errorf("embed metadata: %w", err)
	}
	sum := sha256.Sum256(out.Data)
	out.SHA256 = hex.EncodeToString(sum[:])
	return out, nil
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
