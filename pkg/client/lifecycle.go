package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/handoff-dev/handoff/events"
)

// Cancel cancels the task: at once unless it is running, else its executor
// stops the handler and the task ends as cancelled. reason may be empty.
// The view is the task after the request. A task that has ended is a
// *ProblemError with status 409 whose TaskStatus names its status.
func (c *Client) Cancel(ctx context.Context, id, reason string) (*events.View, error) {
	return c.act(ctx, id, "cancel", reasonBody(reason))
}

// Pause pauses the task: at once while it is queued or retrying, else its
// executor stops the handler and records its last checkpoint. reason may
// be empty. A status that does not allow a pause is a *ProblemError with
// status 409.
func (c *Client) Pause(ctx context.Context, id, reason string) (*events.View, error) {
	return c.act(ctx, id, "pause", reasonBody(reason))
}

// Resume queues a paused task again, to continue from its checkpoint.
// reason may be empty. A task that is not paused, including one that waits
// for input, is a *ProblemError with status 409; answer that one with
// [Client.Answer].
func (c *Client) Resume(ctx context.Context, id, reason string) (*events.View, error) {
	return c.act(ctx, id, "resume", reasonBody(reason))
}

// Answer answers the input request of a task whose status is
// input_required, which queues it again. answer is any JSON value that
// matches the request's input_schema. An answer that does not is a
// *ProblemError with status 422 listing every violation; a task that does
// not wait for input is one with status 409.
func (c *Client) Answer(ctx context.Context, id string, answer json.RawMessage) (*events.View, error) {
	if !json.Valid(answer) {
		return nil, errors.New("answer is not valid JSON")
	}
	body, err := json.Marshal(struct {
		Answer json.RawMessage `json:"answer"`
	}{answer})
	if err != nil {
		return nil, fmt.Errorf("encode answer: %w", err)
	}
	return c.act(ctx, id, "input", body)
}

// reasonBody returns the body of a cancel, pause or resume request, or nil
// for none.
func reasonBody(reason string) []byte {
	if reason == "" {
		return nil
	}
	body, _ := json.Marshal(struct {
		Reason string `json:"reason"`
	}{reason})
	return body
}

// act sends POST /v1/tasks/{id}/<action> with body and returns the task
// view of the response.
func (c *Client) act(ctx context.Context, id, action string, body []byte) (*events.View, error) {
	path := "/v1/tasks/" + url.PathEscape(id) + "/" + action
	hreq, err := c.newRequest(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(hreq, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v events.View
	if err := decode(resp, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
