package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// mediaTypeJSON is the media type of stored JSON results.
const mediaTypeJSON = "application/json"

// errStageClosed ends a pipe stage whose function returned without an
// error before its input ended.
var errStageClosed = errors.New("stage stopped reading")

// storedResult is a result that a handler has already stored in the
// results bucket. The succeeded event carries its reference.
type storedResult struct {
	ref events.ResultRef
}

// resultSink receives a result as a stream, such as an exec program's
// stdout. It keeps up to inlineLimit bytes in memory. Once more arrive, or
// from the first byte for binary output, it uploads the result to the
// results bucket while it arrives. So a result of up to maxBytes needs
// about one 128 KiB chunk of memory beyond the inline limit. A JSON result
// is checked while it streams. os/exec writes to the sink from one
// goroutine, and finish is called after the writes ended.
type resultSink struct {
	ctx    context.Context
	bus    *bus.Bus
	object bus.ResultObject
	// mediaType is the media type of binary output, or "" for JSON.
	mediaType   string
	inlineLimit int
	maxBytes    int64

	buf      bytes.Buffer
	received int64
	// overflow is set once more than maxBytes arrived. Later bytes are
	// dropped.
	overflow bool
	// upload and check run once the result goes to the bucket. check is
	// nil for binary output.
	upload *pipeStage
	check  *pipeStage
	ref    events.ResultRef
}

func (s *resultSink) Write(p []byte) (int, error) {
	n := len(p)
	s.received += int64(n)
	switch {
	case s.overflow:
	case s.received > s.maxBytes:
		s.overflow = true
		s.abort(fmt.Errorf("result is longer than %d bytes", s.maxBytes))
	case s.upload != nil:
		s.stream(p)
	case s.mediaType != "" || s.buf.Len()+n > s.inlineLimit:
		s.startUpload()
		s.stream(s.buf.Bytes())
		s.buf = bytes.Buffer{}
		s.stream(p)
	default:
		s.buf.Write(p)
	}
	// Write returns no error, so the program never sees a broken stdout.
	// A slow upload slows its writes down instead.
	return n, nil
}

// startUpload starts the upload to the bucket and, for JSON, the check.
func (s *resultSink) startUpload() {
	mediaType := s.mediaType
	if mediaType == "" {
		mediaType = mediaTypeJSON
		s.check = startStage(checkJSONStream)
	}
	s.upload = startStage(func(r io.Reader) error {
		ref, err := s.bus.PutResult(s.ctx, s.object, mediaType, r)
		s.ref = ref
		return err
	})
}

// stream passes p to the running stages. A check that found invalid JSON
// has stopped reading, and then the upload is aborted too.
func (s *resultSink) stream(p []byte) {
	if len(p) == 0 {
		return
	}
	if s.check != nil && !s.check.write(p) {
		s.upload.close(errInvalidJSON)
		return
	}
	s.upload.write(p)
}

// abort stops the stages with err, so nothing is stored.
func (s *resultSink) abort(err error) {
	if s.check != nil {
		s.check.close(err)
	}
	if s.upload != nil {
		s.upload.close(err)
	}
}

// empty reports whether the result has no bytes but white space, so that
// it is JSON null or an empty binary result.
func (s *resultSink) empty() bool {
	return s.upload == nil && len(bytes.TrimSpace(s.buf.Bytes())) == 0
}

// errInvalidJSON aborts the upload of a JSON result that is not valid.
var errInvalidJSON = errors.New("result is not valid JSON")

// finish ends the result after the program exited and returns it: inline
// JSON as json.RawMessage, or a *storedResult. A program that failed
// stores nothing, so it gets nil and its own error counts.
func (s *resultSink) finish(exitedOK bool) (any, error) {
	if !exitedOK || s.overflow {
		s.abort(errors.New("the program failed"))
		if s.overflow {
			return nil, failure(events.CodeResultTooLarge, true, fmt.Errorf("stdout is %d bytes, longer than the max_result_bytes of %d", s.received, s.maxBytes))
		}
		return nil, nil
	}

	if s.upload == nil && s.mediaType == "" {
		return inlineJSON(s.buf.Bytes())
	}
	if s.upload == nil {
		// Binary output that was empty is stored as an empty object.
		s.startUpload()
	}
	if s.check != nil {
		if err := s.check.close(nil); err != nil {
			s.upload.close(err)
			return nil, failure(events.CodeInvalidOutput, true, fmt.Errorf("stdout is not JSON: %w", err))
		}
	}
	if err := s.upload.close(nil); err != nil {
		return nil, failure(events.CodeResultNotStored, false, fmt.Errorf("store the result of %d bytes: %w", s.received, err))
	}
	return &storedResult{ref: s.ref}, nil
}

// inlineJSON returns stdout that fits the inline limit as the result:
// JSON with the surrounding white space removed, null when empty.
func inlineJSON(out []byte) (any, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(out) {
		return nil, failure(events.CodeInvalidOutput, true, fmt.Errorf("stdout is not JSON; it starts with %s", excerpt(out, 120)))
	}
	return json.RawMessage(out), nil
}

// checkJSONStream reads r to its end and returns an error unless it holds
// exactly one JSON value. It keeps no more than one token in memory.
func checkJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	// Numbers stay text, so that valid JSON such as 1e400, which does not
	// fit a float64, is not an error.
	dec.UseNumber()
	values, depth := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if values > 0 && depth == 0 {
			return errors.New("more than one JSON value")
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			values++
		}
	}
	if values == 0 {
		return errors.New("no JSON value, only white space")
	}
	return nil
}

// pipeStage runs a function on the bytes written to it, in a goroutine,
// while they are written.
type pipeStage struct {
	w    *io.PipeWriter
	done chan struct{}
	err  error
}

// startStage starts run on a pipe. When run returns, later writes fail
// instead of blocking.
func startStage(run func(io.Reader) error) *pipeStage {
	r, w := io.Pipe()
	p := &pipeStage{w: w, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = run(r)
		if p.err != nil {
			r.CloseWithError(p.err)
		} else {
			r.CloseWithError(errStageClosed)
		}
	}()
	return p
}

// write passes b to the stage and reports whether it took all of it.
func (p *pipeStage) write(b []byte) bool {
	_, err := p.w.Write(b)
	return err == nil
}

// close ends the stage's input, with err or, when err is nil, with EOF.
// It waits for the stage and returns its error. It is safe to call more
// than once.
func (p *pipeStage) close(err error) error {
	_ = p.w.CloseWithError(err)
	<-p.done
	return p.err
}
