// Package client is the Go SDK of Handoff: submit a task, read its view,
// wait for it to end or follow its events, list tasks and task types,
// cancel, pause, resume or answer a task, and manage webhook
// subscriptions.
//
// [Client] speaks the HTTP API and [NATSClient] the NATS request API that
// every ingest also serves. Both implement [API], so an agent picks its
// transport in one place. Webhook subscriptions are HTTP only.
//
// The examples here compile but do not run, because a server needs
// services/ingest, which depends on this module. Runnable examples of
// both transports against a whole stack are in cmd/handoff, and the tests
// of services/ingest run every call against a real server.
package client

import (
	"bytes"
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

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 64 << 20

// Client calls one Handoff API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithToken sends token as a bearer token with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client of the API at baseURL, such as
// http://127.0.0.1:8080.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid API URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("invalid API URL %q: want http://host:port or https://host", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, http: &http.Client{Timeout: 2 * time.Minute}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// SubmitRequest is the body of POST /v1/tasks.
type SubmitRequest struct {
	Type        string            `json:"type"`
	Input       json.RawMessage   `json:"input,omitempty"`
	Timeout     events.Duration   `json:"timeout,omitempty"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
	Deadline    *time.Time        `json:"deadline,omitempty"`
	TTL         events.Duration   `json:"ttl,omitempty"`
	RunAt       *time.Time        `json:"run_at,omitempty"`
	Webhook     *events.Webhook   `json:"webhook,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// SubmitOptions are the per-request options of Submit.
type SubmitOptions struct {
	// IdempotencyKey makes a retried submit return the task the first one
	// created instead of creating another.
	IdempotencyKey string

	// Wait asks the server to hold its answer until the task ends, for up
	// to Wait (Prefer: wait, in whole seconds, rounded up). A task that
	// ends in time is returned with its final view; otherwise the view is
	// the one stored at submit. The server caps the wait at its own
	// maximum, 60s by default. Zero answers at once.
	Wait time.Duration
}

// preferWait returns the Prefer header value of a wait, such as "wait=10".
func preferWait(d time.Duration) string {
	return "wait=" + strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// created reports whether a submit created its task: the response is 202,
// or 200 with the final view of a task that ended within the wait, while
// a repeat of an Idempotency-Key is 200 with Idempotent-Replayed: true.
func created(status int, h http.Header, opts SubmitOptions) bool {
	if h.Get(headerIdempotentReplayed) == "true" {
		return false
	}
	return status == http.StatusAccepted || status == http.StatusOK && opts.Wait > 0
}

// headerIdempotentReplayed marks the response to a repeat of an
// Idempotency-Key.
const headerIdempotentReplayed = "Idempotent-Replayed"

// Submitted is the answer to a submit.
type Submitted struct {
	Task events.View
	// Created is false when an idempotent repeat returned an existing task.
	Created bool
	// RetryAfter is the server's hint for the first poll.
	RetryAfter time.Duration
}

// Submit hands off a task and returns its view as stored, or its final
// view when it ended within opts.Wait.
func (c *Client) Submit(ctx context.Context, req SubmitRequest, opts SubmitOptions) (*Submitted, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode submit request: %w", err)
	}
	hreq, err := c.newRequest(ctx, http.MethodPost, "/v1/tasks", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if opts.IdempotencyKey != "" {
		hreq.Header.Set("Idempotency-Key", opts.IdempotencyKey)
	}
	if opts.Wait > 0 {
		hreq.Header.Set("Prefer", preferWait(opts.Wait))
	}

	resp, err := c.do(hreq, http.StatusAccepted, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := &Submitted{Created: created(resp.StatusCode, resp.Header, opts), RetryAfter: retryAfter(resp.Header)}
	if err := decode(resp, &out.Task); err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns the task's current view. A task that does not exist, or
// whose retention ended, is a *ProblemError with status 404.
func (c *Client) Get(ctx context.Context, id string) (*events.View, time.Duration, error) {
	hreq, err := c.newRequest(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.do(hreq, http.StatusOK)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var v events.View
	if err := decode(resp, &v); err != nil {
		return nil, 0, err
	}
	return &v, retryAfter(resp.Header), nil
}

// DefaultHold is how long [Client.Wait] lets the server hold one request
// for a change of the task when its maxInterval is zero.
const DefaultHold = 30 * time.Second

// Wait waits until the task ends or ctx is done, and calls onChange, if
// not nil, with the current view and then every view whose sequence
// moved. After the first read, each request has the server hold the
// response until the task changes (GET /v1/tasks/{id}?wait=), for at most
// maxInterval, or DefaultHold when it is zero or longer, so changes arrive
// as they happen and an idle task costs one request per hold. When ctx
// ends the wait, Wait returns the last view with ctx's error.
func (c *Client) Wait(ctx context.Context, id string, maxInterval time.Duration, onChange func(*events.View)) (*events.View, error) {
	hold := maxInterval
	if hold <= 0 || hold > DefaultHold {
		hold = DefaultHold
	}
	var last *events.View
	etag := ""
	for {
		// The first read is not held, so the caller sees the task at once.
		wait := hold
		if last == nil {
			wait = 0
		}
		v, tag, err := c.getHeld(ctx, id, wait, etag)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return nil, err
		}
		if v != nil {
			if last == nil || v.Sequence != last.Sequence {
				if onChange != nil {
					onChange(v)
				}
			}
			last, etag = v, tag
		}
		if last.Status.Terminal() {
			return last, nil
		}
	}
}

// getHeld sends GET /v1/tasks/{id}?wait=hold, without wait for a zero
// hold, with If-None-Match etag. It returns the view and its ETag, or a
// nil view when the task did not change.
func (c *Client) getHeld(ctx context.Context, id string, hold time.Duration, etag string) (*events.View, string, error) {
	hreq, err := c.newRequest(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, "", err
	}
	if hold > 0 {
		hreq.URL.RawQuery = url.Values{"wait": {hold.String()}}.Encode()
	}
	if etag != "" {
		hreq.Header.Set("If-None-Match", etag)
	}
	resp, err := c.do(hreq, http.StatusOK, http.StatusNotModified)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, etag, nil
	}
	var v events.View
	if err := decode(resp, &v); err != nil {
		return nil, "", err
	}
	return &v, resp.Header.Get("ETag"), nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	return nil, readProblem(req, resp)
}

func decode(resp *http.Response, v any) error {
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(v); err != nil {
		return fmt.Errorf("decode %s response: %w", resp.Request.URL.Path, err)
	}
	return nil
}

func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// ProblemError is an RFC 9457 problem document the API answered with.
type ProblemError struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail"`
	Instance string         `json:"instance"`
	Errors   []ProblemField `json:"errors,omitempty"`
	// TaskStatus is the task's status when a request conflicts with it.
	TaskStatus events.Status `json:"task_status,omitempty"`
}

// ProblemField is one invalid field or input location of a problem.
type ProblemField struct {
	Field   string `json:"field,omitempty"`
	Pointer string `json:"pointer,omitempty"`
	Message string `json:"message"`
}

func (p *ProblemError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	for _, f := range p.Errors {
		if strings.Contains(p.Detail, f.Message) {
			continue
		}
		loc := f.Pointer
		if loc == "" {
			loc = f.Field
		}
		fmt.Fprintf(&b, "\n  %s: %s", loc, f.Message)
	}
	return b.String()
}

// IsNotFound reports whether err is a 404 problem.
func IsNotFound(err error) bool {
	var p *ProblemError
	return errors.As(err, &p) && p.Status == http.StatusNotFound
}

func readProblem(req *http.Request, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := &ProblemError{}
	if err := json.Unmarshal(body, p); err != nil || p.Status == 0 {
		excerpt := strings.TrimSpace(string(body))
		if len(excerpt) > 200 {
			excerpt = excerpt[:200] + "..."
		}
		return fmt.Errorf("%s %s: unexpected status %s: %s", req.Method, req.URL.Path, resp.Status, excerpt)
	}
	return p
}
