// Package health serves a process's liveness and readiness over HTTP, for
// orchestrators such as Kubernetes. /healthz returns 200 while the process
// serves HTTP at all, and /readyz returns 200 while its NATS connection is
// connected. Services without an HTTP API of their own, the executor and
// the notifier, serve it on a separate listener with [Serve].
package health

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
)

// Paths of the endpoints that [NewMux] registers.
const (
	LivenessPath  = "/healthz"
	ReadinessPath = "/readyz"
)

// Status is the JSON body of both endpoints.
type Status struct {
	// Status is "ok" for liveness, "ready" or "unavailable" for readiness.
	Status string `json:"status"`
	// Detail is the reason the process is unavailable, empty otherwise.
	Detail string `json:"detail,omitempty"`
}

// NewMux returns a mux that serves GET and HEAD of [LivenessPath] and
// [ReadinessPath] for a process that works through nc:
//
//   - /healthz returns 200 whatever the state of NATS, so an orchestrator
//     restarts only a process that no longer serves HTTP. A lost NATS
//     connection reconnects on its own and is no reason to restart.
//   - /readyz returns 200 while nc is connected and 503 otherwise,
//     including while it reconnects, drains or is closed.
//
// Callers may register more handlers on the returned mux, such as
// /metrics, to serve them on the same listener.
func NewMux(nc *nats.Conn) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+LivenessPath, func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, Status{Status: "ok"})
	})
	mux.HandleFunc("GET "+ReadinessPath, func(w http.ResponseWriter, _ *http.Request) {
		if status := nc.Status(); status != nats.CONNECTED {
			writeStatus(w, http.StatusServiceUnavailable, Status{
				Status: "unavailable",
				Detail: fmt.Sprintf("the NATS connection is %s", status),
			})
			return
		}
		writeStatus(w, http.StatusOK, Status{Status: "ready"})
	})
	return mux
}

func writeStatus(w http.ResponseWriter, code int, body Status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
