package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// health answers the probes of an orchestrator or load balancer.
//
// /livez says the process is alive and serving HTTP. It touches nothing
// else: the bot keeps answering (from retrieval, without dedupe) while
// Redis is down, so a Redis outage must never get it restarted.
//
// /readyz says this replica should get traffic: Redis and the record file
// answer, and it is not draining after SIGTERM. Its checks are cached for
// ttl, so a flood of probes costs one round trip to each per ttl.
type health struct {
	checks  []healthCheck
	ttl     time.Duration
	timeout time.Duration // per check
	log     *slog.Logger
	now     func() time.Time

	draining   atomic.Bool
	deprecated sync.Once // the first /healthz is logged

	mu      sync.Mutex // held during a check, so probes share it
	checked time.Time
	failed  string // name of the first check that failed, "" when all passed
}

// healthCheck is one dependency /readyz asks.
type healthCheck struct {
	name string
	ping func(context.Context) error
}

func newHealth(log *slog.Logger, checks ...healthCheck) *health {
	return &health{checks: checks, ttl: time.Second, timeout: 2 * time.Second, log: log, now: time.Now}
}

// drain makes /readyz answer 503 from now on.
func (h *health) drain() { h.draining.Store(true) }

func (h *health) livez(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, "ok\n")
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if failed := h.ready(r.Context()); failed != "" {
		// A fixed text: the error itself (addresses, SQL) is for the log.
		http.Error(w, failed+" unavailable", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// healthz is the old single endpoint, kept for existing deployments: it
// answers as /readyz, which is what it always meant (200 when Redis
// answers, 503 otherwise). A liveness probe must move to /livez.
func (h *health) healthz(w http.ResponseWriter, r *http.Request) {
	h.deprecated.Do(func() {
		h.log.Warn("GET /healthz is deprecated and answers as /readyz; probe /livez for liveness and /readyz for readiness")
	})
	h.readyz(w, r)
}

// ready returns the name of the first dependency that does not answer, ""
// when all do, checking at most once per ttl.
func (h *health) ready(ctx context.Context) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked.IsZero() && h.now().Sub(h.checked) < h.ttl {
		return h.failed
	}
	// The prober hanging up must not be cached as an outage.
	ctx = context.WithoutCancel(ctx)
	failed := ""
	for _, c := range h.checks {
		cctx, cancel := context.WithTimeout(ctx, h.timeout)
		err := c.ping(cctx)
		cancel()
		if err != nil {
			failed = c.name
			if h.failed != failed {
				h.log.Warn("not ready", "check", c.name, "err", err)
			}
			break
		}
	}
	if failed == "" && h.failed != "" {
		h.log.Info("ready again", "was_failing", h.failed)
	}
	h.checked, h.failed = h.now(), failed
	return failed
}
