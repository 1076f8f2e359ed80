package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/handoff-dev/handoff/events"
)

// TaskType is a task type that a live executor serves, as GET /v1/types
// returns it. Name, Description and InputSchema are what most language
// model tool formats take, though some do not allow the dots of a task
// type in a tool name.
type TaskType struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// InputSchema is the JSON Schema of the input; empty means any input.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
	// OutputSchema is the JSON Schema of the result.
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	// DefaultTimeout bounds an attempt when a submission sets no timeout.
	DefaultTimeout events.Duration `json:"default_timeout,omitempty"`
	// MaxAttempts is the default of a submission's max_attempts.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Pool names the executor pool that serves the type.
	Pool string `json:"pool"`
}

// Types returns the task types that live executors serve, sorted by name.
func (c *Client) Types(ctx context.Context) ([]TaskType, error) {
	hreq, err := c.newRequest(ctx, http.MethodGet, "/v1/types", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(hreq, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Types []TaskType `json:"types"`
	}
	if err := decode(resp, &body); err != nil {
		return nil, err
	}
	return body.Types, nil
}
