package server

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds each readiness check, so that a hung database makes
// /readyz answer 503 promptly instead of hanging the prober.
const readyTimeout = 2 * time.Second

// handleHealthz handles GET /healthz: the process is up.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleReadyz handles GET /readyz: the database answers a ping and the
// queue's tables answer a query, each within readyTimeout. It answers 503
// with the failing check named (the cause is logged, not shown) so that a
// load balancer stops sending traffic to a node that cannot serve it.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	checks := map[string]string{}
	ok := true
	run := func(name string, check func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := check(ctx); err != nil {
			ok = false
			checks[name] = "unavailable"
			s.logger.WarnContext(r.Context(), "readiness check failed", "check", name,
				"request_id", requestID(r.Context()), "err", err)
			return
		}
		checks[name] = "ok"
	}
	run("database", func(ctx context.Context) error {
		if err := s.db.Writer().PingContext(ctx); err != nil {
			return err
		}
		return s.db.Reader().PingContext(ctx)
	})
	// River keeps its state in the same database, so "the queue is
	// reachable" means its job table exists and answers.
	run("queue", func(ctx context.Context) error {
		return s.db.PingJobTable(ctx, s.db.Reader())
	})
	status, word := http.StatusOK, "ok"
	if !ok {
		status, word = http.StatusServiceUnavailable, "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks})
	return nil
}
