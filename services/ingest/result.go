package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// Limits of downloads through signed links.
const (
	// downloadStall bounds the time one chunk of a download may take to
	// be written to the client, so a stalled client cannot hold the
	// stream open. Each chunk that is written starts a new period.
	downloadStall = time.Minute

	// downloadMinTime and downloadMinRate bound a whole download: a client
	// gets downloadMinTime plus the time to read the result at
	// downloadMinRate bytes per second.
	downloadMinTime = time.Minute
	downloadMinRate = 64 << 10

	// downloadChunk is the size of the writes of a download.
	downloadChunk = 128 << 10
)

// ProblemInvalidLink is the problem type of a signed link to a result
// that was changed, was not signed with this API's key, or has expired.
const ProblemInvalidLink ProblemType = "urn:handoff:problem:invalid-link"

// handleGetResult serves GET /v1/tasks/{id}/result: the inline result of a
// succeeded task as JSON, or a 303 See Other to a fresh signed link to a
// stored one. A task that has not succeeded is a 409 that names its status.
func (s *Server) handleGetResult(w http.ResponseWriter, r *http.Request) {
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

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	task, err := s.readTask(ctx, tenant, id)
	if errors.Is(err, bus.ErrTaskNotFound) || err == nil && !task.Exists() {
		writeProblem(w, r, taskNotFound(id))
		return
	}
	if err != nil {
		s.fail(w, r, storeProblem(err, "reading the task"), "reading a task failed", err, zap.String(logging.KeyTenant, tenant), zap.String(logging.KeyTaskID, id))
		return
	}

	now := time.Now()
	if task.Status != events.StatusSucceeded {
		p := newProblem(ProblemInvalidState, http.StatusConflict, resultConflictDetail(task))
		p.TaskStatus = task.Status
		if !task.Terminal() {
			p.retryAfter = retryAfterSeconds(task, now)
		}
		writeProblem(w, r, p)
		return
	}

	h := w.Header()
	if task.ResultRef != nil {
		link, _ := s.links.link(task.ResultRef.Object, now)
		h.Set("Location", link)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusSeeOther)
		return
	}

	sum := sha256.Sum256(task.Result)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if etagMatches(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(task.Result)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(task.Result)
}

// resultConflictDetail returns the problem detail that explains why a task
// has no result to return.
func resultConflictDetail(task *events.Task) string {
	if task.Terminal() {
		return fmt.Sprintf("task %s ended as %s, so it has no result; its view has the error", task.ID, task.Status)
	}
	return fmt.Sprintf("task %s is %s and has no result yet; retry after the Retry-After seconds or watch the task", task.ID, task.Status)
}

// handleResultLink serves GET /v1/results/{object}, the signed link to a
// stored result. It needs no credentials, because the signature binds the
// link to one tenant's result. It streams the result with its media type,
// size, SHA-256 digest as ETag and Repr-Digest, and one byte range on
// request. A link that was changed or has expired is a 403. A link whose
// task has expired or no longer refers to the result is a 404.
func (s *Server) handleResultLink(w http.ResponseWriter, r *http.Request) {
	object := r.PathValue("object")
	query := r.URL.Query()
	now := time.Now()
	if err := s.links.check(object, query.Get("expires"), query.Get("sig"), now); err != nil {
		// Debug, because any client can repeat the request.
		s.log.Debug("rejected a result link", zap.String("object", object), zap.Error(err))
		writeProblem(w, r, invalidLink(err.Error()+"; get a fresh link from GET /v1/tasks/{id}/result"))
		return
	}
	expires, _ := strconv.ParseInt(query.Get("expires"), 10, 64)
	ref, p := s.linkedResult(r, object)
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	etag := `"` + ref.SHA256 + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, max-age="+strconv.FormatInt(max(expires-now.Unix(), 0), 10))
	h.Set("Accept-Ranges", "bytes")
	if digest, err := hex.DecodeString(ref.SHA256); err == nil {
		b64 := base64.StdEncoding.EncodeToString(digest)
		h.Set("Repr-Digest", "sha-256=:"+b64+":")
		h.Set("Digest", "sha-256="+b64)
	}
	if etagMatches(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}

	// The result is the handler's output, so a browser must neither run
	// it on the API's origin nor guess another type than the stored one.
	h.Set("Content-Type", ref.MediaType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(object, ".", "-")+`"`)

	start, length, status := int64(0), ref.Size, http.StatusOK
	if rng := r.Header.Get("Range"); rng != "" && ifRangeMatches(r.Header.Get("If-Range"), etag) {
		first, n, ok, satisfiable := parseByteRange(rng, ref.Size)
		switch {
		case ok && !satisfiable:
			p := newProblem(ProblemInvalidRequest, http.StatusRequestedRangeNotSatisfiable,
				fmt.Sprintf("the range %q lies outside the result of %d bytes", rng, ref.Size))
			dropResultHeaders(h)
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(ref.Size, 10))
			writeProblem(w, r, p)
			return
		case ok:
			start, length, status = first, n, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, ref.Size))
		}
	}
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(length, 10))
		w.WriteHeader(status)
		return
	}
	s.streamResult(w, r, ref, start, length, status)
}

// linkedResult returns the reference of the result object that a valid
// link names, from the task's events, or the problem to respond with.
func (s *Server) linkedResult(r *http.Request, object string) (*events.ResultRef, *Problem) {
	gone := newProblem(ProblemNotFound, http.StatusNotFound,
		"the result of this link no longer exists: its task's TTL has passed, or the task no longer refers to it")
	obj, err := bus.ParseResultObject(object)
	if err != nil {
		// Only a link signed with this API's key gets here.
		s.log.Warn("a validly signed result link names an invalid object", zap.String("object", object), zap.Error(err))
		return nil, gone
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	task, err := s.readTask(ctx, obj.Tenant, obj.TaskID)
	if errors.Is(err, bus.ErrTaskNotFound) {
		return nil, gone
	}
	if err != nil {
		s.log.Warn("reading the task of a result link failed", zap.String(logging.KeyTenant, obj.Tenant), zap.String(logging.KeyTaskID, obj.TaskID), zap.Error(err))
		return nil, storeProblem(err, "reading the result's task")
	}
	if task.ResultRef == nil || task.ResultRef.Object != object {
		return nil, gone
	}
	return task.ResultRef, nil
}

// streamResult writes length bytes of the stored result ref from start
// with status. The other headers of the result are set. A failure before
// the status was sent is a problem without them. A failure after it
// aborts the response, so the client sees a cut body instead of a body
// that looks whole.
func (s *Server) streamResult(w http.ResponseWriter, r *http.Request, ref *events.ResultRef, start, length int64, status int) {
	fields := func(err error) []zap.Field {
		return []zap.Field{zap.String("object", ref.Object), zap.Int64("offset", start), zap.Error(err)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), downloadMinTime+time.Duration(ref.Size/downloadMinRate)*time.Second)
	defer cancel()
	body, err := s.bus.OpenResult(ctx, ref.Object)
	if errors.Is(err, bus.ErrResultNotFound) {
		s.log.Warn("a succeeded task refers to a result missing from the results bucket", fields(err)...)
		dropResultHeaders(w.Header())
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound, "the stored result is missing from the results bucket; the server logged it"))
		return
	}
	if err != nil {
		dropResultHeaders(w.Header())
		s.fail(w, r, storeProblem(err, "opening the stored result"), "opening a stored result failed", err, fields(nil)...)
		return
	}
	defer body.Close()
	if _, err := io.CopyN(io.Discard, body, start); err != nil {
		dropResultHeaders(w.Header())
		s.fail(w, r, storeProblem(err, "reading the stored result"), "skipping to a range of a stored result failed", err, fields(nil)...)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))

	// A whole result is checked against the SHA-256 of its succeeded
	// event while it is sent. The last chunk is held back until the check
	// passed, so that a client never receives a whole body that differs.
	digest := sha256.New()
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	send := func(chunk []byte) bool {
		// Not every ResponseWriter supports deadlines, and then the
		// server's write timeout applies.
		_ = rc.SetWriteDeadline(time.Now().Add(downloadStall))
		if _, err := w.Write(chunk); err != nil {
			s.log.Debug("client stopped reading a result", fields(err)...)
			return false
		}
		return true
	}
	bufs := [2][]byte{make([]byte, downloadChunk), make([]byte, downloadChunk)}
	var held []byte
	for remaining, i := length, 0; remaining > 0; i = 1 - i {
		chunk := bufs[i][:min(int64(downloadChunk), remaining)]
		n, err := io.ReadFull(body, chunk)
		if err != nil {
			if r.Context().Err() != nil {
				s.log.Debug("client went away during a result download", fields(err)...)
				return
			}
			s.log.Warn("reading a stored result failed during its download; aborting the response", fields(err)...)
			panic(http.ErrAbortHandler)
		}
		digest.Write(chunk[:n])
		if held != nil && !send(held) {
			return
		}
		held = chunk[:n]
		remaining -= int64(n)
	}
	if status == http.StatusOK && hex.EncodeToString(digest.Sum(nil)) != ref.SHA256 {
		s.log.Error("a stored result does not match the SHA-256 of its succeeded event; aborting the response", fields(nil)...)
		panic(http.ErrAbortHandler)
	}
	if held != nil {
		send(held)
	}
}

// dropResultHeaders removes the headers that describe a result, before
// a problem is sent in its place.
func dropResultHeaders(h http.Header) {
	for _, name := range []string{"ETag", "Accept-Ranges", "Repr-Digest", "Digest", "Content-Range", "Content-Disposition", "Content-Security-Policy", "X-Content-Type-Options"} {
		h.Del(name)
	}
}

// invalidLink returns the 403 problem of a signed link that does not pass
// the check.
func invalidLink(detail string) *Problem {
	return newProblem(ProblemInvalidLink, http.StatusForbidden, detail)
}

// ifRangeMatches reports whether a Range request may be served as one: no
// If-Range, or an If-Range equal to the strong etag.
func ifRangeMatches(ifRange, etag string) bool {
	return ifRange == "" || ifRange == etag
}

// parseByteRange parses a Range header of one byte range against a
// representation of size bytes. ok is false when the header is not one
// range in bytes, which the caller ignores as RFC 9110 allows, and the
// whole result is sent. satisfiable is false when the range starts at or
// after the end. Otherwise the range is first and n bytes from it.
func parseByteRange(header string, size int64) (first, n int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	from, to, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}

	if from == "" {
		// A suffix range: the last <to> bytes.
		suffix, err := strconv.ParseInt(to, 10, 64)
		if err != nil || suffix < 0 || strings.HasPrefix(to, "+") {
			return 0, 0, false, false
		}
		if suffix == 0 || size == 0 {
			return 0, 0, true, false
		}
		suffix = min(suffix, size)
		return size - suffix, suffix, true, true
	}

	start, err := strconv.ParseInt(from, 10, 64)
	if err != nil || start < 0 || strings.HasPrefix(from, "+") {
		return 0, 0, false, false
	}
	last := size - 1
	if to != "" {
		end, err := strconv.ParseInt(to, 10, 64)
		if err != nil || end < start || strings.HasPrefix(to, "+") {
			return 0, 0, false, false
		}
		last = min(end, size-1)
	}
	if start >= size {
		return 0, 0, true, false
	}
	return start, last - start + 1, true, true
}
