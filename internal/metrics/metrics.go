// Package metrics holds bulkgen's Prometheus metrics: HTTP requests by
// route and status, jobs by state and provider, provider latency, images
// generated and provider errors by class. The server records the HTTP side
// and serves /metrics; the image worker records the provider side. It is a
// leaf package so that the worker can import it without importing the
// server.
//
// Every method is safe on a nil *Metrics (it does nothing), so a component
// built without metrics needs no special case.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one set of bulkgen metrics on its own registry. Build it with
// New; share one between the server and the workers of a process.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	providerLatency *prometheus.HistogramVec
	images          *prometheus.CounterVec
	providerErrors  *prometheus.CounterVec

	jobs *jobCollector
}

// New returns a Metrics with every metric registered, plus the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkgen_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulkgen_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (to the end of the body), by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		providerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulkgen_provider_request_duration_seconds",
			Help: "Latency of provider calls, by provider.",
			// Image providers answer in 0.1 s (preview) to several minutes.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300},
		}, []string{"provider"}),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkgen_images_generated_total",
			Help: "Images generated and stored, by provider.",
		}, []string{"provider"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkgen_provider_errors_total",
			Help: "Failed provider calls, by provider and error class (retryable, rejected, invalid, auth).",
		}, []string{"provider", "class"}),
	}
	m.jobs = &jobCollector{desc: prometheus.NewDesc("bulkgen_jobs",
		"Image jobs in the queue, by River state and provider (read from the database on scrape, cached briefly).",
		[]string{"state", "provider"}, nil)}
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.providerLatency, m.images, m.providerErrors, m.jobs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for tests and for adding metrics of other
// components.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveHTTP records one answered request. route is the ServeMux pattern
// that matched ("GET /api/v1/batches/{id}"), never the raw path, so that
// ids do not explode the label set; unmatched requests use "unmatched".
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// ObserveProvider records the latency of one provider call, successful or
// not.
func (m *Metrics) ObserveProvider(provider string, d time.Duration) {
	if m == nil {
		return
	}
	m.providerLatency.WithLabelValues(provider).Observe(d.Seconds())
}

// ImageGenerated counts one image stored for provider.
func (m *Metrics) ImageGenerated(provider string) {
	if m == nil {
		return
	}
	m.images.WithLabelValues(provider).Inc()
}

// ProviderError counts one failed provider call; class is the
// provider.Class string (retryable, rejected, invalid, auth).
func (m *Metrics) ProviderError(provider, class string) {
	if m == nil {
		return
	}
	m.providerErrors.WithLabelValues(provider, class).Inc()
}

// JobCount is the number of jobs in one state for one provider.
type JobCount struct {
	State    string
	Provider string
	Count    int64
}

// JobSource reads the current job counts, normally from the queue tables.
type JobSource func(ctx context.Context) ([]JobCount, error)

// SetJobSource makes the bulkgen_jobs gauge read src on scrape, reusing a
// result for ttl so that frequent scrapes (or several scrapers) cost one
// query per ttl. A failing source leaves the gauge out of that scrape.
func (m *Metrics) SetJobSource(src JobSource, ttl time.Duration) {
	if m == nil {
		return
	}
	m.jobs.mu.Lock()
	defer m.jobs.mu.Unlock()
	m.jobs.src, m.jobs.ttl, m.jobs.at, m.jobs.cached = src, ttl, time.Time{}, nil
}

// jobCollector is the bulkgen_jobs gauge: collected from the database on
// scrape rather than kept up to date by every state change.
type jobCollector struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	src    JobSource
	ttl    time.Duration
	at     time.Time
	cached []JobCount
}

// Describe implements prometheus.Collector.
func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// collectTimeout bounds the database read of one scrape.
const collectTimeout = 5 * time.Second

// Collect implements prometheus.Collector.
func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == nil {
		return
	}
	if c.cached == nil || time.Since(c.at) >= c.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
		counts, err := c.src(ctx)
		cancel()
		if err != nil {
			return
		}
		c.cached, c.at = counts, time.Now()
		if c.cached == nil {
			c.cached = []JobCount{}
		}
	}
	for _, jc := range c.cached {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(jc.Count), jc.State, jc.Provider)
	}
}
