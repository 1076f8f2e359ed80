package ingest

import (
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/handoff-dev/handoff/events"
)

// structuredEvent returns ev as a CloudEvent in the JSON event format, as
// webhook receivers get it: the attributes, the extensions tenant and
// tasktype, attempt, traceparent and tracestate when the event sets them,
// and the event's data as JSON.
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
		// A json.RawMessage is written as JSON, where a []byte would be
		// written as data_base64.
		if err := ce.SetData(ContentTypeJSON, json.RawMessage(ev.Data)); err != nil {
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
