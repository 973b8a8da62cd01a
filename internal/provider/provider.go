// Package provider defines the seam between bulkgen's pipeline and the
// services that make images: the Provider interface, the Request and Result
// types every adapter speaks, and the error classes the rest of the pipeline
// acts on (retry, refund, pause, report).
//
// Adapters live in sub-packages, one per wire contract in
// shared/docs/providers.md. Each adapter is tested against a local contract
// server in its own <name>test sub-package.
package provider

import (
	"context"
	"time"
)

// Provider generates images for one request. Implementations must be safe for
// concurrent use, must return promptly when ctx is cancelled (cancelling any
// remote task they started where the contract allows it), and must classify
// every failure as an *Error so that callers can decide whether to retry.
type Provider interface {
	// Name is the provider's stable identifier ("openai", "preview", ...),
	// the same string used in the catalogue's "provider" field.
	Name() string
	// Generate makes req.Count images. It returns either a Result with at
	// least one image or an error; a Result with fewer images than asked for
	// is allowed (some providers filter outputs) and Result.Filtered says so.
	Generate(ctx context.Context, req Request) (Result, error)
}

// Request is one call to a provider. Zero values mean "the model's default".
type Request struct {
	// Model is the provider's own model identifier (the catalogue's
	// remote_id), e.g. "gpt-image-2" or "black-forest-labs/flux-schnell".
	Model string
	// Prompt is the fully expanded prompt text.
	Prompt string
	// NegativePrompt is passed where the provider supports one; adapters
	// whose provider has none ignore it (the catalogue tells the user).
	NegativePrompt string
	// Width and Height in pixels, already mapped onto a size the model
	// supports by the catalogue. Zero means the provider's default.
	Width, Height int
	// AspectRatio such as "16:9", for providers that take ratios instead of
	// pixel sizes. Set together with Width and Height where known.
	AspectRatio string
	// Quality is a provider-specific quality word ("low", "high", "hd").
	Quality string
	// Style is a provider-specific style or preset name.
	Style string
	// Format is the wanted file format: "png", "jpeg" or "webp".
	Format string
	// Seed is used where the provider honours seeds. HasSeed distinguishes
	// an explicit zero from "no seed".
	Seed    int64
	HasSeed bool
	// Count is how many images to make in this call (at least 1).
	Count int
	// Options carries extra provider fields from CSV columns "opt.<name>"
	// or configuration, passed through by adapters that know them.
	Options map[string]string
}

// Image is one generated image as bytes.
type Image struct {
	// Data is the encoded file.
	Data []byte
	// Format is "png", "jpeg" or "webp" (the real format of Data, which may
	// differ from the request when the provider chose another).
	Format string
	// Width and Height as reported or decoded; zero if unknown.
	Width, Height int
	// Seed actually used, where the provider reports it.
	Seed    int64
	HasSeed bool
	// RevisedPrompt is the prompt the provider says it used, if any.
	RevisedPrompt string
}

// Result is what a successful Generate returns.
type Result struct {
	Images []Image
	// RequestID is the provider's identifier for the call (x-request-id,
	// prediction id, task id), kept for support conversations.
	RequestID string
	// Filtered counts images the provider withheld or blanked for content
	// reasons while still answering successfully.
	Filtered int
	// Latency is the wall time of the whole call, polling included.
	Latency time.Duration
	// Preview is true only for the built-in preview engine, so that no
	// output of it is ever presented as AI output.
	Preview bool
}

// ModelLister is implemented by providers that can list the models a server
// offers (A1111 checkpoints, OpenAI-compatible /v1/models).
type ModelLister interface {
	ListModels(ctx context.Context) ([]string, error)
}
