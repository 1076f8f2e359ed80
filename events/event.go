package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// MaxEventIDLen bounds an event id. Ids travel as Nats-Msg-Id and as the
// webhook-id header, so they are printable ASCII without spaces or dots.
const MaxEventIDLen = 128

// Event is one task event: the CloudEvents attributes Handoff uses, the data
// as raw JSON, and where the event sits in the stream.
type Event struct {
	// ID is the CloudEvents id, unique per event. Handoff writes ULIDs.
	ID string
	// Source is the CloudEvents source: the writer, such as /handoff/ingest.
	Source string
	Kind   Kind
	// TaskID is the CloudEvents subject.
	TaskID   string
	Tenant   string
	TaskType string
	// Time is when the writer created the event.
	Time time.Time
	// Attempt is the attempt the event belongs to, or 0 for none.
	Attempt     int
	TraceParent string
	TraceState  string
	// Data is the event's JSON data, or nil when the kind carries none.
	Data json.RawMessage

	// Seq is the event's stream sequence, or 0 before it is stored.
	Seq uint64
	// Stored is the stream's timestamp of the event, or zero before it is
	// stored.
	Stored time.Time
}

// NewEvent returns an event of kind for a task with a fresh ULID id and the
// current time. data is encoded as JSON; nil leaves the data empty.
func NewEvent(kind Kind, tenant, taskID, taskType, source string, data any) (Event, error) {
	ev := Event{
		ID:       NewID(),
		Source:   source,
		Kind:     kind,
		TaskID:   taskID,
		Tenant:   tenant,
		TaskType: taskType,
		Time:     time.Now().UTC(),
	}
	if data != nil {
		b, err := EncodeData(data)
		if err != nil {
			return Event{}, fmt.Errorf("encode %s data: %w", kind, err)
		}
		ev.Data = b
	}
	return ev, nil
}

// EncodeData encodes v as compact JSON without escaping <, > and &. The
// escaping of encoding/json's Marshal, which also applies to a
// json.RawMessage inside v, would make such text up to six times larger in
// an event than in the request or the handler's output.
func EncodeData(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// NewID returns a new ULID string: 26 characters, ordered by creation time,
// with 80 random bits.
func NewID() string {
	return ulid.Make().String()
}

// Subject returns the subject the event is stored on.
func (e *Event) Subject(namespace string) Subject {
	return Subject{Namespace: namespace, Tenant: e.Tenant, TaskID: e.TaskID, Kind: e.Kind, TaskType: e.TaskType}
}

// Validate checks the attributes of e and returns an error that names the
// first invalid one. It does not look at the data; [Task.Apply] does.
func (e *Event) Validate() error {
	if err := ValidateEventID(e.ID); err != nil {
		return err
	}
	if e.Source == "" {
		return fmt.Errorf("event source is empty")
	}
	if !e.Kind.Valid() {
		return fmt.Errorf("%w: %q", ErrUnknownKind, e.Kind)
	}
	if err := ValidateTenant(e.Tenant); err != nil {
		return err
	}
	if err := ValidateTaskID(e.TaskID); err != nil {
		return err
	}
	if err := ValidateTaskType(e.TaskType); err != nil {
		return err
	}
	if e.Attempt < 0 {
		return fmt.Errorf("event attempt %d is negative", e.Attempt)
	}
	if len(e.Data) > 0 && !json.Valid(e.Data) {
		return fmt.Errorf("%w: %s data is not valid JSON", ErrInvalidData, e.Kind)
	}
	return nil
}

// ValidateEventID checks an event id: 1 to 128 printable ASCII characters
// without spaces or dots.
func ValidateEventID(id string) error {
	if id == "" {
		return fmt.Errorf("event id is empty")
	}
	if len(id) > MaxEventIDLen {
		return fmt.Errorf("event id is %d bytes, longer than the maximum of %d", len(id), MaxEventIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return fmt.Errorf("event id %s contains %q; allowed are printable ASCII characters other than space and '.'", strconv.Quote(id), c)
		}
	}
	return nil
}

// DecodeData decodes the event's data into v and wraps any error in
// ErrInvalidData with the kind.
func (e *Event) DecodeData(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("%w: %s event has no data", ErrInvalidData, e.Kind)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidData, e.Kind, err)
	}
	return nil
}
