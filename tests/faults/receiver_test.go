package faults

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

// receiver is a webhook endpoint on loopback that verifies each request's
// signature and records what it received, per webhook id and per task.
type receiver struct {
	srv      *httptest.Server
	verifier *webhook.Verifier

	mu sync.Mutex
	// requests counts the requests per webhook id; a count above one is
	// a retry of the same event.
	requests map[string]int
	// byTask holds the webhook ids received per task id, in order of
	// arrival, without repeats.
	byTask map[string][]string
	// invalid counts the requests that failed the signature check or did
	// not carry a CloudEvent.
	invalid int
}

// startReceiver starts a receiver that accepts requests signed with
// secret and closes it when the test ends.
func startReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	v, err := webhook.NewVerifier([]string{secret}, 0)
	require.NoError(t, err)
	r := &receiver{verifier: v, requests: map[string]int{}, byTask: map[string][]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the endpoint to give as a task's webhook.
func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ce struct {
		ID      string `json:"id"`
		Subject string `json:"subject"`
	}
	verr := r.verifier.Verify(req.Header, body)
	jerr := json.Unmarshal(body, &ce)
	id := req.Header.Get(webhook.HeaderID)

	r.mu.Lock()
	defer r.mu.Unlock()
	if verr != nil || jerr != nil || ce.ID != id || ce.Subject == "" {
		r.invalid++
		http.Error(w, "invalid webhook", http.StatusBadRequest)
		return
	}
	if r.requests[id] == 0 {
		r.byTask[ce.Subject] = append(r.byTask[ce.Subject], id)
	}
	r.requests[id]++
	w.WriteHeader(http.StatusNoContent)
}

// received returns the webhook ids received for a task.
func (r *receiver) received(taskID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.byTask[taskID]...)
}

// stats returns how many distinct events arrived, how many requests
// repeated an event already received, and how many requests were
// invalid.
func (r *receiver) stats() (events, repeats, invalid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.requests {
		events++
		repeats += n - 1
	}
	return events, repeats, r.invalid
}
