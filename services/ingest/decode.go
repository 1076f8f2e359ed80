package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/handoff-dev/handoff/events"
)

// submitRequest is the decoded body of POST /v1/tasks: the task type and
// the submission exactly as the client sent it, with a missing or null
// input turned into the empty object.
type submitRequest struct {
	Type       string
	Submission events.Submission
}

// submitFields lists the fields of a submission request in the order the
// API documents them.
var submitFields = []string{"type", "input", "timeout", "max_attempts", "deadline", "ttl", "run_at", "webhook", "metadata"}

// maxEchoedValueBytes bounds how much of a rejected value an error message
// repeats back.
const maxEchoedValueBytes = 80

// readSubmitBody checks the request's Content-Type and reads its body
// within the configured limit.
func (s *Server) readSubmitBody(w http.ResponseWriter, r *http.Request) ([]byte, *Problem) {
	if p := checkContentType(r.Header.Values("Content-Type")); p != nil {
		return nil, p
	}

	limit := int64(s.cfg.MaxBodyBytes)
	if r.ContentLength > limit {
		return nil, bodyTooLarge(r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, bodyTooLarge(-1, limit)
	}
	if err != nil {
		return nil, newProblem(ProblemInvalidRequest, http.StatusBadRequest, fmt.Sprintf("reading the request body failed: %v", err))
	}
	return body, nil
}

func bodyTooLarge(size, limit int64) *Problem {
	detail := fmt.Sprintf("the request body is larger than the limit of %d bytes", limit)
	if size >= 0 {
		detail = fmt.Sprintf("the request body is %d bytes, larger than the limit of %d bytes", size, limit)
	}
	return newProblem(ProblemBodyTooLarge, http.StatusRequestEntityTooLarge, detail)
}

// checkContentType accepts application/json and any application/*+json
// type, with an optional charset parameter that must be UTF-8.
func checkContentType(values []string) *Problem {
	unsupported := func(detail string) *Problem {
		return newProblem(ProblemUnsupportedMediaType, http.StatusUnsupportedMediaType, detail+"; send the body as JSON with Content-Type: application/json")
	}
	if len(values) == 0 {
		return unsupported("the request has no Content-Type")
	}
	if len(values) > 1 {
		return unsupported("the request has more than one Content-Type")
	}
	mediaType, params, err := mime.ParseMediaType(values[0])
	if err != nil {
		return unsupported(fmt.Sprintf("Content-Type %q is invalid", values[0]))
	}
	if mediaType != "application/json" && !(strings.HasPrefix(mediaType, "application/") && strings.HasSuffix(mediaType, "+json")) {
		return unsupported(fmt.Sprintf("Content-Type %q is not supported", mediaType))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupported(fmt.Sprintf("charset %q is not supported; JSON must be UTF-8", cs))
	}
	return nil
}

// decodeSubmitBody decodes a submission request. Every problem it returns
// has status 400 or 413: it checks form and JSON types, and leaves value
// ranges and the task type's schema to later steps.
func decodeSubmitBody(body []byte, maxInputBytes, maxDepth int) (*submitRequest, *Problem) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newProblem(ProblemMalformedJSON, http.StatusBadRequest, `the request body is empty; send a JSON object such as {"type": "echo", "input": {}}`)
	}
	if offset, ok := invalidUTF8(body); ok {
		return nil, newProblem(ProblemMalformedJSON, http.StatusBadRequest, fmt.Sprintf("the request body is not valid UTF-8 at byte offset %d", offset))
	}
	if offset, ok := tooDeep(body, maxDepth); ok {
		return nil, newProblem(ProblemNestingTooDeep, http.StatusBadRequest, fmt.Sprintf("the request body nests arrays and objects deeper than the limit of %d levels, at byte offset %d", maxDepth, offset))
	}

	var fields map[string]json.RawMessage
	if p := unmarshalObject(body, &fields); p != nil {
		return nil, p
	}
	if p := checkUnknownFields(fields); p != nil {
		return nil, p
	}

	req := &submitRequest{}
	input, p := decodeInput(fields["input"], maxInputBytes)
	if p != nil {
		return nil, p
	}
	req.Submission.Input = input

	var errs []ProblemError
	add := func(field, message string) {
		errs = append(errs, ProblemError{Field: field, Message: message})
	}
	decodeField(fields, "type", &req.Type, "must be a string such as \"files.manifest\"", add)
	if req.Type == "" && len(errs) == 0 {
		add("type", "is required")
	}
	decodeDuration(fields, "timeout", &req.Submission.Timeout, add)
	decodeField(fields, "max_attempts", &req.Submission.MaxAttempts, "must be an integer", add)
	decodeTime(fields, "deadline", &req.Submission.Deadline, add)
	decodeDuration(fields, "ttl", &req.Submission.TTL, add)
	decodeTime(fields, "run_at", &req.Submission.RunAt, add)
	decodeWebhook(fields, &req.Submission.Webhook, add)
	decodeField(fields, "metadata", &req.Submission.Metadata, "must be an object whose values are strings", add)
	if len(errs) > 0 {
		p := newProblem(ProblemInvalidRequest, http.StatusBadRequest, fieldsDetail(errs))
		p.Errors = errs
		return nil, p
	}
	return req, nil
}

// unmarshalObject decodes body as one JSON object into fields.
func unmarshalObject(body []byte, fields *map[string]json.RawMessage) *Problem {
	err := json.Unmarshal(body, fields)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return newProblem(ProblemMalformedJSON, http.StatusBadRequest, fmt.Sprintf("the request body is not valid JSON: %s, at byte offset %d", syntaxErr, syntaxErr.Offset))
	case errors.As(err, &typeErr):
		return newProblem(ProblemInvalidRequest, http.StatusBadRequest, fmt.Sprintf("the request body must be a JSON object, not %s %s", article(typeErr.Value), typeErr.Value))
	case err != nil:
		return newProblem(ProblemMalformedJSON, http.StatusBadRequest, fmt.Sprintf("the request body is not valid JSON: %v", err))
	case *fields == nil:
		return newProblem(ProblemInvalidRequest, http.StatusBadRequest, "the request body must be a JSON object, not null")
	}
	if pointer, ok := duplicateKey(body); ok {
		return newProblem(ProblemMalformedJSON, http.StatusBadRequest, fmt.Sprintf("the request body repeats the key at %s; a JSON object must not name a key twice, because readers disagree on which value counts", pointer))
	}
	return nil
}

// jsonFrame is an object or array being read by duplicateKey.
type jsonFrame struct {
	object  bool
	wantKey bool
	seen    map[string]struct{}
	key     string
	index   int
}

// duplicateKey returns the JSON pointer of the first key that an object in
// b repeats. Go's decoder keeps the last value and a schema validator sees
// only that one, while other readers take the first, so a repeated key could
// carry a value past validation. b must be valid JSON.
func duplicateKey(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*jsonFrame
	var path []string

	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.object {
			top.wantKey = true
		} else {
			top.index++
		}
	}
	pop := func() {
		stack = stack[:len(stack)-1]
		if len(stack) > 0 {
			path = path[:len(path)-1]
		}
		valueDone()
	}

	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}

		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				pop()
				continue
			}
			key, _ := tok.(string)
			if _, dup := top.seen[key]; dup {
				return jsonPointer(append(path, key)), true
			}
			top.seen[key] = struct{}{}
			top.wantKey = false
			top.key = key
			continue
		}

		d, isDelim := tok.(json.Delim)
		switch {
		case isDelim && (d == '{' || d == '['):
			if top != nil {
				name := top.key
				if !top.object {
					name = strconv.Itoa(top.index)
				}
				path = append(path, name)
			}
			stack = append(stack, &jsonFrame{object: d == '{', wantKey: d == '{', seen: map[string]struct{}{}})
		case isDelim:
			pop()
		default:
			valueDone()
		}
		if len(stack) == 0 && !dec.More() {
			return "", false
		}
	}
}

func article(jsonType string) string {
	if jsonType == "array" {
		return "an"
	}
	return "a"
}

// checkUnknownFields rejects fields outside submitFields, and fields inside
// webhook other than url, naming all of them.
func checkUnknownFields(fields map[string]json.RawMessage) *Problem {
	// Each unknown field is a path of names: any string can be a name, so
	// errors locate them by JSON pointer.
	var unknown [][]string
	for name := range fields {
		if !slices.Contains(submitFields, name) {
			unknown = append(unknown, []string{name})
		}
	}
	var webhook map[string]json.RawMessage
	if json.Unmarshal(fields["webhook"], &webhook) == nil {
		for name := range webhook {
			if name != "url" {
				unknown = append(unknown, []string{"webhook", name})
			}
		}
	}
	if len(unknown) == 0 {
		return nil
	}

	slices.SortFunc(unknown, slices.Compare)
	quoted := make([]string, len(unknown))
	errs := make([]ProblemError, len(unknown))
	for i, path := range unknown {
		quoted[i] = fmt.Sprintf("%q", strings.Join(path, "."))
		errs[i] = ProblemError{Pointer: jsonPointer(path), Message: "is not a field of a task submission"}
	}
	noun := "field"
	if len(unknown) > 1 {
		noun = "fields"
	}
	p := newProblem(ProblemUnknownField, http.StatusBadRequest, fmt.Sprintf("unknown %s %s; a task submission has the fields %s, and webhook has only url",
		noun, strings.Join(quoted, ", "), strings.Join(submitFields, ", ")))
	p.Errors = errs
	return p
}

// decodeInput returns the input compacted, or the empty object when it is
// missing or null, and rejects an input larger than maxInputBytes.
func decodeInput(raw json.RawMessage, maxInputBytes int) (json.RawMessage, *Problem) {
	if isNull(raw) {
		return json.RawMessage(`{}`), nil
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		// The body as a whole was valid JSON, so its parts are too.
		return nil, newProblem(ProblemMalformedJSON, http.StatusBadRequest, fmt.Sprintf("input is not valid JSON: %v", err))
	}
	if buf.Len() > maxInputBytes {
		return nil, newProblem(ProblemInputTooLarge, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("input is %d bytes without whitespace, larger than the limit of %d bytes; store large inputs elsewhere and pass a reference", buf.Len(), maxInputBytes))
	}
	return buf.Bytes(), nil
}

// isNull reports whether a field is missing or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// decodeField decodes fields[name] into dst unless it is missing or null,
// and reports message for the field when the JSON type does not fit.
func decodeField[T any](fields map[string]json.RawMessage, name string, dst *T, message string, add func(field, message string)) {
	raw := fields[name]
	if isNull(raw) {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		add(name, message)
	}
}

func decodeDuration(fields map[string]json.RawMessage, name string, dst *events.Duration, add func(field, message string)) {
	raw := fields[name]
	if isNull(raw) {
		return
	}
	err := json.Unmarshal(raw, dst)
	if err == nil {
		return
	}
	if len(raw) > maxEchoedValueBytes || (raw[0] != '"' && (raw[0] < '0' || raw[0] > '9') && raw[0] != '-') {
		add(name, `must be a Go duration string such as "90s", "10m" or "2h30m", or a number of seconds`)
		return
	}
	add(name, err.Error())
}

func decodeTime(fields map[string]json.RawMessage, name string, dst **time.Time, add func(field, message string)) {
	raw := fields[name]
	if isNull(raw) {
		return
	}
	var t time.Time
	if err := json.Unmarshal(raw, &t); err != nil {
		add(name, "must be an RFC 3339 date-time string such as \"2030-01-02T15:04:05Z\"")
		return
	}
	*dst = &t
}

// decodeWebhook decodes the webhook object. Its unknown fields were
// already rejected, and an empty url is left to [events.Submission.Validate].
func decodeWebhook(fields map[string]json.RawMessage, dst **events.Webhook, add func(field, message string)) {
	raw := fields["webhook"]
	if isNull(raw) {
		return
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		add("webhook", `must be an object such as {"url": "https://example.com/hook"}`)
		return
	}
	wh := &events.Webhook{}
	decodeField(obj, "url", &wh.URL, "must be a string", func(_, message string) { add("webhook.url", message) })
	*dst = wh
}

// fieldsDetail summarises field errors in one sentence for the problem's
// detail.
func fieldsDetail(errs []ProblemError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		name := e.Field
		if name == "" {
			name = e.Pointer
		}
		parts[i] = name + ": " + e.Message
	}
	return strings.Join(parts, "; ")
}

// invalidUTF8 returns the offset of the first byte of b that is not part
// of valid UTF-8.
func invalidUTF8(b []byte) (int, bool) {
	if utf8.Valid(b) {
		return 0, false
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i, true
		}
		i += size
	}
	return 0, false
}

// tooDeep returns the offset of the first '[' or '{' outside a string that
// opens nesting level maxDepth+1. It reads any bytes, valid JSON or not, so
// it can run before the decoder and bound the decoder's recursion.
func tooDeep(b []byte, maxDepth int) (int, bool) {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > maxDepth {
				return i, true
			}
		case ']', '}':
			depth--
		}
	}
	return 0, false
}

// jsonPointer encodes a path of names as an RFC 6901 JSON pointer.
func jsonPointer(path []string) string {
	var b strings.Builder
	for _, name := range path {
		b.WriteByte('/')
		name = strings.ReplaceAll(name, "~", "~0")
		b.WriteString(strings.ReplaceAll(name, "/", "~1"))
	}
	return b.String()
}
