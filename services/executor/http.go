package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// Headers the http handler sets on each request.
const (
	HeaderTaskID   = "Handoff-Task-Id"
	HeaderTaskType = "Handoff-Task-Type"
	HeaderTenant   = "Handoff-Tenant"
	HeaderAttempt  = "Handoff-Attempt"
)

// errorBodyExcerpt bounds the part of an error response quoted in the
// task's error.
const errorBodyExcerpt = 512

// httpHandler posts the input to a URL per attempt, with the attempt's
// timeout:
//   - 2xx: the body is the result and must be JSON (empty means null), at
//     most the result limit;
//   - 429 and 5xx: the attempt fails and is retried, after Retry-After if
//     the response has one;
//   - timeouts and connection errors: retried too;
//   - anything else, including 3xx (redirects are not followed): the task
//     fails at once, with the status and the start of the body.
type httpHandler struct {
	url    string
	client *http.Client
	limit  int
}

func newHTTPHandler(url string, client *http.Client, limit int) *httpHandler {
	return &httpHandler{url: url, client: client, limit: limit}
}

// newHTTPClient returns the client of http handlers. It does not follow
// redirects, so a redirect fails the task like other non-2xx statuses.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (h *httpHandler) run(ctx context.Context, t *Task) (any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(t.Input))
	if err != nil {
		return nil, Permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "handoff-executor")
	req.Header.Set(HeaderTaskID, t.ID)
	req.Header.Set(HeaderTaskType, t.Type)
	req.Header.Set(HeaderTenant, t.Tenant)
	req.Header.Set(HeaderAttempt, strconv.Itoa(t.Attempt))
	// The attempt's span is the parent of the request, so the endpoint
	// can continue the task's trace.
	tracing.InjectHeader(ctx, req.Header)

	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: POST %s", context.Cause(ctx), h.url)
		}
		return nil, failure(events.CodeUpstreamReachable, false, fmt.Errorf("POST %s: %w", h.url, err))
	}
	defer func() {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()

	body, readErr := io.ReadAll(io.LimitReader(resp.Body, int64(h.limit)+1))
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		return h.result(body, readErr, ctx)
	}

	err = fmt.Errorf("POST %s: %s: %s", h.url, resp.Status, excerpt(bytes.TrimSpace(body), errorBodyExcerpt))
	if status == http.StatusTooManyRequests || status >= 500 {
		he := &handlerError{err: err, code: events.CodeUpstreamStatus}
		he.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, he
	}
	return nil, failure(events.CodeUpstreamStatus, true, err)
}

func (h *httpHandler) result(body []byte, readErr error, ctx context.Context) (any, error) {
	if readErr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: read response of %s", context.Cause(ctx), h.url)
		}
		return nil, failure(events.CodeUpstreamReachable, false, fmt.Errorf("read response of %s: %w", h.url, readErr))
	}
	if len(body) > h.limit {
		return nil, failure(events.CodeResultTooLarge, true, fmt.Errorf("response body is longer than the inline result limit of %d bytes", h.limit))
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(body) {
		return nil, failure(events.CodeInvalidOutput, true, fmt.Errorf("response body of %s is not JSON; it starts with %s", h.url, excerpt(body, 120)))
	}
	return json.RawMessage(body), nil
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. It returns zero when the header is absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 || secs > int64(events.MaxTimeout/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}
