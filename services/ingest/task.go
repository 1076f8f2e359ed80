package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// handleGetTask serves GET /v1/tasks/{id}: the task folded from its events,
// with the stream sequence of its last event as ETag.
func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := events.ValidateTaskID(id); err != nil {
		writeProblem(w, r, invalidTaskID(err))
		return
	}
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	wait, p := parseWait(r.URL.Query(), s.cfg.MaxWait)
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	task, p := s.getTask(r.Context(), tenant, id)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if wait > 0 {
		seen, known := etagSequence(r.Header.Values("If-None-Match"))
		task = s.awaitChange(r.Context(), task, wait, seen, known)
	}

	etag := taskETag(task)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if !task.Terminal() {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(task, time.Now())))
	}
	if etagMatches(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, s.links.withLink(task, time.Now()))
}

// getTask reads and folds the tenant's task id within
// Config.RequestTimeout. A task without events, or whose events the fold
// all skipped, is a 404 problem.
func (s *Server) getTask(ctx context.Context, tenant, id string) (*events.Task, *Problem) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	task, err := s.readTask(ctx, tenant, id)
	if errors.Is(err, bus.ErrTaskNotFound) {
		return nil, taskNotFound(id)
	}
	if err != nil {
		return nil, s.logFailure(storeProblem(err, "reading the task"), "reading a task failed", err, zap.String(logging.KeyTenant, tenant), zap.String(logging.KeyTaskID, id))
	}
	if !task.Exists() {
		// Events are stored on the task's subjects, but the fold applied
		// none of them, so there is no task to show. Debug, because any
		// client that can read can repeat the request.
		s.log.Debug("task has events but none of them applies", zap.String(logging.KeyTenant, tenant), zap.String(logging.KeyTaskID, id),
			zap.Int("skipped", len(task.Skipped)), zap.Uint64(logging.KeySeq, task.LastSeq))
		return nil, taskNotFound(id)
	}
	return task, nil
}

func taskNotFound(id string) *Problem {
	return newProblem(ProblemNotFound, http.StatusNotFound, fmt.Sprintf("task %s does not exist, or its TTL has passed", id))
}

// taskETag returns the strong entity tag of a task's view: the stream
// sequence of its last event, which changes with every event.
func taskETag(task *events.Task) string {
	return `"` + strconv.FormatUint(task.LastSeq, 10) + `"`
}

// etagMatches reports whether any If-None-Match value lists etag or is "*".
// It compares weakly, as RFC 9110 requires for If-None-Match.
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
