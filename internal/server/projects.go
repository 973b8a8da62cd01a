package server

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"bulkgen/internal/store"
)

// maxProjectName bounds a project name in characters.
const maxProjectName = 200

// projectJSON is a project as the API shows it.
type projectJSON struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func toProjectJSON(p store.Project) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}
}

// projectRequest is the body of project create and rename.
type projectRequest struct {
	Name string `json:"name"`
}

// projectName checks and trims a project name.
func projectName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Message: "name must not be empty",
			Details: map[string]string{"field": "name"}}
	case utf8.RuneCountInString(name) > maxProjectName:
		return "", &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field",
			Message: "name must be at most 200 characters", Details: map[string]string{"field": "name"}}
	case strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return "", &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field",
			Message: "name must not contain control characters", Details: map[string]string{"field": "name"}}
	}
	return name, nil
}

// handleProjectCreate handles POST /api/v1/projects: {"name"} → 201 with
// the project; a name the workspace already uses is a 409.
func (s *Server) handleProjectCreate(w http.ResponseWriter, r *http.Request) error {
	var req projectRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	name, err := projectName(req.Name)
	if err != nil {
		return err
	}
	p, err := s.db.CreateProject(r.Context(), s.db.Writer(), store.Project{WorkspaceID: caller(r).WorkspaceID, Name: name})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/projects/"+itoa(p.ID))
	writeJSON(w, http.StatusCreated, toProjectJSON(p))
	return nil
}

// handleProjectList handles GET /api/v1/projects?after=&limit=: the
// workspace's projects, oldest first.
func (s *Server) handleProjectList(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	ps, err := s.db.ListProjects(r.Context(), s.db.Reader(), caller(r).WorkspaceID, after, limit+1)
	if err != nil {
		return err
	}
	writePage(w, ps, limit, toProjectJSON, func(p store.Project) int64 { return p.ID })
	return nil
}

// handleProjectGet handles GET /api/v1/projects/{id}.
func (s *Server) handleProjectGet(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	p, err := s.db.GetProject(r.Context(), s.db.Reader(), caller(r).WorkspaceID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toProjectJSON(p))
	return nil
}

// handleProjectRename handles PATCH /api/v1/projects/{id}: {"name"}.
func (s *Server) handleProjectRename(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req projectRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	name, err := projectName(req.Name)
	if err != nil {
		return err
	}
	p, err := s.db.RenameProject(r.Context(), s.db.Writer(), caller(r).WorkspaceID, id, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toProjectJSON(p))
	return nil
}

// handleProjectDelete handles DELETE /api/v1/projects/{id}: the project
// goes with everything in it (batches, items, images; the image files no
// other image uses go with the blob sweeper). 204 when done.
func (s *Server) handleProjectDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	svc, err := s.batches()
	if err != nil {
		return err
	}
	if err := svc.DeleteProject(r.Context(), caller(r).WorkspaceID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
