package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// ReconnectDelay is how long [Client.Watch] waits before it reconnects a
// dropped event stream.
const ReconnectDelay = time.Second

// maxEventLineBytes bounds one line of an event stream: an event's data,
// which holds a result of up to the server's inline limit.
const maxEventLineBytes = 16 << 20

// Watch follows the task's events over Server-Sent Events (GET
// /v1/tasks/{id}/events): the events stored so far, then each new one as
// it is stored, in stream order, with Seq set to its stream sequence.
// When the connection drops or the server shuts down, Watch reconnects
// after ReconnectDelay and resumes after the last event it delivered, so
// no event is lost or repeated.
//
// The channel is closed once the task has ended and its stream is
// complete, when ctx is done, or when a reconnection gets an error
// response, such as 404 for a task whose TTL passed. Cancel ctx to stop
// early; an unread channel holds the watch until then. A task that does
// not exist, or a request the server rejects, is an error of Watch itself.
func (c *Client) Watch(ctx context.Context, id string) (<-chan events.Event, error) {
	resp, err := c.openEvents(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	out := make(chan events.Event)
	go c.follow(ctx, id, resp, out)
	return out, nil
}

// follow reads event streams of the task into out until it ends, and
// closes out.
func (c *Client) follow(ctx context.Context, id string, resp *http.Response, out chan<- events.Event) {
	defer close(out)
	var last uint64
	// sawEnd is set once a read of the task showed that it ended.
	var sawEnd bool
	for {
		if resp != nil {
			before := last
			err := readEvents(ctx, resp.Body, out, &last)
			resp.Body.Close()
			if ctx.Err() != nil {
				return
			}
			// The server closes the stream after the task's end, and when
			// it shuts down. Only the task's status distinguishes the two.
			// A task may also have ended after a shutdown closed the
			// stream, so the stream is read once more while the task has
			// events after the last one delivered. The stream leaves out
			// messages that do not decode, so a read that brings nothing
			// new ends the watch too.
			if err == nil {
				v, _, err := c.Get(ctx, id)
				if err == nil && v.Status.Terminal() {
					if v.Sequence <= last || sawEnd && last == before {
						return
					}
					sawEnd = true
				}
				if isProblem(err) {
					return
				}
			}
		}

		t := time.NewTimer(ReconnectDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		var err error
		resp, err = c.openEvents(ctx, id, last)
		if isProblem(err) {
			return
		}
	}
}

// openEvents opens the task's event stream after sequence after.
func (c *Client) openEvents(ctx context.Context, id string, after uint64) (*http.Response, error) {
	hreq, err := c.newRequest(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Accept", "text/event-stream")
	if after > 0 {
		hreq.Header.Set("Last-Event-ID", strconv.FormatUint(after, 10))
	}
	// A stream lasts as long as the task, past any client timeout.
	stream := *c.http
	stream.Timeout = 0
	resp, err := stream.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", hreq.Method, hreq.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readProblem(hreq, resp)
	}
	return resp, nil
}

// readEvents sends the events of one stream to out and records the
// sequence of each in last. It returns nil when the server closed the
// stream, and an error when the connection failed or ctx ended.
func readEvents(ctx context.Context, body io.Reader, out chan<- events.Event, last *uint64) error {
	scanner := bufio.NewScanner(body)
	scanner.Buffer(make([]byte, 0, 64<<10), maxEventLineBytes)
	var id, data string
	for scanner.Scan() {
		line := scanner.Text()
		if line != "" {
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "id":
				id = value
			case "data":
				data += value
			}
			continue
		}

		// A blank line ends an event; a comment has neither id nor data.
		if data == "" {
			id = ""
			continue
		}
		ev, err := decodeStreamEvent(id, data)
		id, data = "", ""
		if err != nil {
			return err
		}
		if ev.Seq <= *last {
			continue
		}
		select {
		case out <- ev:
			*last = ev.Seq
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return scanner.Err()
}

// streamEvent is a CloudEvent in the JSON event format, as the event
// stream and webhooks carry it.
type streamEvent struct {
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        time.Time       `json:"time"`
	Tenant      string          `json:"tenant"`
	TaskType    string          `json:"tasktype"`
	Attempt     json.Number     `json:"attempt"`
	TraceParent string          `json:"traceparent"`
	TraceState  string          `json:"tracestate"`
	Data        json.RawMessage `json:"data"`
}

// decodeStreamEvent decodes the data of one SSE event, a CloudEvent, with
// its SSE id, the stream sequence.
func decodeStreamEvent(id, data string) (events.Event, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return events.Event{}, fmt.Errorf("event stream: id %q is not a stream sequence", id)
	}
	var se streamEvent
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&se); err != nil {
		return events.Event{}, fmt.Errorf("event stream: event %d is not a CloudEvent: %w", seq, err)
	}
	kind, err := events.KindOfType(se.Type)
	if err != nil {
		return events.Event{}, fmt.Errorf("event stream: event %d: %w", seq, err)
	}
	ev := events.Event{
		ID: se.ID, Source: se.Source, Kind: kind, TaskID: se.Subject, Tenant: se.Tenant, TaskType: se.TaskType,
		Time: se.Time, TraceParent: se.TraceParent, TraceState: se.TraceState, Seq: seq,
	}
	if se.Attempt != "" {
		attempt, err := se.Attempt.Int64()
		if err != nil {
			return events.Event{}, fmt.Errorf("event stream: event %d: attempt %s is not an integer", seq, se.Attempt)
		}
		ev.Attempt = int(attempt)
	}
	if len(se.Data) > 0 && string(se.Data) != "null" {
		ev.Data = se.Data
	}
	return ev, nil
}

// isProblem reports whether err is a 4xx error response of the API, which
// a retry does not fix.
func isProblem(err error) bool {
	var p *ProblemError
	return errors.As(err, &p) && p.Status < http.StatusInternalServerError
}
