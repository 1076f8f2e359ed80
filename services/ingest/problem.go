package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/handoff-dev/handoff/events"
)

// ContentTypeProblem is the media type of every error response (RFC 9457).
const ContentTypeProblem = "application/problem+json"

// ProblemType names the kind of a [Problem]. Clients branch on it; its
// title and the problem's detail are for people.
type ProblemType string

// Problem types of the v1 API.
const (
	ProblemMalformedJSON         ProblemType = "urn:handoff:problem:malformed-json"
	ProblemUnknownField          ProblemType = "urn:handoff:problem:unknown-field"
	ProblemInvalidRequest        ProblemType = "urn:handoff:problem:invalid-request"
	ProblemNestingTooDeep        ProblemType = "urn:handoff:problem:nesting-too-deep"
	ProblemInvalidTaskID         ProblemType = "urn:handoff:problem:invalid-task-id"
	ProblemInvalidIdempotencyKey ProblemType = "urn:handoff:problem:invalid-idempotency-key"
	ProblemBodyTooLarge          ProblemType = "urn:handoff:problem:body-too-large"
	ProblemInputTooLarge         ProblemType = "urn:handoff:problem:input-too-large"
	ProblemUnsupportedMediaType  ProblemType = "urn:handoff:problem:unsupported-media-type"
	ProblemUnknownTaskType       ProblemType = "urn:handoff:problem:unknown-task-type"
	ProblemInvalidInput          ProblemType = "urn:handoff:problem:invalid-input"
	ProblemInvalidSubmission     ProblemType = "urn:handoff:problem:invalid-submission"
	ProblemIdempotencyKeyReused  ProblemType = "urn:handoff:problem:idempotency-key-reused"
	ProblemNotSupported          ProblemType = "urn:handoff:problem:not-supported"
	ProblemInvalidState          ProblemType = "urn:handoff:problem:invalid-state"
	ProblemInvalidAnswer         ProblemType = "urn:handoff:problem:invalid-answer"
	ProblemNotFound              ProblemType = "urn:handoff:problem:not-found"
	ProblemMethodNotAllowed      ProblemType = "urn:handoff:problem:method-not-allowed"
	ProblemUnavailable           ProblemType = "urn:handoff:problem:unavailable"
	ProblemInternal              ProblemType = "urn:handoff:problem:internal"
	ProblemUnauthorized          ProblemType = "urn:handoff:problem:unauthorized"
	ProblemRateLimited           ProblemType = "urn:handoff:problem:rate-limited"
	ProblemInvalidQuery          ProblemType = "urn:handoff:problem:invalid-query"
	ProblemInvalidSubscription   ProblemType = "urn:handoff:problem:invalid-subscription"
	ProblemInvalidSubscriptionID ProblemType = "urn:handoff:problem:invalid-subscription-id"
	ProblemSubscriptionLimit     ProblemType = "urn:handoff:problem:subscription-limit"
)

var problemTitles = map[ProblemType]string{
	ProblemMalformedJSON:         "Malformed JSON",
	ProblemUnknownField:          "Unknown field",
	ProblemInvalidRequest:        "Invalid request",
	ProblemNestingTooDeep:        "JSON nested too deeply",
	ProblemInvalidTaskID:         "Invalid task id",
	ProblemInvalidIdempotencyKey: "Invalid Idempotency-Key",
	ProblemBodyTooLarge:          "Request body too large",
	ProblemInputTooLarge:         "Input too large",
	ProblemUnsupportedMediaType:  "Unsupported media type",
	ProblemUnknownTaskType:       "Unknown task type",
	ProblemInvalidInput:          "Input does not match the task type's schema",
	ProblemInvalidSubmission:     "Invalid submission",
	ProblemIdempotencyKeyReused:  "Idempotency-Key reused with a different request",
	ProblemNotSupported:          "Not supported",
	ProblemInvalidState:          "The task's status does not allow this request",
	ProblemInvalidAnswer:         "Answer does not match the input schema",
	ProblemNotFound:              "Not found",
	ProblemMethodNotAllowed:      "Method not allowed",
	ProblemUnavailable:           "Service unavailable",
	ProblemInternal:              "Internal server error",
	ProblemInvalidLink:           "Invalid or expired link",
	ProblemUnauthorized:          "Unauthorized",
	ProblemRateLimited:           "Too many submissions",
	ProblemInvalidQuery:          "Invalid query parameter",
	ProblemInvalidSubscription:   "Invalid subscription",
	ProblemInvalidSubscriptionID: "Invalid subscription id",
	ProblemSubscriptionLimit:     "Subscription limit reached",
}

// Title returns the fixed summary of the problem type.
func (t ProblemType) Title() string { return problemTitles[t] }

// Problem is an RFC 9457 problem document, the body of every error
// response.
type Problem struct {
	Type   ProblemType `json:"type"`
	Title  string      `json:"title"`
	Status int         `json:"status"`
	// Detail describes what went wrong with this request, for people.
	Detail string `json:"detail,omitempty"`
	// Instance is the path of the request.
	Instance string `json:"instance,omitempty"`
	// Errors lists each invalid field or input location.
	Errors []ProblemError `json:"errors,omitempty"`
	// TaskStatus is the task's status when a request conflicts with it.
	TaskStatus events.Status `json:"task_status,omitempty"`

	// retryAfter, when positive, is sent as the Retry-After header.
	retryAfter int
	// challenge, when set, is sent as the WWW-Authenticate header.
	challenge string
}

// ProblemError is one invalid part of a request, named by a request field
// such as "max_attempts" or by a JSON pointer into the request body such as
// "/input/dir".
type ProblemError struct {
	Field   string `json:"field,omitempty"`
	Pointer string `json:"pointer,omitempty"`
	Message string `json:"message"`
}

// newProblem returns a problem of type t with status and detail.
func newProblem(t ProblemType, status int, detail string) *Problem {
	return &Problem{Type: t, Title: t.Title(), Status: status, Detail: detail}
}

// writeProblem sends p as the response to r.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	h := w.Header()
	h.Set("Content-Type", ContentTypeProblem)
	h.Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.challenge != "" {
		h.Set("WWW-Authenticate", p.challenge)
	}
	body, err := json.Marshal(p)
	if err != nil {
		// A Problem contains only strings and ints, so this cannot
		// happen. Send the status alone rather than nothing.
		w.WriteHeader(p.Status)
		return
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
