package subscription

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// MaxDescriptionLen bounds the description of a subscription, in bytes.
const MaxDescriptionLen = 256

// DeliveredKinds are the event kinds that webhooks receive, and so the
// kinds a subscription may select: the terminal kinds and input_required.
var DeliveredKinds = []events.Kind{
	events.KindInputRequired, events.KindSucceeded, events.KindFailed,
	events.KindCancelled, events.KindRejected, events.KindExpired,
}

// Status is the state of a subscription.
type Status string

// Subscription states.
const (
	// StatusActive subscriptions receive events.
	StatusActive Status = "active"
	// StatusDisabled subscriptions receive nothing, because their endpoint
	// responded 410 Gone or an operator disabled them.
	StatusDisabled Status = "disabled"
)

// Input is the request to create a subscription, as an API client sends
// it. Zero values mean the defaults documented on each field.
type Input struct {
	// URL is the endpoint: an absolute http or https URL without
	// credentials or fragment, whose host is not an internal address.
	// Required.
	URL string `json:"url"`

	// Kinds selects the event kinds to deliver, from [DeliveredKinds].
	// Empty means all of them.
	Kinds []events.Kind `json:"kinds,omitempty"`

	// TaskTypePrefix selects task types by their leading tokens: "files"
	// matches the types files and files.manifest but not filesystem.
	// Empty matches every type.
	TaskTypePrefix string `json:"task_type_prefix,omitempty"`

	// Description is a note for people, at most 256 bytes of text.
	Description string `json:"description,omitempty"`
}

// Validate checks in and returns an [events.FieldErrors] that lists every
// invalid field by its JSON name, or nil. guard decides which URL hosts are
// acceptable; see [webhook.Guard.CheckURL].
func (in Input) Validate(guard webhook.Guard) error {
	var errs events.FieldErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, events.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	if in.URL == "" {
		add("url", "is missing; give the endpoint's http or https URL")
	} else if err := guard.CheckURL(in.URL); err != nil {
		add("url", "%s", err)
	}

	seen := map[events.Kind]bool{}
	for i, kind := range in.Kinds {
		field := fmt.Sprintf("kinds[%d]", i)
		switch {
		case !slices.Contains(DeliveredKinds, kind):
			add(field, "%q is not a delivered event kind; use one of %s", kind, kindList(DeliveredKinds))
		case seen[kind]:
			add(field, "%q is listed twice", kind)
		}
		seen[kind] = true
	}

	if in.TaskTypePrefix != "" {
		if err := events.ValidateTaskType(in.TaskTypePrefix); err != nil {
			add("task_type_prefix", "%s", events.TokenFault(err))
		}
	}

	if len(in.Description) > MaxDescriptionLen {
		add("description", "is %d bytes, longer than the maximum of %d", len(in.Description), MaxDescriptionLen)
	} else if !utf8.ValidString(in.Description) {
		add("description", "is not valid UTF-8")
	} else if i := strings.IndexFunc(in.Description, unicode.IsControl); i >= 0 {
		add("description", "contains a control character at byte %d", i)
	}

	if len(errs) == 0 {
		return nil
	}
	return errs
}

// Subscription is a stored subscription as the API shows it. It never
// contains the secret.
type Subscription struct {
	// ID is "sub_" and a ULID, assigned at creation.
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	URL    string `json:"url"`
	// Kinds are the delivered event kinds, in lifecycle order.
	Kinds          []events.Kind `json:"kinds"`
	TaskTypePrefix string        `json:"task_type_prefix,omitempty"`
	Description    string        `json:"description,omitempty"`
	Status         Status        `json:"status"`
	// DisabledReason is the cause of the disabling, such as the
	// endpoint's 410 Gone.
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// PreviousSecretEnds is when the secret before the last rotation stops
	// signing, or nil when only one secret signs.
	PreviousSecretEnds *time.Time `json:"previous_secret_ends,omitempty"`
}

// Created is the result of [Store.Create] and [Store.RotateSecret]: the
// subscription and its new secret, which no other call returns.
type Created struct {
	Subscription
	// Secret is "whsec_" and the base64 of 32 random bytes. Receivers
	// verify the subscription's requests with it.
	Secret string `json:"secret"`
}

// Matches reports whether ev is delivered to s: s is active, belongs to
// the event's tenant, selects its kind and its task type, and was created
// before the event was stored, so that a new subscription receives no
// older events.
func (s *Subscription) Matches(ev *events.Event) bool {
	if s.Status != StatusActive || s.Tenant != ev.Tenant || !slices.Contains(s.Kinds, ev.Kind) {
		return false
	}
	if p := s.TaskTypePrefix; p != "" && ev.TaskType != p && !strings.HasPrefix(ev.TaskType, p+".") {
		return false
	}
	at := ev.Stored
	if at.IsZero() {
		at = ev.Time
	}
	return !at.Before(s.CreatedAt)
}

// normalizeKinds returns kinds in the order of DeliveredKinds, or all of
// DeliveredKinds for none.
func normalizeKinds(kinds []events.Kind) []events.Kind {
	out := make([]events.Kind, 0, len(DeliveredKinds))
	for _, k := range DeliveredKinds {
		if len(kinds) == 0 || slices.Contains(kinds, k) {
			out = append(out, k)
		}
	}
	return out
}

func kindList(kinds []events.Kind) string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = string(k)
	}
	return strings.Join(parts, ", ")
}
