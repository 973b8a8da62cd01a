package server

import (
	"errors"
	"mime"
	"net/http"
	"path"

	"bulkgen/internal/blob"
	"bulkgen/internal/generate"
)

// imageContentType maps an image format onto its media type.
func imageContentType(format string) string {
	switch format {
	case "png":
		return "image/png"
	case "jpeg", "jpg":
		return "image/jpeg"
	case "webp":
		return "image/webp"
	}
	return "application/octet-stream"
}

// handleImageFile handles GET /api/v1/images/{id}/file: the image bytes
// with their media type, the SHA-256 as a strong ETag (If-None-Match gives
// 304), and byte ranges, all through http.ServeContent over the blob.
func (s *Server) handleImageFile(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ctx := r.Context()
	ws := caller(r).WorkspaceID
	im, err := s.db.GetImage(ctx, s.db.Reader(), ws, id)
	if err != nil {
		return err
	}
	if s.ext.Blobs == nil {
		return Errorf(http.StatusServiceUnavailable, "unavailable", "this server has no image storage configured")
	}
	obj, err := s.ext.Blobs.Open(ctx, im.BlobKey)
	if errors.Is(err, blob.ErrNotFound) {
		return Errorf(http.StatusNotFound, "file_missing", "the file of image %d is missing from storage", id)
	}
	if err != nil {
		return err
	}
	defer obj.Close()

	name := "image-" + itoa(im.ID)
	if it, err := s.db.GetItem(ctx, s.db.Reader(), ws, im.ItemID); err == nil {
		name = path.Base(it.Name)
	}
	h := w.Header()
	h.Set("Content-Type", imageContentType(im.Format))
	h.Set("X-Content-Type-Options", "nosniff")
	// Content-addressed: the bytes behind this URL never change.
	h.Set("ETag", `"`+im.SHA256+`"`)
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": name + generate.Extension(im.Format)}))
	http.ServeContent(w, r, "", obj.ModTime(), obj)
	return nil
}
