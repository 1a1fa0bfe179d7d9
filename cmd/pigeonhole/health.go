package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// health answers the two probes an orchestrator (systemd, Kubernetes, a
// load balancer) asks of a server, on the metrics listener:
//
//   - GET /healthz: 200 while the process runs and serves HTTP at all
//     (liveness: restart it if this fails).
//   - GET /readyz: 200 once the stores are open and the QUIC listener is
//     up, and while every dependency check passes (in cluster mode: the
//     NATS connection is up); 503 with the reasons, one a line, before
//     that, when a check fails, and from the moment shutdown begins, so
//     a load balancer stops sending new clients to a draining relay.
type health struct {
	up atomic.Bool // the listener is up and shutdown has not begun

	mu     sync.Mutex
	checks []healthCheck
}

// healthCheck is one dependency; ok returns nil when it is usable.
type healthCheck struct {
	name string
	ok   func() error
}

// add registers a dependency check for /readyz.
func (h *health) add(name string, ok func() error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = append(h.checks, healthCheck{name, ok})
}

// problems lists why the relay is not ready (none: it is).
func (h *health) problems() []string {
	var out []string
	if !h.up.Load() {
		out = append(out, "listener: not serving (starting or shutting down)")
	}
	h.mu.Lock()
	checks := h.checks
	h.mu.Unlock()
	for _, c := range checks {
		if err := c.ok(); err != nil {
			out = append(out, fmt.Sprintf("%s: %v", c.name, err))
		}
	}
	return out
}

// register adds /healthz and /readyz to mux.
func (h *health) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if p := h.problems(); len(p) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(p, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
}
