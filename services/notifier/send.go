package notifier

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/tracing"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// UserAgent is the User-Agent header of every webhook request.
const UserAgent = "Handoff-Notifier"

// maxResponseDrain bounds how much of a response body is read, only so
// that the connection can be reused. The body itself is ignored.
const maxResponseDrain = 64 << 10

var (
	// errUnsendable is wrapped by errors that no retry can fix, such as an
	// invalid webhook URL.
	errUnsendable = errors.New("webhook cannot be sent")

	// errInterrupted is the error of an attempt that was cancelled because
	// the notifier shut down.
	errInterrupted = errors.New("attempt interrupted: the notifier shut down before the receiver responded")
)

// Endpoint is a receiver of webhook requests.
type Endpoint struct {
	// URL is the target of the requests. Its query may contain tokens.
	URL string
	// SubscriptionID names the subscription the endpoint belongs to, or is
	// empty for a webhook given at submit.
	SubscriptionID string
}

// Redacted returns the URL without query, fragment and user information,
// which may contain tokens. Delivery records store this form.
func (e Endpoint) Redacted() string {
	u, err := url.Parse(e.URL)
	if err != nil {
		return "(invalid URL)"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String()
}

// Origin returns the scheme, host and port of the URL, the part of it that
// is safe to log: paths too can contain tokens.
func (e Endpoint) Origin() string {
	u, err := url.Parse(e.URL)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}

// attemptResult is the result of one webhook request.
type attemptResult struct {
	// StatusCode is the response status, or 0 when no response arrived.
	StatusCode int
	// RetryAfter is the delay that the response's Retry-After header
	// requests, or 0.
	RetryAfter time.Duration
	// Err is the error that prevented a response, or nil.
	Err      error
	Duration time.Duration
}

// sender makes webhook requests: one signed POST per call, with a timeout,
// through a client that rejects internal addresses and follows no
// redirects.
type sender struct {
	client  *http.Client
	guard   webhook.Guard
	timeout time.Duration
}

func newSender(cfg Config) *sender {
	return &sender{client: newHTTPClient(cfg), guard: cfg.guard(), timeout: cfg.Timeout}
}

// newHTTPClient returns the webhook HTTP client. Its dialer checks every
// resolved address with the config's [webhook.Guard], and it uses no
// proxy, because a proxy would connect on its behalf and bypass that
// check.
func newHTTPClient(cfg Config) *http.Client {
	dialer := &net.Dialer{
		Timeout:        cfg.Timeout,
		KeepAlive:      30 * time.Second,
		ControlContext: cfg.guard().DialControl(),
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: transport,
		// A redirect is a failed delivery, as Standard Webhooks specifies.
		// Following it would also send the signed event to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// send POSTs ev to ep as a CloudEvent in structured mode, signed by
// signer, and returns what came of it. The webhook-id is the event id, so
// it is the same on every retry, and webhook-timestamp is the time of this
// attempt.
func (s *sender) send(ctx context.Context, ev *events.Event, ep Endpoint, signer *webhook.Signer) attemptResult {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	start := time.Now()
	req, err := s.request(ctx, ev, ep, signer, start)
	if err != nil {
		return attemptResult{Err: err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return attemptResult{Err: s.transportError(err), Duration: time.Since(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()

	return attemptResult{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Duration:   time.Since(start),
	}
}

func (s *sender) request(ctx context.Context, ev *events.Event, ep Endpoint, signer *webhook.Signer, now time.Time) (*http.Request, error) {
	if err := s.guard.CheckURL(ep.URL); err != nil {
		if errors.Is(err, webhook.ErrAddressRejected) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: webhook URL %s: %w", errUnsendable, ep.Redacted(), err)
	}
	body, err := bus.EncodeStructured(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnsendable, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: build request to %s: %w", errUnsendable, ep.Redacted(), err)
	}
	req.Header.Set("Content-Type", contentTypeStructured)
	req.Header.Set("User-Agent", UserAgent)
	// The receiver continues the task's trace from the traceparent header.
	// The Standard Webhooks signature covers the body, not this header.
	tracing.InjectHeader(ctx, req.Header)
	if err := signer.SetHeaders(req.Header, ev.ID, now, body); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnsendable, err)
	}
	return req, nil
}

// transportError drops the URL that net/http puts into its errors, since
// the query may contain tokens, and names a timeout as such.
func (s *sender) transportError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Errorf("timed out: no response within %s: %w", s.timeout, err)
	}
	return err
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// closeIdleConnections closes the keep-alive connections of the client.
func (s *sender) closeIdleConnections() { s.client.CloseIdleConnections() }
