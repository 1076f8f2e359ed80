package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestSubmitAccepted(t *testing.T) {
	b := setup(t)

	resp := b.submit(t, `{"type": "echo", "input": {"message": "hi"}, "metadata": {"conversation": "c-42"}, "webhook": {"url": "https://agent.example.com/hook"}}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	require.True(t, bytes.HasSuffix(resp.body, []byte("}\n")), "the body ends with a newline: %q", resp.body)

	v := resp.view(t)
	require.NoError(t, events.ValidateTaskID(v.ID))
	require.Len(t, v.ID, 26, "a generated id is a ULID")
	require.Equal(t, "/v1/tasks/"+v.ID, resp.header.Get("Location"))
	require.Equal(t, 1, seconds(t, resp.header))
	require.Equal(t, "echo", v.Type)
	require.Equal(t, events.DefaultTenant, v.Tenant)
	require.Equal(t, events.StatusQueued, v.Status)
	require.Equal(t, 0, v.Attempt)
	require.Equal(t, events.DefaultMaxAttempts, v.MaxAttempts)
	require.Zero(t, v.Timeout, "echo registers no default timeout")
	require.Equal(t, map[string]string{"conversation": "c-42"}, v.Metadata)
	require.Equal(t, "https://agent.example.com/hook", v.Webhook.URL)
	require.WithinDuration(t, v.Created.Add(events.DefaultTTL), v.ExpiresAt, time.Second)
	require.NotZero(t, v.Sequence)

	// The stored event is the task's only one, written by ingest with the
	// task's TTL. Only a keyed task carries the hash of its request.
	te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, v.ID, 0)
	require.NoError(t, err)
	require.Len(t, te.Events, 1)
	ev := te.Events[0]
	require.Equal(t, events.KindSubmitted, ev.Kind)
	require.Equal(t, ingest.DefaultSource, ev.Source)
	require.Equal(t, v.Sequence, ev.Seq)
	var sub events.Submission
	require.NoError(t, json.Unmarshal(ev.Data, &sub))
	require.JSONEq(t, `{"message": "hi"}`, string(sub.Input))
	require.Empty(t, sub.RequestHash)
	require.Equal(t, events.Duration(events.DefaultTTL), sub.TTL)

	msg := b.storedMessage(t, ev.Seq)
	require.Equal(t, strconv.Itoa(int(events.DefaultTTL/time.Second)), msg.Header.Get(bus.HeaderTTL))
}

func TestSubmitReadYourWrites(t *testing.T) {
	b := setup(t)

	for range 5 {
		posted := b.submit(t, `{"type": "echo"}`)
		require.Equal(t, http.StatusAccepted, posted.status)
		pv := posted.view(t)

		got := b.get(t, posted.header.Get("Location"))
		require.Equal(t, http.StatusOK, got.status, "a read right after the submit finds the task")
		gv := got.view(t)
		require.Equal(t, pv.ID, gv.ID)
		require.Equal(t, pv.Status, gv.Status)
		require.Equal(t, pv.Sequence, gv.Sequence)
		require.Equal(t, pv.MaxAttempts, gv.MaxAttempts)
		require.Equal(t, `"`+strconv.FormatUint(pv.Sequence, 10)+`"`, got.header.Get("ETag"))
		// The submit reports its own clock, the read the stream's.
		require.WithinDuration(t, pv.Created, gv.Created, time.Second)
	}
}

func TestSubmitInputDefaultsToEmptyObject(t *testing.T) {
	b := setup(t)

	for _, body := range []string{`{"type": "echo"}`, `{"type": "echo", "input": null}`} {
		resp := b.submit(t, body)
		require.Equal(t, http.StatusAccepted, resp.status, "body %s", body)

		te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, resp.view(t).ID, 0)
		require.NoError(t, err)
		var sub events.Submission
		require.NoError(t, json.Unmarshal(te.Events[0].Data, &sub))
		require.Equal(t, `{}`, string(sub.Input))
	}
}

func TestSubmitDefaultsFromRegistration(t *testing.T) {
	b := setup(t)

	resp := b.submit(t, `{"type": "files.manifest", "input": {"dir": "/srv/data"}}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	v := resp.view(t)
	require.Equal(t, events.Duration(manifestTimeout), v.Timeout)
	require.Equal(t, manifestMaxAttempts, v.MaxAttempts)

	resp = b.submit(t, `{"type": "files.manifest", "input": {"dir": "/srv/data"}, "timeout": "30s", "max_attempts": 1}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	v = resp.view(t)
	require.Equal(t, events.Duration(30*time.Second), v.Timeout, "the request's timeout wins")
	require.Equal(t, 1, v.MaxAttempts, "the request's max_attempts wins")
}

func TestSubmitDurationsInSeconds(t *testing.T) {
	b := setup(t)

	resp := b.submit(t, `{"type": "echo", "timeout": 90, "ttl": 3600}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	v := resp.view(t)
	require.Equal(t, events.Duration(90*time.Second), v.Timeout)
	require.WithinDuration(t, v.Created.Add(time.Hour), v.ExpiresAt, time.Second)
}

func TestSubmitTTLCappedByMaxTTL(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.MaxTTL = time.Hour })

	resp := b.submit(t, `{"type": "echo", "ttl": "48h"}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	v := resp.view(t)
	require.WithinDuration(t, v.Created.Add(time.Hour), v.ExpiresAt, time.Second)

	msg := b.storedMessage(t, v.Sequence)
	require.Equal(t, "3600", msg.Header.Get(bus.HeaderTTL))

	// Without a ttl, the default of 168h is capped too.
	resp = b.submit(t, `{"type": "echo"}`)
	require.Equal(t, http.StatusAccepted, resp.status)
	v = resp.view(t)
	require.WithinDuration(t, v.Created.Add(time.Hour), v.ExpiresAt, time.Second)
}

func TestSubmitUnregisteredTypeAllowed(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.AllowUnregisteredTypes = true })

	resp := b.submit(t, `{"type": "reports.quarterly", "input": {"anything": [1, 2, 3]}}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
	require.Equal(t, "reports.quarterly", resp.view(t).Type)

	// A registered type is still checked against its schema.
	resp = b.submit(t, `{"type": "files.manifest", "input": {}}`)
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)
}

func TestSubmitFollowsSchemaChanges(t *testing.T) {
	b := setup(t)

	resp := b.submit(t, `{"type": "echo", "input": {"message": "hi"}}`)
	require.Equal(t, http.StatusAccepted, resp.status)

	// An executor registers echo again with a schema that needs a number.
	register(t, b.bus, taskType("echo", `{"type": "object", "properties": {"message": {"type": "number"}}}`))
	require.Eventually(t, func() bool {
		resp, err := b.send(b.request(t, http.MethodPost, "/v1/tasks", []byte(`{"type": "echo", "input": {"message": "hi"}}`), "Content-Type", "application/json"))
		return err == nil && resp.status == http.StatusUnprocessableEntity
	}, 5*time.Second, 20*time.Millisecond)

	resp = b.submit(t, `{"type": "echo", "input": {"message": 7}}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
}

func TestSubmitTypeRegisteredLater(t *testing.T) {
	b := setup(t)

	resp := b.submit(t, `{"type": "sleep"}`)
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)

	register(t, b.bus, taskType("sleep", ""))
	require.Eventually(t, func() bool {
		resp, err := b.send(b.request(t, http.MethodPost, "/v1/tasks", []byte(`{"type": "sleep"}`), "Content-Type", "application/json"))
		return err == nil && resp.status == http.StatusAccepted
	}, 5*time.Second, 20*time.Millisecond)
}

func TestSubmitHTMLCharactersNotEscaped(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.MaxInputBytes = 4 << 10 })

	// 4000 '<' would grow to 24000 bytes if they were escaped as \u003c.
	message := strings.Repeat("<", 4000)
	resp := b.submit(t, `{"type": "echo", "input": {"message": "`+message+`"}}`)
	require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)

	te, err := b.bus.ReadEvents(context.Background(), events.DefaultTenant, resp.view(t).ID, 0)
	require.NoError(t, err)
	require.Contains(t, string(te.Events[0].Data), message)
}
