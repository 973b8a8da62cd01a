package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"bulkgen/internal/batch"
	"bulkgen/internal/input"
)

// Upload limits.
const (
	// defaultMaxUpload is Extra.MaxUploadBytes's default.
	defaultMaxUpload = 64 << 20
	// maxFormField bounds one non-file form field (a template, defaults).
	maxFormField = 64 << 10
	// formOverhead is what the form fields and part headers may add to the
	// body on top of the file.
	formOverhead = 1 << 20
	// maxFileName bounds the kept name of an uploaded file.
	maxFileName = 255
)

func (s *Server) maxUpload() int64 {
	if s.ext.MaxUploadBytes > 0 {
		return s.ext.MaxUploadBytes
	}
	return defaultMaxUpload
}

// handleBatchUpload is POST /api/v1/batches with a multipart/form-data
// body: a "file" part (CSV, TXT or JSONL, told apart by its name and
// content) streamed to a temporary file under the size limit, and form
// fields mirroring the JSON request: name, project_id, template,
// name_template, combinatorial, max_images, max_cost, dry_run, a "defaults" JSON
// object, and the plain defaults model, size, aspect_ratio, quality,
// format, style, negative_prompt, n, seed and opt.<name> (which win over
// the same fields in "defaults").
func (s *Server) handleBatchUpload(w http.ResponseWriter, r *http.Request) error {
	form := &uploadForm{plain: map[string]string{}}
	defer form.remove()
	if err := s.readUpload(w, r, form); err != nil {
		return err
	}
	spec := batchSpec{}
	if err := applyForm(&spec, form.defaults, form.plain); err != nil {
		return err
	}
	spec.SourceFile = form.fileName
	if spec.Name == "" {
		spec.Name = form.fileName
	}
	// The batch service reads the file twice (to check and price it, then
	// to write it): each read starts from the beginning.
	return s.createBatch(w, r, spec, batch.InputFunc(func() (batch.RowSource, error) {
		if _, err := form.file.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind upload: %w", err)
		}
		return openInput(form.fileName, form.file, input.Options{})
	}))
}

// uploadForm is a batch upload as read: the file, spooled to a temporary
// file, and the other form fields.
type uploadForm struct {
	file     *os.File
	fileName string
	defaults []byte            // the "defaults" JSON object, if given
	plain    map[string]string // every other field
}

// remove deletes the spooled file.
func (f *uploadForm) remove() {
	if f.file != nil {
		_ = f.file.Close()
		_ = os.Remove(f.file.Name())
	}
}

// readUpload reads r's multipart body into form: one "file" part streamed
// to a temporary file under the upload limit, each other field up to
// maxFormField bytes, none twice.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request, form *uploadForm) error {
	limit := s.maxUpload()
	r.Body = http.MaxBytesReader(w, r.Body, limit+formOverhead)
	mr, err := r.MultipartReader()
	if err != nil {
		return Errorf(http.StatusBadRequest, "invalid_multipart", "cannot read the multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return uploadReadError(err, limit)
		}
		field := part.FormName()
		if field == "file" {
			if err := s.spool(form, part, limit); err != nil {
				return err
			}
			continue
		}
		value, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		switch {
		case err != nil:
			return uploadReadError(err, limit)
		case len(value) > maxFormField:
			return Errorf(http.StatusRequestEntityTooLarge, "field_too_large", "form field %q is larger than %d bytes", field, maxFormField)
		case field == "defaults":
			form.defaults = value
			continue
		}
		if _, dup := form.plain[field]; dup {
			return Errorf(http.StatusBadRequest, "invalid_multipart", "form field %q is given twice", field)
		}
		form.plain[field] = string(value)
	}
	if form.file == nil {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_multipart", Message: `the form has no "file" part`,
			Details: map[string]string{"field": "file"}}
	}
	return nil
}

// spool streams the file part to a temporary file in the upload folder.
func (s *Server) spool(form *uploadForm, part *multipart.Part, limit int64) error {
	if form.file != nil {
		return Errorf(http.StatusBadRequest, "invalid_multipart", "send one file part, not several")
	}
	form.fileName = cleanFileName(part.FileName())
	var err error
	if form.file, err = os.CreateTemp(s.ext.UploadDir, "bulkgen-upload-*"); err != nil {
		return fmt.Errorf("create upload file: %w", err)
	}
	// One byte over the limit proves the file too big without reading any
	// further.
	n, err := io.Copy(form.file, io.LimitReader(part, limit+1))
	if err != nil {
		return uploadReadError(err, limit)
	}
	if n > limit {
		return fileTooLarge(limit)
	}
	return nil
}

// uploadReadError classifies a failure to read the request body: over the
// body limit is a 413, anything else (a client that went away, a broken
// multipart encoding) a 400.
func uploadReadError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fileTooLarge(limit)
	}
	return Errorf(http.StatusBadRequest, "invalid_multipart", "cannot read the upload: %v", err)
}

func fileTooLarge(limit int64) error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "file_too_large",
		Message: fmt.Sprintf("the upload is larger than the limit of %d bytes; split the input", limit),
		Details: map[string]int64{"limit": limit}}
}

// cleanFileName keeps the last path element of an uploaded file's name,
// which only names the batch's source and picks the parser by extension.
func cleanFileName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if len(name) > maxFileName {
		name = name[len(name)-maxFileName:]
	}
	if name == "" || name == "." || name == "/" {
		return "upload"
	}
	return name
}

// applyForm fills spec from the form: the "defaults" JSON object first,
// then the plain fields (formFields, or opt.<name> for a provider option).
func applyForm(spec *batchSpec, defaults []byte, plain map[string]string) error {
	if len(bytes.TrimSpace(defaults)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(defaults))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec.Defaults); err != nil {
			var e *Error
			if errors.As(jsonError(err), &e) {
				return &Error{Status: e.Status, Code: e.Code, Message: "form field defaults: " + e.Message, Details: e.Details}
			}
			return jsonError(err)
		}
	}
	for field, v := range plain {
		if set, ok := formFields[field]; ok {
			if want := set(spec, v); want != "" {
				return &Error{Status: http.StatusBadRequest, Code: "invalid_field", Message: fmt.Sprintf("form field %q must be %s", field, want),
					Details: map[string]string{"field": field}}
			}
			continue
		}
		opt, ok := strings.CutPrefix(field, input.OptPrefix)
		if !ok || strings.TrimSpace(opt) == "" {
			return &Error{Status: http.StatusBadRequest, Code: "unknown_field", Message: fmt.Sprintf("unknown form field %q", field),
				Details: map[string]string{"field": field}}
		}
		if spec.Defaults.Options == nil {
			spec.Defaults.Options = map[string]string{}
		}
		spec.Defaults.Options[strings.TrimSpace(opt)] = v
	}
	return nil
}

// formFields set a batch from the upload form's plain fields, named as in
// the JSON request (the defaults without their "defaults." prefix). Each
// returns what the value should have been, or "" when it is fine.
var formFields = map[string]func(spec *batchSpec, v string) string{
	"name":            text(func(s *batchSpec) *string { return &s.Name }),
	"template":        text(func(s *batchSpec) *string { return &s.Template }),
	"name_template":   text(func(s *batchSpec) *string { return &s.NameTemplate }),
	"model":           text(func(s *batchSpec) *string { return &s.Defaults.Model }),
	"size":            text(func(s *batchSpec) *string { return &s.Defaults.Size }),
	"aspect_ratio":    text(func(s *batchSpec) *string { return &s.Defaults.AspectRatio }),
	"quality":         text(func(s *batchSpec) *string { return &s.Defaults.Quality }),
	"format":          text(func(s *batchSpec) *string { return &s.Defaults.Format }),
	"style":           text(func(s *batchSpec) *string { return &s.Defaults.Style }),
	"negative_prompt": text(func(s *batchSpec) *string { return &s.Defaults.NegativePrompt }),
	"project_id": func(s *batchSpec, v string) string {
		return parsed(v, &s.ProjectID, "a project id", func(n int64) bool { return true })
	},
	"max_cost": func(s *batchSpec, v string) string {
		return parsed(v, &s.MaxCost, "a whole number of credits", func(n int64) bool { return n >= 0 })
	},
	"max_images": func(s *batchSpec, v string) string { return whole(v, &s.MaxImages) },
	"n":          func(s *batchSpec, v string) string { return whole(v, &s.Defaults.N) },
	"seed": func(s *batchSpec, v string) string {
		var seed int64
		if want := parsed(v, &seed, "a whole number", func(int64) bool { return true }); want != "" {
			return want
		}
		s.Defaults.Seed = &seed
		return ""
	},
	"combinatorial": func(s *batchSpec, v string) string { return boolean(v, &s.Combinatorial) },
	"dry_run":       func(s *batchSpec, v string) string { return boolean(v, &s.DryRun) },
}

func text(field func(*batchSpec) *string) func(*batchSpec, string) string {
	return func(s *batchSpec, v string) string { *field(s) = v; return "" }
}

func parsed(v string, dst *int64, want string, ok func(int64) bool) string {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || !ok(n) {
		return want
	}
	*dst = n
	return ""
}

func whole(v string, dst *int) string {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return "a whole number"
	}
	*dst = n
	return ""
}

func boolean(v string, dst *bool) string {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return "true or false"
	}
	*dst = b
	return ""
}
