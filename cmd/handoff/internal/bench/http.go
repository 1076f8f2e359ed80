package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// httpRow measures submissions per second over HTTP from cfg.HTTPClients
// keep-alive clients against a bare net/http handler that decodes the
// same JSON and does one JetStream publish.
func (g *generator) httpRow(ctx context.Context) ([]Row, error) {
	figure := fmt.Sprintf("submissions/s over HTTP, %d keep-alive clients, %d-byte input", g.cfg.HTTPClients, g.cfg.InputBytes)
	body, err := json.Marshal(map[string]any{"type": submitType, "input": g.input})
	if err != nil {
		return nil, err
	}
	baseline := g.settled(func(ctx context.Context) Sample {
		return g.postWindow(ctx, g.rawAPIURL+"/v1/tasks", body)
	})
	handoff := g.settled(func(ctx context.Context) Sample {
		return g.postWindow(ctx, g.st.apiURL+"/v1/tasks", body)
	})
	bs, hs := compare(ctx, g.cfg, RowHTTP, baseline, handoff, rateValue, formatRate)
	if err := g.profile(ctx, RowHTTP, handoff); err != nil {
		return nil, err
	}
	return []Row{rateRow(figure, bs, hs, atLeast(0.70))}, nil
}

// postWindow posts body to url from cfg.HTTPClients clients for one
// window, each on its own keep-alive connection, and counts the 202s.
func (g *generator) postWindow(ctx context.Context, url string, body []byte) Sample {
	client := newHTTPClient(g.cfg.HTTPClients)
	defer client.CloseIdleConnections()
	return runWindow(ctx, g.cfg.HTTPClients, g.cfg.Warmup, g.cfg.Duration, func(ctx context.Context, w *window) {
		start := time.Now()
		if _, err := post(ctx, client, url, body, http.StatusAccepted); err != nil {
			w.fail(err)
			return
		}
		w.done(time.Since(start))
	})
}

// webhookRow measures the time from a submission over HTTP to the arrival
// of its webhook at a receiver on loopback, one task at a time, against
// the raw round trip of one message.
func (g *generator) webhookRow(ctx context.Context) ([]Row, error) {
	figure := "latency submit → webhook received on loopback, one at a time"
	body, err := json.Marshal(map[string]any{"type": echoType, "input": g.input, "webhook": map[string]string{"url": g.hookURL}})
	if err != nil {
		return nil, err
	}
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	baseline := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, 1, g.cfg.Warmup, g.cfg.Duration, g.rawRoundTrip)
	})
	submit := func(ctx context.Context) (trip, error) { return g.submitWithWebhook(ctx, client, body) }
	handoff := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, 1, g.cfg.Warmup, g.cfg.Duration, func(ctx context.Context, w *window) {
			t, err := submit(ctx)
			if err != nil {
				w.fail(err)
				return
			}
			w.done(t.took())
		})
	})
	bs, hs := compare(ctx, g.cfg, RowWebhook, baseline, handoff, p50Value, formatLatency)
	if err := g.profile(ctx, RowWebhook, handoff); err != nil {
		return nil, err
	}
	row := latencyRow(figure, bs, hs, atMost(12))
	row.Notes = append(row.Notes, g.tracePaths(ctx, submit, "the receiver received its webhook"))
	return []Row{row}, nil
}

// submitWithWebhook submits one echo task with a webhook over HTTP and
// returns its trip, which ends when the webhook of its terminal event
// arrives.
func (g *generator) submitWithWebhook(ctx context.Context, client *http.Client, body []byte) (trip, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()

	start := time.Now()
	resp, err := post(ctx, client, g.st.apiURL+"/v1/tasks", body, http.StatusAccepted)
	if err != nil {
		return trip{}, err
	}
	var view struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp, &view); err != nil || view.ID == "" {
		return trip{}, fmt.Errorf("submission response without a task id: %q", resp)
	}
	a := g.hooks.expect(view.ID)
	defer g.hooks.forget(view.ID)
	at, err := await(ctx, a)
	if err != nil {
		return trip{}, fmt.Errorf("webhook of task %s: %w", view.ID, err)
	}
	if a.outcome != events.KindSucceeded.Type() {
		return trip{}, fmt.Errorf("webhook of task %s has type %s", view.ID, a.outcome)
	}
	return trip{id: view.ID, start: start, end: at}, nil
}

// newHTTPClient returns a client that keeps up to conns connections open
// to one host.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}}
}

// post posts a JSON body and returns the response body when the status is
// want.
func post(ctx context.Context, client *http.Client, url string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read the response of POST %s: %w", url, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("POST %s: status %d: %.200s", url, resp.StatusCode, out)
	}
	return out, nil
}

// newRawSubmitHandler returns the baseline of ingest's POST /v1/tasks. It
// decodes the same JSON, publishes the input to JetStream and waits for
// the server's acknowledgement, then responds 202 with a new id.
func newRawSubmitHandler(js jetstream.JetStream, inputBytes int) http.Handler {
	maxBody := int64(inputBytes) + 64<<10
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Type  string          `json:"type"`
			Input json.RawMessage `json:"input"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil || req.Type == "" {
			http.Error(w, "invalid submission", http.StatusBadRequest)
			return
		}
		id := events.NewID()
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: rawSubmission + id, Data: req.Input}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(w, `{"id":%q,"type":%q,"status":"queued"}`, id, req.Type)
	})
}

// newReceiver returns the webhook receiver: it notes the arrival time,
// verifies the signature and hands the CloudEvent's task id and type to
// hooks.
func newReceiver(verifier *webhook.Verifier, hooks *rendezvous) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		var ce struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(body, &ce); err != nil || ce.Subject == "" {
			http.Error(w, "not a CloudEvent", http.StatusBadRequest)
			return
		}
		verifyErr := verifier.Verify(r.Header, body)
		if verifyErr != nil {
			verifyErr = fmt.Errorf("webhook signature: %w", verifyErr)
		}
		hooks.arrive(ce.Subject, at, ce.Type, verifyErr, true)
		w.WriteHeader(http.StatusNoContent)
	})
}
