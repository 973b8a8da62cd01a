package server

import "net/http"

// handleOpenAIImages handles POST /v1/images/generations.
func (s *Server) handleOpenAIImages(w http.ResponseWriter, r *http.Request) error {
	return Errorf(http.StatusNotImplemented, "not_implemented", "coming")
}

// handleOpenAIModels handles GET /v1/models.
func (s *Server) handleOpenAIModels(w http.ResponseWriter, r *http.Request) error {
	return Errorf(http.StatusNotImplemented, "not_implemented", "coming")
}

// handleOpenAIFile handles GET /v1/files/{signed}.
func (s *Server) handleOpenAIFile(w http.ResponseWriter, r *http.Request) error {
	return Errorf(http.StatusNotImplemented, "not_implemented", "coming")
}

// openAI adapts h for the /v1 routes (stub).
func (s *Server) openAI(h handlerFunc) http.Handler { return s.authenticated(h) }
