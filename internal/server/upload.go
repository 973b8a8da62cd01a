package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	limit := s.maxUpload()
	r.Body = http.MaxBytesReader(w, r.Body, limit+formOverhead)
	mr, err := r.MultipartReader()
	if err != nil {
		return Errorf(http.StatusBadRequest, "invalid_multipart", "cannot read the multipart body: %v", err)
	}

	spec := batchSpec{}
	var (
		tmp      *os.File
		fileName string
		defaults []byte
		plain    = map[string]string{}
	)
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
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
			if tmp != nil {
				return Errorf(http.StatusBadRequest, "invalid_multipart", "send one file part, not several")
			}
			fileName = cleanFileName(part.FileName())
			if tmp, err = os.CreateTemp(s.ext.UploadDir, "bulkgen-upload-*"); err != nil {
				return fmt.Errorf("create upload file: %w", err)
			}
			// One byte over the limit proves the file too big without
			// reading any further.
			n, err := io.Copy(tmp, io.LimitReader(part, limit+1))
			if err != nil {
				return uploadReadError(err, limit)
			}
			if n > limit {
				return fileTooLarge(limit)
			}
			continue
		}
		value, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		if err != nil {
			return uploadReadError(err, limit)
		}
		if len(value) > maxFormField {
			return Errorf(http.StatusRequestEntityTooLarge, "field_too_large", "form field %q is larger than %d bytes", field, maxFormField)
		}
		if field == "defaults" {
			defaults = value
			continue
		}
		if _, dup := plain[field]; dup {
			return Errorf(http.StatusBadRequest, "invalid_multipart", "form field %q is given twice", field)
		}
		plain[field] = string(value)
	}
	if tmp == nil {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_multipart", Message: `the form has no "file" part`,
			Details: map[string]string{"field": "file"}}
	}
	if err := applyForm(&spec, defaults, plain); err != nil {
		return err
	}
	spec.SourceFile = fileName
	if spec.Name == "" {
		spec.Name = fileName
	}
	// The batch service reads the file twice (to check and price it, then
	// to write it): each read starts from the beginning.
	return s.createBatch(w, r, spec, batch.InputFunc(func() (batch.RowSource, error) {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind upload: %w", err)
		}
		return openInput(fileName, tmp, input.Options{})
	}))
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
// then the plain fields.
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
	badField := func(field, want string) error {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_field", Message: fmt.Sprintf("form field %q must be %s", field, want),
			Details: map[string]string{"field": field}}
	}
	d := &spec.Defaults
	for field, v := range plain {
		var err error
		switch field {
		case "name":
			spec.Name = v
		case "template":
			spec.Template = v
		case "name_template":
			spec.NameTemplate = v
		case "project_id":
			if spec.ProjectID, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return badField(field, "a project id")
			}
		case "max_images":
			if spec.MaxImages, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return badField(field, "a whole number")
			}
		case "combinatorial":
			if spec.Combinatorial, err = strconv.ParseBool(strings.TrimSpace(v)); err != nil {
				return badField(field, "true or false")
			}
		case "max_cost":
			if spec.MaxCost, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || spec.MaxCost < 0 {
				return badField(field, "a whole number of credits")
			}
		case "dry_run":
			if spec.DryRun, err = strconv.ParseBool(strings.TrimSpace(v)); err != nil {
				return badField(field, "true or false")
			}
		case "model":
			d.Model = v
		case "size":
			d.Size = v
		case "aspect_ratio":
			d.AspectRatio = v
		case "quality":
			d.Quality = v
		case "format":
			d.Format = v
		case "style":
			d.Style = v
		case "negative_prompt":
			d.NegativePrompt = v
		case "n":
			if d.N, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return badField(field, "a whole number")
			}
		case "seed":
			seed, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return badField(field, "a whole number")
			}
			d.Seed = &seed
		default:
			opt, ok := strings.CutPrefix(field, input.OptPrefix)
			if !ok || strings.TrimSpace(opt) == "" {
				return &Error{Status: http.StatusBadRequest, Code: "unknown_field", Message: fmt.Sprintf("unknown form field %q", field),
					Details: map[string]string{"field": field}}
			}
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			d.Options[strings.TrimSpace(opt)] = v
		}
	}
	return nil
}
