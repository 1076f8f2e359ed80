package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
)

// ContentTypeJSON is the media type of task views and other JSON bodies.
const ContentTypeJSON = "application/json"

// unavailableRetryAfter is the Retry-After, in seconds, of a 503 response.
const unavailableRetryAfter = 2

// writeJSON sends v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Views and health bodies always encode; report the bug anyway
		// rather than send half a body.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	// The newline ends the output of a curl command on its own line.
	_, _ = w.Write(append(body, '\n'))
}

// unavailable returns a 503 problem with a Retry-After for the client.
func unavailable(detail string) *Problem {
	p := newProblem(ProblemUnavailable, http.StatusServiceUnavailable, detail)
	p.retryAfter = unavailableRetryAfter
	return p
}

// internal returns a 500 problem. detail states what failed, without the
// error's text, which goes to the log.
func internal(detail string) *Problem {
	return newProblem(ProblemInternal, http.StatusInternalServerError, detail+"; the server logged the error")
}

// storeProblem turns a failed read or append into a problem: 503 when NATS
// did not reply in time or is not connected, which a retry may fix, and
// 500 otherwise. operation names what failed, such as "reading the task".
func storeProblem(err error, operation string) *Problem {
	if isUnavailable(err) {
		return unavailable(operation + " failed because NATS did not reply in time or is not connected; retry later")
	}
	return internal(operation + " failed")
}

func isUnavailable(err error) bool {
	for _, target := range []error{
		context.DeadlineExceeded,
		context.Canceled,
		nats.ErrTimeout,
		nats.ErrNoResponders,
		nats.ErrConnectionClosed,
		nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting,
		nats.ErrDisconnected,
		jetstream.ErrNoStreamResponse,
		jetstream.ErrJetStreamNotEnabled,
		jetstream.ErrStreamNotFound,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// fail logs err with fields and sends p; see [Server.logFailure].
func (s *Server) fail(w http.ResponseWriter, r *http.Request, p *Problem, msg string, err error, fields ...zap.Field) {
	writeProblem(w, r, s.logFailure(p, msg, err, fields...))
}

// logFailure logs err with fields and returns p: at Warn for a 503, which
// a retry may fix, and at Error otherwise.
func (s *Server) logFailure(p *Problem, msg string, err error, fields ...zap.Field) *Problem {
	fields = append(fields, zap.Error(err), zap.Int("status", p.Status))
	if p.Status == http.StatusServiceUnavailable {
		s.log.Warn(msg, fields...)
	} else {
		s.log.Error(msg, fields...)
	}
	return p
}

// readTask reads and folds a task within ctx. The batch read behind
// [bus.Bus.ReadTask] ends without an error when no reply arrives before
// ctx's deadline or when the connection closes, which looks like a task
// without events or with fewer events. A read that outlived ctx or the
// connection is therefore reported as failed, whatever it returned.
//
// With stream replicas a follower that has not applied the newest events
// may serve the read; bus.ReadTask asks the stream leader before it
// reports a task missing, so a read right after a submit finds the task.
func (s *Server) readTask(ctx context.Context, tenant, id string) (*events.Task, error) {
	task, err := s.bus.ReadTask(ctx, tenant, id)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("read task %s: %w", id, ctxErr)
	}
	if s.bus.Conn().IsClosed() {
		return nil, fmt.Errorf("read task %s: %w", id, nats.ErrConnectionClosed)
	}
	return task, err
}

// invalidTaskID returns the 400 problem for a task id in a path that
// breaks the subject grammar. The detail names the id and its fault,
// without the "invalid token" of the grammar's error, which reads like
// an auth token.
func invalidTaskID(err error) *Problem {
	return newProblem(ProblemInvalidTaskID, http.StatusBadRequest, "invalid "+events.TokenFault(err))
}
