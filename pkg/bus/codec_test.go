package bus_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

const subjectSubmitted = "handoff.task.acme.01J0TASK.submitted.files.manifest"

func TestEncodeDecodeRoundTrip(t *testing.T) {
	ev := events.Event{
		ID:          "01J0EVENT",
		Source:      "/agents/planner with spaces/%\"quoted\"/é",
		Kind:        events.KindSubmitted,
		TaskID:      "01J0TASK",
		Tenant:      "acme",
		TaskType:    "files.manifest",
		Time:        time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC),
		Attempt:     2,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:  "vendor=a b",
		Data:        json.RawMessage(`{"input":{"dir":"."}}`),
	}
	msg := bus.Encode("handoff", &ev)
	require.Equal(t, subjectSubmitted, msg.Subject)
	require.Equal(t, "1.0", msg.Header.Get("ce-specversion"))
	require.Equal(t, "dev.handoff.task.submitted", msg.Header.Get("ce-type"))
	require.Equal(t, "application/json", msg.Header.Get("content-type"))
	require.Equal(t, "/agents/planner%20with%20spaces/%25%22quoted%22/%C3%A9", msg.Header.Get("ce-source"))
	require.Equal(t, "vendor=a%20b", msg.Header.Get("ce-tracestate"))

	got, err := bus.Decode(msg.Subject, msg.Header, msg.Data, 7, time.Time{})
	require.NoError(t, err)
	ev.Seq = 7
	require.Equal(t, ev, got)
}

func TestEncodeStructuredRoundTrip(t *testing.T) {
	ev := events.Event{
		ID:          "01J0EVENT",
		Source:      "/handoff/executor/e1",
		Kind:        events.KindSucceeded,
		TaskID:      "01J0TASK",
		Tenant:      "acme",
		TaskType:    "files.manifest",
		Time:        time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC),
		Attempt:     2,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Data:        json.RawMessage(`{"result":{"files":3}}`),
	}
	body, err := bus.EncodeStructured(&ev)
	require.NoError(t, err)

	var fields map[string]any
	require.NoError(t, json.Unmarshal(body, &fields))
	require.Equal(t, "1.0", fields["specversion"])
	require.Equal(t, "dev.handoff.task.succeeded", fields["type"])
	require.Equal(t, map[string]any{"result": map[string]any{"files": 3.0}}, fields["data"], "data is JSON, not data_base64")

	h := nats.Header{"Content-Type": []string{bus.ContentTypeStructured}}
	got, err := bus.Decode("handoff.task.acme.01J0TASK.succeeded.files.manifest", h, body, 9, time.Time{})
	require.NoError(t, err)
	require.Equal(t, ev.ID, got.ID)
	require.Equal(t, ev.Source, got.Source)
	require.Equal(t, ev.Kind, got.Kind)
	require.Equal(t, ev.Attempt, got.Attempt)
	require.Equal(t, ev.TraceParent, got.TraceParent)
	require.True(t, ev.Time.Equal(got.Time))
	require.JSONEq(t, string(ev.Data), string(got.Data))
}

func TestDecodeStructured(t *testing.T) {
	body := `{
		"specversion": "1.0",
		"id": "agent-42",
		"source": "urn:agent:planner",
		"type": "dev.handoff.task.submitted",
		"subject": "01J0TASK",
		"time": "2026-12-04T10:00:00Z",
		"datacontenttype": "application/json",
		"tenant": "acme",
		"tasktype": "files.manifest",
		"attempt": 1,
		"data": {"input": {"dir": "."}}
	}`
	h := nats.Header{"Content-Type": []string{"application/cloudevents+json; charset=utf-8"}}
	got, err := bus.Decode(subjectSubmitted, h, []byte(body), 3, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "agent-42", got.ID)
	require.Equal(t, "urn:agent:planner", got.Source)
	require.Equal(t, events.KindSubmitted, got.Kind)
	require.Equal(t, "acme", got.Tenant)
	require.Equal(t, "files.manifest", got.TaskType)
	require.Equal(t, 1, got.Attempt)
	require.JSONEq(t, `{"input":{"dir":"."}}`, string(got.Data))
	require.Equal(t, time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), got.Time.UTC())
}

func TestDecodeStructuredTakesTokensFromSubject(t *testing.T) {
	body := `{"specversion":"1.0","id":"e1","source":"urn:x","type":"dev.handoff.task.submitted","data":{"input":{}}}`
	h := nats.Header{"content-type": []string{"application/cloudevents+json"}}
	got, err := bus.Decode(subjectSubmitted, h, []byte(body), 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "01J0TASK", got.TaskID)
	require.Equal(t, "acme", got.Tenant)
	require.Equal(t, "files.manifest", got.TaskType)
}

func TestDecodeBinaryAnyHeaderCase(t *testing.T) {
	h := nats.Header{
		"Ce-Specversion": []string{"1.0"},
		"Ce-Id":          []string{"e1"},
		"Ce-Source":      []string{"urn:x"},
		"Ce-Type":        []string{"dev.handoff.task.submitted"},
		"Content-Type":   []string{"application/json"},
	}
	got, err := bus.Decode(subjectSubmitted, h, []byte(`{"input":{}}`), 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, "e1", got.ID)
	require.Equal(t, "01J0TASK", got.TaskID)
}

func TestDecodeRejects(t *testing.T) {
	binary := func(mut func(nats.Header)) nats.Header {
		h := nats.Header{
			"ce-specversion": []string{"1.0"},
			"ce-id":          []string{"e1"},
			"ce-source":      []string{"urn:x"},
			"ce-type":        []string{"dev.handoff.task.submitted"},
		}
		mut(h)
		return h
	}
	structured := nats.Header{"content-type": []string{"application/cloudevents+json"}}

	cases := []struct {
		name    string
		subject string
		header  nats.Header
		data    string
		want    string
	}{
		{"no headers", subjectSubmitted, nil, `{}`, "missing header ce-specversion"},
		{"bad subject", "handoff.task.acme", binary(func(nats.Header) {}), `{}`, "fewer than 6 tokens"},
		{"spec version", subjectSubmitted, binary(func(h nats.Header) { h["ce-specversion"] = []string{"0.3"} }), `{}`, `specversion "0.3"`},
		{"missing id", subjectSubmitted, binary(func(h nats.Header) { delete(h, "ce-id") }), `{}`, "missing required header ce-id"},
		{"missing source", subjectSubmitted, binary(func(h nats.Header) { delete(h, "ce-source") }), `{}`, "missing required header ce-source"},
		{"foreign type", subjectSubmitted, binary(func(h nats.Header) { h["ce-type"] = []string{"com.example.order"} }), `{}`, `does not start with "dev.handoff.task."`},
		{"unknown kind", subjectSubmitted, binary(func(h nats.Header) { h["ce-type"] = []string{"dev.handoff.task.exploded"} }), `{}`, "unknown event kind"},
		{"kind mismatch", subjectSubmitted, binary(func(h nats.Header) { h["ce-type"] = []string{"dev.handoff.task.succeeded"} }), `{}`, `does not match the subject's kind "submitted"`},
		{"tenant mismatch", subjectSubmitted, binary(func(h nats.Header) { h["ce-tenant"] = []string{"other"} }), `{}`, `tenant "other" does not match`},
		{"task id mismatch", subjectSubmitted, binary(func(h nats.Header) { h["ce-subject"] = []string{"other"} }), `{}`, `task id) "other" does not match`},
		{"bad time", subjectSubmitted, binary(func(h nats.Header) { h["ce-time"] = []string{"yesterday"} }), `{}`, "not an RFC 3339 time"},
		{"bad attempt", subjectSubmitted, binary(func(h nats.Header) { h["ce-attempt"] = []string{"-1"} }), `{}`, "not a non-negative integer"},
		{"bad escape", subjectSubmitted, binary(func(h nats.Header) { h["ce-source"] = []string{"urn:%G1"} }), `{}`, "invalid percent escape"},
		{"truncated escape", subjectSubmitted, binary(func(h nats.Header) { h["ce-source"] = []string{"urn:%4"} }), `{}`, "truncated percent escape"},
		{"invalid utf-8", subjectSubmitted, binary(func(h nats.Header) { h["ce-source"] = []string{"urn:%FF"} }), `{}`, "not valid UTF-8"},
		{"id with dot", subjectSubmitted, binary(func(h nats.Header) { h["ce-id"] = []string{"a.b"} }), `{}`, "event id"},
		{"data not json", subjectSubmitted, binary(func(nats.Header) {}), `not json`, "data is not valid JSON"},
		{"data not json type", subjectSubmitted, binary(func(h nats.Header) { h["content-type"] = []string{"text/plain"} }), `{}`, `data content type "text/plain" is not JSON`},
		{"structured garbage", subjectSubmitted, structured, `{"specversion":`, "not a CloudEvent in JSON"},
		{"structured missing id", subjectSubmitted, structured, `{"specversion":"1.0","source":"urn:x","type":"dev.handoff.task.submitted"}`, "id"},
		{"structured kind mismatch", subjectSubmitted, structured, `{"specversion":"1.0","id":"e","source":"urn:x","type":"dev.handoff.task.started"}`, "does not match the subject's kind"},
		{"structured bad attempt", subjectSubmitted, structured, `{"specversion":"1.0","id":"e","source":"urn:x","type":"dev.handoff.task.submitted","attempt":"x"}`, "attempt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bus.Decode(tc.subject, tc.header, []byte(tc.data), 0, time.Time{})
			require.ErrorIs(t, err, bus.ErrInvalidEvent)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func FuzzDecode(f *testing.F) {
	ev, err := events.NewEvent(events.KindSubmitted, "acme", "01J0TASK", "files.manifest", "/handoff/ingest", events.Submission{Input: json.RawMessage(`{"a":1}`)})
	require.NoError(f, err)
	msg := bus.Encode("handoff", &ev)
	f.Add(msg.Subject, "ce-source", msg.Header.Get("ce-source"), "", string(msg.Data))
	f.Add(subjectSubmitted, "ce-source", "%41%", "application/cloudevents+json", `{"specversion":"1.0","id":"e","source":"s","type":"dev.handoff.task.submitted","data":{}}`)
	f.Add("handoff.task.a.b.progress.c", "ce-type", "dev.handoff.task.progress", "", `{"percent":1e400}`)

	f.Fuzz(func(t *testing.T, subject, key, value, contentType, data string) {
		h := nats.Header{}
		for k, v := range msg.Header {
			h[k] = v
		}
		h[key] = []string{value}
		if contentType != "" {
			h["content-type"] = []string{contentType}
		}
		got, err := bus.Decode(subject, h, []byte(data), 1, time.Time{})
		if err != nil {
			require.ErrorIs(t, err, bus.ErrInvalidEvent)
			return
		}
		// Whatever decodes is a valid event that survives a round trip.
		require.NoError(t, got.Validate())
		again, err := bus.Decode(subject, bus.Encode(strings.SplitN(subject, ".", 2)[0], &got).Header, got.Data, 1, time.Time{})
		require.NoError(t, err)
		require.Equal(t, got.ID, again.ID)
		require.Equal(t, got.Source, again.Source)
		require.Equal(t, got.Kind, again.Kind)
	})
}

func BenchmarkEncode(b *testing.B) {
	ev, err := events.NewEvent(events.KindSucceeded, "acme", "01J0TASK", "files.manifest", "/handoff/executor/x", events.Succeeded{Result: json.RawMessage(`{"files":[]}`)})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		bus.Encode("handoff", &ev)
	}
}

func BenchmarkDecodeBinary(b *testing.B) {
	ev, err := events.NewEvent(events.KindSucceeded, "acme", "01J0TASK", "files.manifest", "/handoff/executor/x", events.Succeeded{Result: json.RawMessage(`{"files":[]}`)})
	require.NoError(b, err)
	msg := bus.Encode("handoff", &ev)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Decode(msg.Subject, msg.Header, msg.Data, 1, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
