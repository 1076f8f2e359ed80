package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// DefaultRequestTimeout bounds a request of a [NATSClient] whose context
// has no deadline. A submission with SubmitOptions.Wait gets the wait on
// top.
const DefaultRequestTimeout = 30 * time.Second

// headerStatus carries the HTTP status of a successful response of the
// NATS request API.
const headerStatus = "Handoff-Status"

// ErrNoService is returned when no Handoff ingest serves the NATS request
// API of the client's namespace.
var ErrNoService = errors.New("no Handoff ingest serves the NATS request API")

// NATSClient calls Handoff's NATS request API, the micro service "handoff"
// that every ingest serves on <namespace>.api.*, and follows tasks
// straight from the tasks stream. It has the methods of [Client] with the
// same meaning, and is safe for concurrent use.
type NATSClient struct {
	nc      *nats.Conn
	names   bus.Names
	token   string
	timeout time.Duration
}

// NATSOption configures a NATSClient.
type NATSOption func(*NATSClient)

// WithNamespace sets the namespace of the deployment, the first token of
// its subjects. Default "handoff".
func WithNamespace(namespace string) NATSOption {
	return func(c *NATSClient) { c.names.Namespace = namespace }
}

// WithNATSToken sends token as a bearer token in the Authorization header
// of every request, for an ingest with bearer tokens.
func WithNATSToken(token string) NATSOption { return func(c *NATSClient) { c.token = token } }

// WithRequestTimeout bounds each request whose context has no deadline.
// Default DefaultRequestTimeout.
func WithRequestTimeout(d time.Duration) NATSOption {
	return func(c *NATSClient) { c.timeout = d }
}

// NewNATS returns a client of the NATS request API on nc. The client does
// not own nc: close it when done.
func NewNATS(nc *nats.Conn, opts ...NATSOption) (*NATSClient, error) {
	if nc == nil {
		return nil, errors.New("new NATS client: the connection is nil")
	}
	c := &NATSClient{nc: nc, timeout: DefaultRequestTimeout}
	for _, o := range opts {
		o(c)
	}
	names, err := bus.NewNames(c.names.Namespace)
	if err != nil {
		return nil, fmt.Errorf("new NATS client: invalid namespace: %w", err)
	}
	c.names = names
	if c.timeout <= 0 {
		return nil, fmt.Errorf("new NATS client: invalid request timeout %s; it must be positive", c.timeout)
	}
	return c, nil
}

// natsResponse is a successful response of the NATS request API.
type natsResponse struct {
	status int
	header nats.Header
	data   []byte
}

// request sends body to endpoint with header, within ctx or the client's
// timeout plus extra when ctx has no deadline. A micro error response is
// a *ProblemError.
func (c *NATSClient) request(ctx context.Context, endpoint string, body []byte, header nats.Header, extra time.Duration) (*natsResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout+extra)
		defer cancel()
	}
	msg := nats.NewMsg(c.names.APISubject(endpoint))
	msg.Data = body
	for name, values := range header {
		msg.Header[name] = values
	}
	if c.token != "" {
		msg.Header.Set("Authorization", "Bearer "+c.token)
	}

	resp, err := c.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%s: %w on %s; check that ingest runs with the NATS API on and with this namespace", endpoint, ErrNoService, msg.Subject)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, natsProblem(endpoint, code, resp)
	}
	status, err := strconv.Atoi(resp.Header.Get(headerStatus))
	if err != nil {
		status = http.StatusOK
	}
	return &natsResponse{status: status, header: resp.Header, data: resp.Data}, nil
}

// natsProblem returns the error of a micro error response: its problem
// document, or a problem made of its code and description when the body
// is not one.
func natsProblem(endpoint, code string, resp *nats.Msg) error {
	p := &ProblemError{}
	if err := json.Unmarshal(resp.Data, p); err == nil && p.Status != 0 {
		return p
	}
	status, err := strconv.Atoi(code)
	if err != nil {
		return fmt.Errorf("%s: the service answered error %q: %s", endpoint, code, resp.Header.Get(micro.ErrorHeader))
	}
	return &ProblemError{Status: status, Title: http.StatusText(status), Detail: resp.Header.Get(micro.ErrorHeader), Instance: resp.Subject}
}

// decode decodes the body of a response into v.
func (r *natsResponse) decode(endpoint string, v any) error {
	if err := json.Unmarshal(r.data, v); err != nil {
		return fmt.Errorf("decode %s response: %w", endpoint, err)
	}
	return nil
}

// Submit hands off a task and returns its view as stored, or its final
// view when it ended within opts.Wait.
func (c *NATSClient) Submit(ctx context.Context, req SubmitRequest, opts SubmitOptions) (*Submitted, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode submit request: %w", err)
	}
	header := nats.Header{}
	if opts.IdempotencyKey != "" {
		header.Set("Idempotency-Key", opts.IdempotencyKey)
	}
	if opts.Wait > 0 {
		header.Set("Prefer", preferWait(opts.Wait))
	}

	resp, err := c.request(ctx, "submit", body, header, opts.Wait)
	if err != nil {
		return nil, err
	}
	h := http.Header(resp.header)
	out := &Submitted{Created: created(resp.status, h, opts), RetryAfter: retryAfter(h)}
	if err := resp.decode("submit", &out.Task); err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns the task's current view and the server's hint for the next
// poll. A task that does not exist, or whose retention ended, is a
// *ProblemError with status 404.
func (c *NATSClient) Get(ctx context.Context, id string) (*events.View, time.Duration, error) {
	resp, err := c.request(ctx, "get", idBody(id, nil), nil, 0)
	if err != nil {
		return nil, 0, err
	}
	var v events.View
	if err := resp.decode("get", &v); err != nil {
		return nil, 0, err
	}
	return &v, retryAfter(http.Header(resp.header)), nil
}

// Cancel cancels the task; see [Client.Cancel].
func (c *NATSClient) Cancel(ctx context.Context, id, reason string) (*events.View, error) {
	return c.act(ctx, "cancel", id, reasonFields(reason))
}

// Pause pauses the task; see [Client.Pause].
func (c *NATSClient) Pause(ctx context.Context, id, reason string) (*events.View, error) {
	return c.act(ctx, "pause", id, reasonFields(reason))
}

// Resume queues a paused task again; see [Client.Resume].
func (c *NATSClient) Resume(ctx context.Context, id, reason string) (*events.View, error) {
	return c.act(ctx, "resume", id, reasonFields(reason))
}

// Answer answers the input request of a task whose status is
// input_required; see [Client.Answer].
func (c *NATSClient) Answer(ctx context.Context, id string, answer json.RawMessage) (*events.View, error) {
	if !json.Valid(answer) {
		return nil, errors.New("answer is not valid JSON")
	}
	return c.act(ctx, "input", id, map[string]any{"answer": answer})
}

// act sends a lifecycle request for the task and returns its view.
func (c *NATSClient) act(ctx context.Context, endpoint, id string, fields map[string]any) (*events.View, error) {
	resp, err := c.request(ctx, endpoint, idBody(id, fields), nil, 0)
	if err != nil {
		return nil, err
	}
	var v events.View
	if err := resp.decode(endpoint, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// List returns a page of the caller's tenant's tasks, newest first; see
// [Client.List].
func (c *NATSClient) List(ctx context.Context, opts ListOptions) (*TaskPage, error) {
	query := map[string]string{}
	for name, values := range opts.query() {
		query[name] = strings.Join(values, ",")
	}
	body, err := json.Marshal(query)
	if err != nil {
		return nil, fmt.Errorf("encode list request: %w", err)
	}
	resp, err := c.request(ctx, "list", body, nil, 0)
	if err != nil {
		return nil, err
	}
	page := &TaskPage{}
	if err := resp.decode("list", page); err != nil {
		return nil, err
	}
	return page, nil
}

// Types returns the task types that live executors serve, sorted by name.
func (c *NATSClient) Types(ctx context.Context) ([]TaskType, error) {
	resp, err := c.request(ctx, "types", nil, nil, 0)
	if err != nil {
		return nil, err
	}
	var body struct {
		Types []TaskType `json:"types"`
	}
	if err := resp.decode("types", &body); err != nil {
		return nil, err
	}
	return body.Types, nil
}

// idBody returns the JSON body of a request about task id: fields and
// "id".
func idBody(id string, fields map[string]any) []byte {
	body := map[string]any{"id": id}
	for name, v := range fields {
		body[name] = v
	}
	// Strings and raw JSON values always encode.
	b, _ := json.Marshal(body)
	return b
}

// reasonFields returns the fields of a cancel, pause or resume request.
func reasonFields(reason string) map[string]any {
	if reason == "" {
		return nil
	}
	return map[string]any{"reason": reason}
}
