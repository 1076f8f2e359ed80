package notifier

import (
	"encoding/json"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

func TestEndpointRedacted(t *testing.T) {
	tests := []struct {
		url      string
		redacted string
		origin   string
	}{
		{"https://hooks.example.com/a/b?token=s3cr3t&x=1", "https://hooks.example.com/a/b", "https://hooks.example.com"},
		{"http://127.0.0.1:8080/hook?", "http://127.0.0.1:8080/hook", "http://127.0.0.1:8080"},
		{"https://user:pw@example.com/h#frag", "https://example.com/h", "https://example.com"},
		{"https://[2001:db8::1]:8443/h?k=v", "https://[2001:db8::1]:8443/h", "https://[2001:db8::1]:8443"},
		{"://bad", "(invalid URL)", "(invalid URL)"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			ep := Endpoint{URL: tt.url}
			require.Equal(t, tt.redacted, ep.Redacted())
			require.Equal(t, tt.origin, ep.Origin())
		})
	}
}

func newTestEvent(t *testing.T, kind events.Kind, data any) events.Event {
	t.Helper()
	ev, err := events.NewEvent(kind, "acme", "01JZ3K6Q4W8V0N2P5R7T9X1Y3B", "files.manifest", "/handoff/executor/e1", data)
	require.NoError(t, err)
	return ev
}

func TestStructuredEventRoundTrip(t *testing.T) {
	ev := newTestEvent(t, events.KindSucceeded, events.Succeeded{Result: json.RawMessage(`{"files":[1,2,3],"name":"a b"}`)})
	ev.Attempt = 2
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev.TraceState = "vendor=a%b"

	body, err := bus.EncodeStructured(&ev)
	require.NoError(t, err)

	// The Handoff decoder reads it back as the same event.
	header := nats.Header{"content-type": {contentTypeStructured}}
	got, err := bus.Decode(ev.Subject(events.DefaultNamespace).String(), header, body, 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, ev.ID, got.ID)
	require.Equal(t, ev.Source, got.Source)
	require.Equal(t, ev.Kind, got.Kind)
	require.Equal(t, ev.TaskID, got.TaskID)
	require.Equal(t, ev.Tenant, got.Tenant)
	require.Equal(t, ev.TaskType, got.TaskType)
	require.True(t, ev.Time.Equal(got.Time), "time %s, want %s", got.Time, ev.Time)
	require.Equal(t, 2, got.Attempt)
	require.Equal(t, ev.TraceParent, got.TraceParent)
	require.Equal(t, ev.TraceState, got.TraceState)
	require.JSONEq(t, string(ev.Data), string(got.Data))

	// The data is JSON, not data_base64.
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &raw))
	require.JSONEq(t, `{"result":{"files":[1,2,3],"name":"a b"}}`, string(raw["data"]))
	require.NotContains(t, raw, "data_base64")
	require.JSONEq(t, `"application/json"`, string(raw["datacontenttype"]))
	require.JSONEq(t, `2`, string(raw["attempt"]))

	// The CloudEvents SDK accepts it.
	var ce cloudevents.Event
	require.NoError(t, json.Unmarshal(body, &ce))
	require.NoError(t, ce.Validate())
	require.Equal(t, "dev.handoff.task.succeeded", ce.Type())
}

func TestStructuredEventWithoutData(t *testing.T) {
	ev := newTestEvent(t, events.KindExpired, nil)

	body, err := bus.EncodeStructured(&ev)
	require.NoError(t, err)

	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &raw))
	require.NotContains(t, raw, "data")
	require.NotContains(t, raw, "datacontenttype")
	require.NotContains(t, raw, "attempt")
	require.NotContains(t, raw, "traceparent")
	require.JSONEq(t, `"acme"`, string(raw["tenant"]))
	require.JSONEq(t, `"files.manifest"`, string(raw["tasktype"]))
}
