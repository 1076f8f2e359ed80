package notifier_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

func TestEventsOfOneTaskInOrder(t *testing.T) {
	// The first request fails, so the first event waits for a retry while
	// the second is ready: it must still arrive after the first.
	rcv := newReceiver(t, sequence(http.StatusServiceUnavailable, http.StatusOK))
	env := startNotifier(t, nil)

	w := newTask(t, env.bus, taskType, rcv.URL)
	asked := w.run(events.KindInputRequired, events.InputRequired{Prompt: "Grant read access to /data?"})
	w.append(events.KindResumed, events.Resumed{Input: json.RawMessage(`{"grant":true}`)}, "/handoff/ingest")
	done := w.run(events.KindSucceeded, events.Succeeded{Result: json.RawMessage(`{"files":3}`)})

	waitRecords(t, env.bus, done, 3)
	waitSettled(t, env.bus, done.Seq)

	reqs := rcv.requests()
	require.Len(t, reqs, 3)
	require.Equal(t, asked.ID, reqs[0].header.Get(webhook.HeaderID))
	require.Equal(t, asked.ID, reqs[1].header.Get(webhook.HeaderID))
	require.Equal(t, done.ID, reqs[2].header.Get(webhook.HeaderID))
	for _, req := range reqs {
		verifyWithReference(t, env.secret, req)
	}
}

func TestEventsOfManyTasksInOrder(t *testing.T) {
	// Every event fails once before it is delivered. A task's second event
	// must not be sent before its first was delivered, whatever the
	// interleaving of the tasks.
	var mu sync.Mutex
	tried := map[string]bool{}
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(webhook.HeaderID)
		mu.Lock()
		first := !tried[id]
		tried[id] = true
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	env := startNotifier(t, func(c *notifier.Config) { c.Concurrency = 8; c.EndpointConcurrency = 8 })

	const tasks = 10
	firstOf := map[string]string{}
	var last events.Event
	for range tasks {
		w := newTask(t, env.bus, taskType, rcv.URL)
		asked := w.run(events.KindInputRequired, events.InputRequired{Prompt: "continue?"})
		w.append(events.KindResumed, events.Resumed{Input: json.RawMessage(`true`)}, "/handoff/ingest")
		last = w.run(events.KindFailed, events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "disk full"}})
		firstOf[last.ID] = asked.ID
	}
	waitSettled(t, env.bus, last.Seq)

	// Each event was sent twice, and its second request was the delivery.
	reqs := rcv.requests()
	require.Len(t, reqs, 4*tasks)
	sent := map[string]int{}
	deliveredAt := map[string]int{}
	for i, req := range reqs {
		id := req.header.Get(webhook.HeaderID)
		sent[id]++
		if sent[id] == 2 {
			deliveredAt[id] = i
		}
	}
	require.Len(t, deliveredAt, 2*tasks)

	for i, req := range reqs {
		id := req.header.Get(webhook.HeaderID)
		firstID, second := firstOf[id]
		if !second {
			continue
		}
		require.Less(t, deliveredAt[firstID], i, "request %d sent a failed event before its task's input_required event was delivered", i)
	}
}
