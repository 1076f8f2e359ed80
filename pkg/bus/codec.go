package bus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/events"
)

// CloudEvents headers of the NATS binary mode. Handoff writes them in lower
// case and reads them in any case.
const (
	HeaderSpecVersion     = "ce-specversion"
	HeaderID              = "ce-id"
	HeaderSource          = "ce-source"
	HeaderType            = "ce-type"
	HeaderSubject         = "ce-subject"
	HeaderTime            = "ce-time"
	HeaderDataContentType = "ce-datacontenttype"
	HeaderTenant          = "ce-tenant"
	HeaderTaskType        = "ce-tasktype"
	HeaderAttempt         = "ce-attempt"
	HeaderTraceParent     = "ce-traceparent"
	HeaderTraceState      = "ce-tracestate"
	HeaderContentType     = "content-type"

	// ContentTypeJSON is the data content type of every Handoff event.
	ContentTypeJSON = "application/json"
	// ContentTypeStructured marks a structured-mode CloudEvent.
	ContentTypeStructured = "application/cloudevents+json"

	specVersion = "1.0"
)

// Encode returns ev as a binary-mode CloudEvent on its subject in
// namespace: every attribute a percent-encoded ce- header, the data as the
// body. It does not set Nats-Msg-Id or any compare-and-set header; the
// append functions do.
func Encode(namespace string, ev *events.Event) *nats.Msg {
	h := make(nats.Header, 14)
	h[HeaderSpecVersion] = []string{specVersion}
	h[HeaderID] = []string{encodeHeaderValue(ev.ID)}
	h[HeaderSource] = []string{encodeHeaderValue(ev.Source)}
	h[HeaderType] = []string{ev.Kind.Type()}
	h[HeaderSubject] = []string{ev.TaskID}
	h[HeaderTime] = []string{ev.Time.UTC().Format(time.RFC3339Nano)}
	h[HeaderTenant] = []string{ev.Tenant}
	h[HeaderTaskType] = []string{ev.TaskType}
	if len(ev.Data) > 0 {
		h[HeaderDataContentType] = []string{ContentTypeJSON}
		h[HeaderContentType] = []string{ContentTypeJSON}
	}
	if ev.Attempt > 0 {
		h[HeaderAttempt] = []string{strconv.Itoa(ev.Attempt)}
	}
	if ev.TraceParent != "" {
		h[HeaderTraceParent] = []string{encodeHeaderValue(ev.TraceParent)}
	}
	if ev.TraceState != "" {
		h[HeaderTraceState] = []string{encodeHeaderValue(ev.TraceState)}
	}
	return &nats.Msg{Subject: ev.Subject(namespace).String(), Header: h, Data: ev.Data}
}

// Decode reads a task event from a NATS message in binary or structured
// mode and checks it against its subject: the kind, tenant, task id and
// task type in the CloudEvent must match the subject's tokens, and may be
// omitted from the CloudEvent (except the type) to take the subject's. The
// error wraps ErrInvalidEvent and names the problem. seq and stored are the
// message's stream sequence and timestamp, or zero.
//
// A message with a Nats-Scheduler header was published by a message
// schedule. It keeps the CloudEvents type of the event that held the
// schedule, and takes the kind of its subject when that is the holder's
// [events.Kind.ScheduleTarget]: a scheduled event becomes submitted, a
// deadline_scheduled event becomes deadline. Any other pairing is invalid.
func Decode(subject string, header nats.Header, data []byte, seq uint64, stored time.Time) (events.Event, error) {
	subj, err := events.ParseSubject(subject)
	if err != nil {
		return events.Event{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}

	var ev events.Event
	if isStructured(header) {
		ev, err = decodeStructured(data)
	} else {
		ev, err = decodeBinary(header, data)
	}
	if err != nil {
		return events.Event{}, fmt.Errorf("%w on %s: %w", ErrInvalidEvent, subject, err)
	}

	if scheduler := headerValue(header, HeaderScheduler); scheduler != "" {
		if err := takeScheduleTarget(&ev, subj, scheduler); err != nil {
			return events.Event{}, fmt.Errorf("%w on %s: %w", ErrInvalidEvent, subject, err)
		}
	}
	if err := matchSubject(&ev, subj); err != nil {
		return events.Event{}, fmt.Errorf("%w on %s: %w", ErrInvalidEvent, subject, err)
	}
	if err := ev.Validate(); err != nil {
		return events.Event{}, fmt.Errorf("%w on %s: %w", ErrInvalidEvent, subject, err)
	}
	ev.Seq = seq
	ev.Stored = stored
	return ev, nil
}

// HeaderScheduler names, on a message that a message schedule published,
// the subject of the event that held the schedule.
const HeaderScheduler = "Nats-Scheduler"

// takeScheduleTarget gives ev, a copy that the message schedule of the
// event on scheduler published on subj, the kind of its subject. The copy
// keeps the CloudEvents type of the holding event, which must hold a
// schedule for that kind, and the holder must be an event of the same
// task.
func takeScheduleTarget(ev *events.Event, subj events.Subject, scheduler string) error {
	target, ok := ev.Kind.ScheduleTarget()
	if !ok || target != subj.Kind {
		return fmt.Errorf("a message published by the schedule of %s has CloudEvents type %q, which holds no schedule of %s events", scheduler, ev.Kind.Type(), subj.Kind)
	}
	holder := subj
	holder.Kind = ev.Kind
	if scheduler != holder.String() {
		return fmt.Errorf("a %s event published by a schedule must come from %s, not %s", subj.Kind, holder, scheduler)
	}
	ev.Kind = target
	return nil
}

// DecodeMsg is [Decode] for a message without stream metadata.
func DecodeMsg(msg *nats.Msg) (events.Event, error) {
	return Decode(msg.Subject, msg.Header, msg.Data, 0, time.Time{})
}

func matchSubject(ev *events.Event, subj events.Subject) error {
	if ev.Kind != subj.Kind {
		return fmt.Errorf("CloudEvents type %q does not match the subject's kind %q", ev.Kind.Type(), subj.Kind)
	}
	if err := matchToken("subject (task id)", &ev.TaskID, subj.TaskID); err != nil {
		return err
	}
	if err := matchToken("tenant", &ev.Tenant, subj.Tenant); err != nil {
		return err
	}
	return matchToken("tasktype", &ev.TaskType, subj.TaskType)
}

func matchToken(name string, attr *string, want string) error {
	if *attr == "" {
		*attr = want
		return nil
	}
	if *attr != want {
		return fmt.Errorf("CloudEvents %s %q does not match the NATS subject's %q", name, *attr, want)
	}
	return nil
}

func isStructured(h nats.Header) bool {
	ct := headerValue(h, HeaderContentType)
	return len(ct) >= len("application/cloudevents") && strings.EqualFold(ct[:len("application/cloudevents")], "application/cloudevents")
}

func decodeBinary(h nats.Header, data []byte) (events.Event, error) {
	var ev events.Event
	var attrs [12]string
	names := [...]string{
		HeaderSpecVersion, HeaderID, HeaderSource, HeaderType, HeaderSubject, HeaderTime,
		HeaderDataContentType, HeaderTenant, HeaderTaskType, HeaderAttempt, HeaderTraceParent, HeaderTraceState,
	}
	for i, name := range names {
		raw := headerValue(h, name)
		if raw == "" {
			continue
		}
		v, err := decodeHeaderValue(raw)
		if err != nil {
			return ev, fmt.Errorf("header %s: %w", name, err)
		}
		attrs[i] = v
	}
	compactAttributes(&attrs)
	const (
		specIdx = iota
		idIdx
		sourceIdx
		typeIdx
		subjectIdx
		timeIdx
		contentTypeIdx
		tenantIdx
		taskTypeIdx
		attemptIdx
		traceParentIdx
		traceStateIdx
	)

	if attrs[specIdx] == "" {
		return ev, fmt.Errorf("missing header %s (binary mode) and content-type is not %s (structured mode)", HeaderSpecVersion, ContentTypeStructured)
	}
	if attrs[specIdx] != specVersion {
		return ev, fmt.Errorf("unsupported CloudEvents specversion %q, want %q", attrs[specIdx], specVersion)
	}
	for _, req := range []int{idIdx, sourceIdx, typeIdx} {
		if attrs[req] == "" {
			return ev, fmt.Errorf("missing required header %s", names[req])
		}
	}

	kind, err := events.KindOfType(attrs[typeIdx])
	if err != nil {
		return ev, err
	}
	ev.ID = attrs[idIdx]
	ev.Source = attrs[sourceIdx]
	ev.Kind = kind
	ev.TaskID = attrs[subjectIdx]
	ev.Tenant = attrs[tenantIdx]
	ev.TaskType = attrs[taskTypeIdx]
	ev.TraceParent = attrs[traceParentIdx]
	ev.TraceState = attrs[traceStateIdx]

	if t := attrs[timeIdx]; t != "" {
		ev.Time, err = time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return ev, fmt.Errorf("header %s: %q is not an RFC 3339 time", HeaderTime, t)
		}
	}
	if a := attrs[attemptIdx]; a != "" {
		ev.Attempt, err = strconv.Atoi(a)
		if err != nil || ev.Attempt < 0 {
			return ev, fmt.Errorf("header %s: %q is not a non-negative integer", HeaderAttempt, a)
		}
	}

	ct := attrs[contentTypeIdx]
	if ct == "" {
		ct = headerValue(h, HeaderContentType)
	}
	if err := checkData(ct, data); err != nil {
		return ev, err
	}
	if len(data) > 0 {
		ev.Data = data
	}
	return ev, nil
}

func decodeStructured(data []byte) (events.Event, error) {
	var ev events.Event
	var ce event.Event
	if err := json.Unmarshal(data, &ce); err != nil {
		return ev, fmt.Errorf("structured-mode body is not a CloudEvent in JSON: %w", err)
	}
	if err := ce.Validate(); err != nil {
		return ev, fmt.Errorf("structured-mode CloudEvent: %w", err)
	}
	if ce.SpecVersion() != specVersion {
		return ev, fmt.Errorf("unsupported CloudEvents specversion %q, want %q", ce.SpecVersion(), specVersion)
	}

	kind, err := events.KindOfType(ce.Type())
	if err != nil {
		return ev, err
	}
	ev.ID = ce.ID()
	ev.Source = ce.Source()
	ev.Kind = kind
	ev.TaskID = ce.Subject()
	ev.Time = ce.Time()

	ext := ce.Extensions()
	if ev.Tenant, err = stringExtension(ext, "tenant"); err != nil {
		return ev, err
	}
	if ev.TaskType, err = stringExtension(ext, "tasktype"); err != nil {
		return ev, err
	}
	if ev.TraceParent, err = stringExtension(ext, "traceparent"); err != nil {
		return ev, err
	}
	if ev.TraceState, err = stringExtension(ext, "tracestate"); err != nil {
		return ev, err
	}
	if v, ok := ext["attempt"]; ok {
		n, err := types.ToInteger(v)
		if err != nil || n < 0 {
			return ev, fmt.Errorf("extension attempt: %v is not a non-negative integer", v)
		}
		ev.Attempt = int(n)
	}

	body := ce.Data()
	if err := checkData(ce.DataContentType(), body); err != nil {
		return ev, err
	}
	if len(body) > 0 {
		ev.Data = body
	}
	return ev, nil
}

func stringExtension(ext map[string]any, name string) (string, error) {
	v, ok := ext[name]
	if !ok {
		return "", nil
	}
	s, err := types.ToString(v)
	if err != nil {
		return "", fmt.Errorf("extension %s: %w", name, err)
	}
	return s, nil
}

// checkData accepts an empty body, or JSON under a JSON content type (or
// none).
func checkData(contentType string, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	if mt != "" && mt != ContentTypeJSON && !strings.HasSuffix(mt, "+json") {
		return fmt.Errorf("data content type %q is not JSON; Handoff events carry application/json data", contentType)
	}
	if !json.Valid(data) {
		return fmt.Errorf("data is not valid JSON")
	}
	return nil
}

// headerValue returns the first value of the header name, matching the key
// case-insensitively when no exact key exists.
func headerValue(h nats.Header, name string) string {
	if v, ok := h[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, name) {
			return v[0]
		}
	}
	return ""
}

// encodeHeaderValue percent-encodes what the CloudEvents NATS binding
// requires: space, double quote, percent and every byte outside printable
// ASCII, as upper-case hex.
func encodeHeaderValue(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func needsEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}

// decodeHeaderValue reverses encodeHeaderValue and rejects malformed escapes
// and invalid UTF-8.
// EncodeStructured returns ev as a CloudEvent in the JSON event format:
// the body of a structured-mode HTTP request, as webhook receivers and the
// event stream get it. The extensions are tenant and tasktype, and
// attempt, traceparent and tracestate when the event sets them.
func EncodeStructured(ev *events.Event) ([]byte, error) {
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

// compactAttributes copies the attribute values into one string of their
// own. Header values are substrings of the message's whole header block.
// Without the copy, an event that outlives its message, such as the task
// of a running attempt, keeps the whole block alive, which measured about
// a kilobyte more per task than the values themselves.
func compactAttributes(attrs *[12]string) {
	n := 0
	for _, a := range attrs {
		n += len(a)
	}
	var b strings.Builder
	b.Grow(n)
	for _, a := range attrs {
		b.WriteString(a)
	}
	all := b.String()
	for i, a := range attrs {
		attrs[i], all = all[:len(a)], all[len(a):]
	}
}

func decodeHeaderValue(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("value is not valid UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated percent escape in %q", s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("invalid percent escape %q in %q", s[i:i+3], s)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("value is not valid UTF-8 after percent-decoding")
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
