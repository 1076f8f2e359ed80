package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// ContentTypeEventStream is the media type of Server-Sent Events.
const ContentTypeEventStream = "text/event-stream"

// handleTaskEvents serves GET /v1/tasks/{id}/events: the task's events as
// Server-Sent Events, those stored so far and then new ones, until the
// task ends, the client goes away or the server shuts down. The SSE id of
// each event is its stream sequence, so a client resumes with
// Last-Event-ID on any instance.
func (s *Server) handleTaskEvents(w http.ResponseWriter, r *http.Request) {
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
	after, p := lastEventID(r.Header.Values("Last-Event-ID"))
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	fields := []zap.Field{zap.String(logging.KeyTenant, tenant), zap.String(logging.KeyTaskID, id)}
	readCtx, cancelRead := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	te, err := s.readEvents(readCtx, tenant, id)
	cancelRead()
	if errors.Is(err, bus.ErrTaskNotFound) {
		writeProblem(w, r, taskNotFound(id))
		return
	}
	if err != nil {
		s.fail(w, r, storeProblem(err, "reading the task's events"), "reading a task's events failed", err, fields...)
		return
	}
	task := events.Fold(te.Events)
	if !task.Exists() {
		writeProblem(w, r, taskNotFound(id))
		return
	}
	fields = logging.Task(tenant, id, task.Type)

	// The stream outlives the server's write timeout.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", ContentTypeEventStream)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}

	sse := &sseWriter{w: w, rc: rc}
	for i := range te.Events {
		if ev := &te.Events[i]; ev.Seq > after {
			if err := sse.event(ev); err != nil {
				s.log.Debug("event stream ended by a failed write", append(fields, zap.Error(err))...)
				return
			}
		}
	}
	if err := sse.flush(); err != nil || task.Terminal() {
		return
	}

	s.followTask(r.Context(), sse, task, max(te.LastSeq, after), fields)
}

// followTask writes the task's events stored after sequence after until
// the task ends, ctx is done or the server starts to shut down, with a
// heartbeat comment whenever Config.Heartbeat passes without an event.
func (s *Server) followTask(ctx context.Context, sse *sseWriter, task *events.Task, after uint64, fields []zap.Field) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()

	watch, err := s.watchTask(ctx, task.Tenant, task.ID, after)
	if err != nil {
		s.log.Warn("following a task's events failed; the client may reconnect", append(fields, zap.Error(err))...)
		return
	}
	defer watch.stop()

	for {
		beatCtx, cancelBeat := context.WithTimeout(ctx, s.cfg.Heartbeat)
		we, err := watch.next(beatCtx)
		cancelBeat()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			if err := sse.heartbeat(); err != nil {
				return
			}
			continue
		case err != nil:
			s.log.Warn("following a task's events failed; the client may reconnect", append(fields, zap.Error(err))...)
			return
		case we.invalid != nil:
			s.log.Debug("skipped an event that does not decode", append(fields, zap.Uint64(logging.KeySeq, we.seq), zap.Error(we.invalid))...)
			continue
		}

		task.Fold(&we.event)
		if err := sse.event(&we.event); err != nil {
			return
		}
		if err := sse.flush(); err != nil || task.Terminal() {
			return
		}
	}
}

// readEvents reads a task's events within ctx. Like readTask, it reports a
// read that outlived ctx or the connection as failed, because the batch
// read then ends early without an error.
func (s *Server) readEvents(ctx context.Context, tenant, id string) (*bus.TaskEvents, error) {
	te, err := s.bus.ReadEvents(ctx, tenant, id, 0)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("read task %s: %w", id, ctxErr)
	}
	if s.bus.Conn().IsClosed() {
		return nil, fmt.Errorf("read task %s: %w", id, nats.ErrConnectionClosed)
	}
	return te, err
}

// lastEventID reads the Last-Event-ID header: the stream sequence of the
// last event the client received, or 0 without the header.
func lastEventID(values []string) (uint64, *Problem) {
	if len(values) == 0 {
		return 0, nil
	}
	invalid := func(detail string) (uint64, *Problem) {
		return 0, newProblem(ProblemInvalidRequest, http.StatusBadRequest, detail)
	}
	if len(values) > 1 {
		return invalid("the request has more than one Last-Event-ID header; send one")
	}
	v := strings.TrimSpace(values[0])
	if v == "" {
		return 0, nil
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return invalid(fmt.Sprintf("Last-Event-ID %q is not an event id of this stream; send the id: of the last event received, a stream sequence such as 42", excerpt(v)))
	}
	return seq, nil
}

// sseWriter writes Server-Sent Events.
type sseWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

// event writes ev with its stream sequence as id and its kind as event
// name. An event that cannot be encoded is skipped rather than ending the
// stream; bus.Decode checks the attributes and the data that encoding
// needs, so none is expected.
func (s *sseWriter) event(ev *events.Event) error {
	body, err := bus.EncodeStructured(ev)
	if err != nil {
		return nil
	}
	_, err = fmt.Fprintf(s.w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Kind, body)
	return err
}

// heartbeat writes a comment line and flushes it.
func (s *sseWriter) heartbeat() error {
	if _, err := io.WriteString(s.w, ": heartbeat\n\n"); err != nil {
		return err
	}
	return s.flush()
}

func (s *sseWriter) flush() error {
	return s.rc.Flush()
}
