package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"bulkgen/internal/metrics"
)

// jobsCacheTTL is how long one reading of the job counts serves scrapes.
const jobsCacheTTL = 5 * time.Second

// metricsHandler serves GET /metrics, creating the server's Metrics when the
// wiring gave none and making the jobs gauge read the queue table.
func (s *Server) metricsHandler() http.Handler {
	if s.ext.Metrics == nil {
		s.ext.Metrics = metrics.New()
	}
	s.ext.Metrics.SetJobSource(s.jobCounts, jobsCacheTTL)
	return s.ext.Metrics.Handler()
}

// jobCounts reads River's jobs by state and provider (the queue name
// without its "provider_" prefix; see batch.QueueFor).
func (s *Server) jobCounts(ctx context.Context) ([]metrics.JobCount, error) {
	counts, err := s.db.CountJobs(ctx, s.db.Reader())
	if err != nil {
		return nil, err
	}
	var out []metrics.JobCount
	for _, c := range counts {
		out = append(out, metrics.JobCount{State: string(c.State), Provider: strings.TrimPrefix(c.Queue, "provider_"), Count: c.Count})
	}
	return out, nil
}

// statusRecorder remembers the status a handler answered with, for the
// HTTP metrics. It passes Flush (SSE), ReadFrom (sendfile for image files)
// and Unwrap (http.ResponseController) through.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy onto the response on the underlying writer's fast
// path.
func (w *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, src)
}

// Flush implements http.Flusher for handlers that assert it.
func (w *statusRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe records one request in the HTTP metrics once it is answered. r
// must be the request the mux served, which carries the matched Pattern.
func (s *Server) observe(w *statusRecorder, r *http.Request, start time.Time) {
	status := w.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	s.ext.Metrics.ObserveHTTP(r.Pattern, r.Method, status, time.Since(start))
}
