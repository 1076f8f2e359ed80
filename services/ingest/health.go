package ingest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// health is the body of /healthz and /readyz.
type health struct {
	Status string `json:"status"`
}

// handleHealth reports that the process serves HTTP, whatever the state of
// NATS, so an orchestrator restarts only a process that hangs.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, health{Status: "ok"})
}

// handleReady reports whether the server can take requests: the NATS
// connection is up and the streams exist with the settings Handoff needs.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if status := s.bus.Conn().Status(); status != nats.CONNECTED {
		s.log.Warn("not ready: NATS is not connected", zap.Stringer("nats_status", status))
		writeProblem(w, r, unavailable(fmt.Sprintf("the NATS connection is %s", status)))
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.bus.Verify(ctx); err != nil {
		s.log.Warn("not ready: the streams failed verification", zap.Error(err))
		writeProblem(w, r, unavailable(err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, health{Status: "ready"})
}
