package server

import (
	"context"
	"database/sql"
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
// goes with everything in it (batches, items, images, and the image files
// no other image uses). 204 when done.
func (s *Server) handleProjectDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ws := caller(r).WorkspaceID
	var keys []string
	err = s.db.Tx(r.Context(), func(tx *sql.Tx) error {
		if _, err := s.db.GetProject(r.Context(), tx, ws, id); err != nil {
			return err
		}
		ids, err := s.db.ProjectBatchIDs(r.Context(), tx, ws, id)
		if err != nil {
			return err
		}
		for _, b := range ids {
			k, err := s.deleteBatchTx(r.Context(), tx, ws, b)
			if err != nil {
				return err
			}
			keys = append(keys, k...)
		}
		return s.db.DeleteProject(r.Context(), tx, ws, id)
	})
	if err != nil {
		return err
	}
	s.deleteBlobs(r.Context(), keys)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteBlobs removes the files of keys that no image uses any more. It
// runs after the rows are gone; a file it fails to remove is logged and
// left behind (an orphan costs disk, never correctness).
func (s *Server) deleteBlobs(ctx context.Context, keys []string) {
	if len(keys) == 0 || s.ext.Blobs == nil {
		return
	}
	// The request may be over; the rows are already deleted, so finish.
	ctx = context.WithoutCancel(ctx)
	gone, err := s.db.UnreferencedBlobKeys(ctx, s.db.Reader(), keys)
	if err != nil {
		s.logger.ErrorContext(ctx, "find unreferenced blobs", "err", err)
		return
	}
	for _, k := range gone {
		if err := s.ext.Blobs.Delete(ctx, k); err != nil {
			s.logger.ErrorContext(ctx, "delete blob", "key", k, "err", err)
		}
	}
}
