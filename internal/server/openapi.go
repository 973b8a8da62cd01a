package server

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 description of every route in routes.go.
// openapi_test.go keeps the two in step: each registered route must be
// documented and each documented operation registered.
//
//go:embed openapi.json
var openAPIDoc []byte

// handleOpenAPI handles GET /api/v1/openapi.json: the API description, for
// client generators and API explorers. It is public, like any API's
// documentation.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(openAPIDoc)
	return err
}
