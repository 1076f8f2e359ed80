package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/subscription"
)

// Limits and defaults of the subscription requests.
const (
	// subscriptionBodyBytes bounds the body of a subscription request: a
	// URL of a few KiB, six kinds, a prefix and a description of 256 bytes
	// fit with room to spare.
	subscriptionBodyBytes = 16 << 10

	// DefaultRotationOverlap is how long the secrets in use keep signing
	// after a rotation whose request sets no overlap.
	DefaultRotationOverlap = 24 * time.Hour
)

// subscriptionFields and rotateFields list the fields of the bodies of
// POST /v1/subscriptions and POST /v1/subscriptions/{id}/rotate.
var (
	subscriptionFields = []string{"url", "kinds", "task_type_prefix", "description"}
	rotateFields       = []string{"overlap"}
)

// readJSONBody checks the Content-Type of a request with a body and reads
// the body within limit. An empty body is returned as nil without a
// Content-Type check, so that callers decide whether a body is required.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Problem) {
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
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if p := checkContentType(r.Header.Values("Content-Type")); p != nil {
		return nil, p
	}
	return body, nil
}

// decodeObject checks that body is a UTF-8 JSON object nested at most
// maxDepth levels, without repeated keys or fields outside allowed, and
// returns its fields.
func decodeObject(body []byte, maxDepth int, allowed []string) (map[string]json.RawMessage, *Problem) {
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
	if p := checkActionFields(fields, allowed); p != nil {
		return nil, p
	}
	return fields, nil
}

// decodeSubscriptionBody decodes the body of POST /v1/subscriptions. Every
// problem it returns has status 400: it checks form and JSON types, and
// leaves the values to [subscription.Input.Validate].
func decodeSubscriptionBody(body []byte, maxDepth int) (subscription.Input, *Problem) {
	var in subscription.Input
	if body == nil {
		return in, newProblem(ProblemMalformedJSON, http.StatusBadRequest, `the request body is empty; send a JSON object such as {"url": "https://hooks.example.com/handoff"}`)
	}
	fields, p := decodeObject(body, maxDepth, subscriptionFields)
	if p != nil {
		return in, p
	}

	var errs []ProblemError
	add := func(field, message string) {
		errs = append(errs, ProblemError{Field: field, Message: message})
	}
	decodeField(fields, "url", &in.URL, "must be a string such as \"https://hooks.example.com/handoff\"", add)
	var kinds []string
	decodeField(fields, "kinds", &kinds, `must be an array of event kinds such as ["succeeded", "failed"]`, add)
	for _, k := range kinds {
		in.Kinds = append(in.Kinds, events.Kind(k))
	}
	decodeField(fields, "task_type_prefix", &in.TaskTypePrefix, "must be a string such as \"files\"", add)
	decodeField(fields, "description", &in.Description, "must be a string", add)
	if in.URL == "" && len(errs) == 0 {
		add("url", "is required")
	}
	if len(errs) > 0 {
		p := newProblem(ProblemInvalidRequest, http.StatusBadRequest, fieldsDetail(errs))
		p.Errors = errs
		return in, p
	}
	return in, nil
}

// decodeRotateBody decodes the optional body of POST
// /v1/subscriptions/{id}/rotate and returns the overlap, DefaultRotationOverlap
// when the body sets none. An overlap out of range is a 422 problem.
func decodeRotateBody(body []byte, maxDepth int) (time.Duration, *Problem) {
	if body == nil {
		return DefaultRotationOverlap, nil
	}
	fields, p := decodeObject(body, maxDepth, rotateFields)
	if p != nil {
		return 0, p
	}
	var errs []ProblemError
	add := func(field, message string) {
		errs = append(errs, ProblemError{Field: field, Message: message})
	}
	overlap := events.Duration(DefaultRotationOverlap)
	decodeDuration(fields, "overlap", &overlap, add)
	if len(errs) > 0 {
		p := newProblem(ProblemInvalidRequest, http.StatusBadRequest, fieldsDetail(errs))
		p.Errors = errs
		return 0, p
	}
	if overlap.Std() > subscription.MaxRotationOverlap {
		errs = []ProblemError{{Field: "overlap", Message: fmt.Sprintf("is %s, longer than the maximum of %s", overlap, subscription.MaxRotationOverlap)}}
		p := newProblem(ProblemInvalidSubscription, http.StatusUnprocessableEntity, fieldsDetail(errs))
		p.Errors = errs
		return 0, p
	}
	return overlap.Std(), nil
}
