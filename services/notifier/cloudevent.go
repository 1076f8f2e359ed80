package notifier

import (
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/handoff-dev/handoff/events"
)

// Content types of a webhook request.
const (
	contentTypeStructured = "application/cloudevents+json"
	contentTypeJSON       = "application/json"
)

// structuredEvent returns ev as a CloudEvent in the JSON event format, the
// body of a structured-mode HTTP request. The extensions are tenant,
// tasktype, and attempt, traceparent and tracestate when the event sets
// them. The data is the event's data, as JSON.
func structuredEvent(ev *events.Event) ([]byte, error) {
	ce := event.New(event.CloudEventsVersionV1)
	ce.SetID(ev.ID)
	ce.SetSource(ev.Source)
	ce.SetType(ev.Kind.Type())
	ce.SetSubject(ev.TaskID)
	ce.SetTime(ev.Time)
	ce.SetExtension("tenant", ev.Tenant)
	ce.SetExtension("tasktype", ev.TaskType)
	if ev.Attempt > 0 {
		ce.SetExtension("attempt", ev.Attempt)
	}
	if ev.TraceParent != "" {
		ce.SetExtension("traceparent", ev.TraceParent)
	}
	if ev.TraceState != "" {
		ce.SetExtension("tracestate", ev.TraceState)
	}
	if len(ev.Data) > 0 {
		// A json.RawMessage, unlike a []byte, is written as JSON rather
		// than as data_base64.
		if err := ce.SetData(contentTypeJSON, json.RawMessage(ev.Data)); err != nil {
			return nil, fmt.Errorf("encode %s event %s as a CloudEvent: %w", ev.Kind, ev.ID, err)
		}
	}
	if err := ce.Validate(); err != nil {
		return nil, fmt.Errorf("encode %s event %s as a CloudEvent: %w", ev.Kind, ev.ID, err)
	}

	body, err := json.Marshal(ce)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %s as a CloudEvent: %w", ev.Kind, ev.ID, err)
	}
	return body, nil
}
