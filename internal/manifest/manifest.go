// Package manifest owns the record of one generated image — the line
// written to manifest.csv and manifest.jsonl, embedded as JSON in the image
// file, and returned by the API — and the streaming writers for both
// manifest formats.
package manifest

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Record describes one image of a batch. Its JSON form is the manifest.jsonl
// line and the "bulkgen" metadata embedded in the image.
type Record struct {
	SourceFile     string            `json:"source_file"`
	SourceLine     int               `json:"source_line"`
	Index          int               `json:"index"`
	ImageFile      string            `json:"image_file"`
	Status         string            `json:"status"`
	Error          string            `json:"error,omitempty"`
	ErrorClass     string            `json:"error_class,omitempty"`
	Prompt         string            `json:"prompt"`
	NegativePrompt string            `json:"negative_prompt,omitempty"`
	Model          string            `json:"model"`
	Provider       string            `json:"provider"`
	Width          int               `json:"width"`
	Height         int               `json:"height"`
	AspectRatio    string            `json:"aspect_ratio,omitempty"`
	Quality        string            `json:"quality,omitempty"`
	Style          string            `json:"style,omitempty"`
	Format         string            `json:"format"`
	Seed           int64             `json:"seed"`
	Bytes          int64             `json:"bytes,omitempty"`
	SHA256         string            `json:"sha256,omitempty"`
	Cost           int64             `json:"cost"`
	LatencyMS      int64             `json:"latency_ms,omitempty"`
	Attempts       int               `json:"attempts,omitempty"`
	RequestID      string            `json:"request_id,omitempty"`
	Preview        bool              `json:"preview"`
	StartedAt      *time.Time        `json:"started_at,omitempty"`
	FinishedAt     *time.Time        `json:"finished_at,omitempty"`
	Vars           map[string]string `json:"vars,omitempty"`
}

// Statuses of a record.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
	StatusPending   = "pending"
)

// Columns is the manifest.csv header, in order. The input package reads
// the same names back when a manifest is used as input.
var Columns = []string{
	"source_file", "source_line", "index", "image_file", "status", "error", "error_class",
	"prompt", "negative_prompt", "model", "provider", "width", "height", "aspect_ratio",
	"quality", "style", "format", "seed", "bytes", "sha256", "cost", "latency_ms", "attempts",
	"request_id", "preview", "started_at", "finished_at", "vars",
}

// CSVWriter writes manifest.csv one record at a time.
type CSVWriter struct {
	w    *csv.Writer
	cell []string
}

// NewCSVWriter writes the header and returns the writer.
func NewCSVWriter(w io.Writer) (*CSVWriter, error) {
	cw := &CSVWriter{w: csv.NewWriter(w), cell: make([]string, len(Columns))}
	cw.w.UseCRLF = true // what spreadsheets expect (RFC 4180)
	if err := cw.w.Write(Columns); err != nil {
		return nil, fmt.Errorf("write manifest header: %w", err)
	}
	return cw, nil
}

// Write appends one record.
func (cw *CSVWriter) Write(r *Record) error {
	vars := ""
	if len(r.Vars) > 0 {
		b, err := json.Marshal(r.Vars) // keys come out sorted
		if err != nil {
			return fmt.Errorf("encode vars: %w", err)
		}
		vars = string(b)
	}
	c := cw.cell
	c[0] = r.SourceFile
	c[1] = strconv.Itoa(r.SourceLine)
	c[2] = strconv.Itoa(r.Index)
	c[3] = r.ImageFile
	c[4] = r.Status
	c[5] = r.Error
	c[6] = r.ErrorClass
	c[7] = r.Prompt
	c[8] = r.NegativePrompt
	c[9] = r.Model
	c[10] = r.Provider
	c[11] = strconv.Itoa(r.Width)
	c[12] = strconv.Itoa(r.Height)
	c[13] = r.AspectRatio
	c[14] = r.Quality
	c[15] = r.Style
	c[16] = r.Format
	c[17] = strconv.FormatInt(r.Seed, 10)
	c[18] = strconv.FormatInt(r.Bytes, 10)
	c[19] = r.SHA256
	c[20] = strconv.FormatInt(r.Cost, 10)
	c[21] = strconv.FormatInt(r.LatencyMS, 10)
	c[22] = strconv.Itoa(r.Attempts)
	c[23] = r.RequestID
	c[24] = strconv.FormatBool(r.Preview)
	c[25] = formatTime(r.StartedAt)
	c[26] = formatTime(r.FinishedAt)
	c[27] = vars
	for i := range c {
		c[i] = EscapeCell(c[i])
	}
	return cw.w.Write(c)
}

// Flush writes buffered data and reports any write error.
func (cw *CSVWriter) Flush() error {
	cw.w.Flush()
	return cw.w.Error()
}

// EscapeCell defuses spreadsheet formulas: a cell starting with =, +, -, @
// (or a tab or carriage return, which some spreadsheets strip before
// evaluating) gets a leading apostrophe, the convention spreadsheets treat
// as "text". Plain negative numbers are left alone so seeds and costs stay
// numeric.
func EscapeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '@', '\t', '\r':
		return "'" + s
	case '-':
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return s
		}
		return "'" + s
	}
	return s
}

// JSONLWriter writes manifest.jsonl one record at a time.
type JSONLWriter struct {
	enc *json.Encoder
}

// NewJSONLWriter returns a writer to w.
func NewJSONLWriter(w io.Writer) *JSONLWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSONLWriter{enc: enc}
}

// Write appends one record as one line.
func (jw *JSONLWriter) Write(r *Record) error {
	return jw.enc.Encode(r)
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
