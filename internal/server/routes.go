package server

// routes registers the whole HTTP surface. Every resource route under
// /api/v1 and /v1 is authenticated and scoped to the caller's workspace:
// a resource of another workspace answers 404, exactly like one that does
// not exist.
func (s *Server) routes() {
	m := s.mux

	// Operations.
	m.Handle("GET /healthz", s.wrap(s.handleHealthz))
	// Operations: readiness and Prometheus metrics (health.go, metrics.go).
	// Unauthenticated, like /healthz, for probes and scrapers.
	m.Handle("GET /readyz", s.wrap(s.handleReadyz))
	m.Handle("GET /metrics", s.metricsHandler())

	// OpenAI-compatible image API (openai.go). It answers OpenAI's error
	// envelope, so its handlers do their own authentication and errors;
	// /v1/files/{signed} is authorised by its signature alone.
	m.Handle("POST /v1/images/generations", s.openAI(s.handleOpenAIImages))
	m.Handle("GET /v1/models", s.openAI(s.handleOpenAIModels))
	m.Handle("GET /v1/files/{signed}", s.wrap(s.handleOpenAIFile))

	// Batch export, live progress and the API description (export.go,
	// events.go, openapi.go).
	m.Handle("GET /api/v1/batches/{id}/export.zip", s.authenticated(s.handleBatchExport))
	m.Handle("GET /api/v1/batches/{id}/events", s.authenticated(s.handleBatchEvents))
	m.Handle("GET /api/v1/openapi.json", s.wrap(s.handleOpenAPI))

	// REST resources: projects, batches, items and images, each behind an
	// API token. The table is resourceRoutes below; authz_test.go walks it.
	for _, rt := range s.resourceRoutes() {
		m.Handle(rt.pattern, s.authenticated(rt.handler))
	}
}

// resourceRoute is one authenticated REST route: a ServeMux pattern and its
// handler.
type resourceRoute struct {
	pattern string
	handler handlerFunc
}

// resourceRoutes lists the REST routes of projects, batches, items,
// images and credits (projects.go, batches.go, upload.go, items.go,
// images.go, files.go, usage.go).
func (s *Server) resourceRoutes() []resourceRoute {
	return []resourceRoute{
		{"POST /api/v1/projects", s.handleProjectCreate},
		{"GET /api/v1/projects", s.handleProjectList},
		{"GET /api/v1/projects/{id}", s.handleProjectGet},
		{"PATCH /api/v1/projects/{id}", s.handleProjectRename},
		{"DELETE /api/v1/projects/{id}", s.handleProjectDelete},

		{"POST /api/v1/batches", s.handleBatchCreate},
		{"GET /api/v1/batches", s.handleBatchList},
		{"GET /api/v1/batches/{id}", s.handleBatchGet},
		{"DELETE /api/v1/batches/{id}", s.handleBatchDelete},
		{"POST /api/v1/batches/{id}/cancel", s.handleBatchCancel},
		{"POST /api/v1/batches/{id}/pause", s.handleBatchPause},
		{"POST /api/v1/batches/{id}/resume", s.handleBatchResume},
		{"POST /api/v1/batches/{id}/retry", s.handleBatchRetry},
		{"GET /api/v1/batches/{id}/items", s.handleItemList},

		{"GET /api/v1/images", s.handleImageList},
		{"GET /api/v1/images/{id}", s.handleImageGet},
		{"GET /api/v1/images/{id}/file", s.handleImageFile},
		{"GET /api/v1/images/{id}/versions", s.handleImageVersions},
		{"POST /api/v1/images/{id}/review", s.handleImageReview},
		{"POST /api/v1/images/{id}/regenerate", s.handleImageRegenerate},
		{"POST /api/v1/images/regenerate", s.handleImagesRegenerate},

		{"GET /api/v1/usage", s.handleUsage},
	}
}
