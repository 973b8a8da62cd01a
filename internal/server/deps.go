package server

import (
	"time"

	"bulkgen/internal/batch"
	"bulkgen/internal/blob"
	"bulkgen/internal/catalog"
	"bulkgen/internal/ledger"
	"bulkgen/internal/metrics"
)

// Extra holds the pipeline dependencies of the API handlers. It is filled
// in as those handlers land.
type Extra struct {
	// Shared pipeline dependencies (added with the OpenAI, export, events
	// and operations handlers; any handler may use them).

	// Catalog is the model catalogue; nil means catalog.Default().
	Catalog *catalog.Catalog
	// Blobs holds the image files.
	Blobs blob.Store
	// Batches is the batch service: every handler that creates, changes
	// or deletes a batch, an item or an image goes through it. Nil makes
	// those handlers answer 503.
	Batches *batch.Service
	// Ledger reads the workspace's credits (GET /api/v1/usage).
	Ledger *ledger.Ledger
	// Available says whether a provider is configured on this server
	// (registry.Available): GET /v1/models lists only those. Nil means
	// every provider is.
	Available func(provider string) error

	// Operations, OpenAI-compatible endpoint and export.

	// Metrics receives HTTP metrics and serves /metrics; nil means a
	// private registry made by New.
	Metrics *metrics.Metrics
	// OpenAITimeout bounds how long POST /v1/images/generations waits for
	// its images; 0 means 5 minutes.
	OpenAITimeout time.Duration
	// OpenAIPoll is how often that request checks its items; 0 means 100 ms.
	OpenAIPoll time.Duration
	// URLKey signs the short-lived /v1/files/{signed} links that
	// response_format=url answers with; nil means a random key per process
	// (links then die with the process, which their 1-hour life allows).
	URLKey []byte
	// EventsPoll is how often an SSE progress stream reads new events; 0
	// means 500 ms. EventsHeartbeat is the comment line interval that keeps
	// proxies from closing an idle stream; 0 means 15 s.
	EventsPoll      time.Duration
	EventsHeartbeat time.Duration

	// REST resources: batches, items, images, projects (batches.go,
	// upload.go, items.go, images.go, files.go, projects.go).

	// MaxUploadBytes caps an uploaded input file; 0 means 64 MiB.
	MaxUploadBytes int64
	// UploadDir is where uploads are streamed before they are parsed; ""
	// means os.TempDir(). Each upload's file is removed when its request
	// ends.
	UploadDir string
}
