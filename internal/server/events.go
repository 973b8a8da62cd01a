package server

import "net/http"

// handleBatchEvents handles GET /api/v1/batches/{id}/events.
func (s *Server) handleBatchEvents(w http.ResponseWriter, r *http.Request) error {
	return Errorf(http.StatusNotImplemented, "not_implemented", "coming")
}
