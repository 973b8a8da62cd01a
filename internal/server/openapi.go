package server

import "net/http"

// handleOpenAPI handles GET /api/v1/openapi.json.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	return Errorf(http.StatusNotImplemented, "not_implemented", "coming")
}
