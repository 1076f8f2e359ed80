package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// API is what an agent does with tasks, over HTTP ([Client], from [New])
// or over NATS ([NATSClient], from [NewNATS]). Both return the same views
// and the same errors: a request the server rejects is a *ProblemError
// whose Status is the HTTP status, over NATS too.
type API interface {
	// Submit hands off a task; see [Client.Submit].
	Submit(ctx context.Context, req SubmitRequest, opts SubmitOptions) (*Submitted, error)
	// Get returns the task's current view and the server's hint for the
	// next poll; see [Client.Get].
	Get(ctx context.Context, id string) (*events.View, time.Duration, error)
	// Wait waits until the task ends and calls onChange with each new
	// view; see [Client.Wait] and [NATSClient.Wait].
	Wait(ctx context.Context, id string, maxInterval time.Duration, onChange func(*events.View)) (*events.View, error)
	// Watch follows the task's events until it ends; see [Client.Watch]
	// and [NATSClient.Watch].
	Watch(ctx context.Context, id string) (<-chan events.Event, error)
	// Cancel cancels the task; see [Client.Cancel].
	Cancel(ctx context.Context, id, reason string) (*events.View, error)
	// Pause pauses the task; see [Client.Pause].
	Pause(ctx context.Context, id, reason string) (*events.View, error)
	// Resume queues a paused task again; see [Client.Resume].
	Resume(ctx context.Context, id, reason string) (*events.View, error)
	// Answer answers the task's input request; see [Client.Answer].
	Answer(ctx context.Context, id string, answer json.RawMessage) (*events.View, error)
	// List returns a page of the caller's tasks; see [Client.List].
	List(ctx context.Context, opts ListOptions) (*TaskPage, error)
	// Types returns the task types that live executors serve; see
	// [Client.Types].
	Types(ctx context.Context) ([]TaskType, error)
}

var (
	_ API = (*Client)(nil)
	_ API = (*NATSClient)(nil)
)
