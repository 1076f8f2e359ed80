package events_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

var testNow = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func timePtr(t time.Time) *time.Time { return &t }

// validSubmission returns a submission with every field set to a valid
// value, relative to testNow.
func validSubmission() events.Submission {
	return events.Submission{
		Input:       json.RawMessage(`{"bucket":"reports","prefix":"2025/"}`),
		Timeout:     events.Duration(5 * time.Minute),
		MaxAttempts: 5,
		Deadline:    timePtr(testNow.Add(24 * time.Hour)),
		TTL:         events.Duration(48 * time.Hour),
		RunAt:       timePtr(testNow.Add(time.Hour)),
		Webhook:     &events.Webhook{URL: "https://hooks.example.com/handoff?team=data"},
		Metadata:    map[string]string{"owner": "data-team", "ticket": "OPS-12"},
	}
}

// fieldErrors returns the FieldErrors of err, failing the test if err is
// of another type.
func fieldErrors(t *testing.T, err error) events.FieldErrors {
	t.Helper()
	var fe events.FieldErrors
	require.ErrorAs(t, err, &fe)
	return fe
}

func TestSubmissionValidateAcceptsValid(t *testing.T) {
	t.Parallel()

	s := validSubmission()
	require.NoError(t, s.Validate(testNow))

	var empty events.Submission
	require.NoError(t, empty.Validate(testNow), "every field is optional")
}

func TestSubmissionValidateFields(t *testing.T) {
	t.Parallel()

	metadata := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}

	tests := []struct {
		name      string
		change    func(*events.Submission)
		wantField string // "" when the submission stays valid
		wantMsg   string
	}{
		{"input object", func(s *events.Submission) { s.Input = json.RawMessage(`{"a":[1,2]}`) }, "", ""},
		{"input scalar", func(s *events.Submission) { s.Input = json.RawMessage(`42`) }, "", ""},
		{"input null", func(s *events.Submission) { s.Input = json.RawMessage(`null`) }, "", ""},
		{"input missing", func(s *events.Submission) { s.Input = nil }, "", ""},
		{"input invalid JSON", func(s *events.Submission) { s.Input = json.RawMessage(`{"a":`) }, "input", "is not valid JSON"},
		{"input two values", func(s *events.Submission) { s.Input = json.RawMessage(`{} {}`) }, "input", "is not valid JSON"},

		{"timeout zero", func(s *events.Submission) { s.Timeout = 0 }, "", ""},
		{"timeout minimum", func(s *events.Submission) { s.Timeout = events.Duration(events.MinTimeout) }, "", ""},
		{"timeout maximum", func(s *events.Submission) { s.Timeout = events.Duration(events.MaxTimeout) }, "", ""},
		{"timeout below minimum", func(s *events.Submission) { s.Timeout = events.Duration(events.MinTimeout - 1) }, "timeout", "9.999999ms is outside 10ms to 168h0m0s"},
		{"timeout above maximum", func(s *events.Submission) { s.Timeout = events.Duration(events.MaxTimeout + time.Second) }, "timeout", "168h0m1s is outside 10ms to 168h0m0s"},
		{"timeout negative", func(s *events.Submission) { s.Timeout = events.Duration(-time.Second) }, "timeout", "-1s is outside"},

		{"max_attempts zero", func(s *events.Submission) { s.MaxAttempts = 0 }, "", ""},
		{"max_attempts one", func(s *events.Submission) { s.MaxAttempts = 1 }, "", ""},
		{"max_attempts maximum", func(s *events.Submission) { s.MaxAttempts = events.MaxMaxAttempts }, "", ""},
		{"max_attempts above maximum", func(s *events.Submission) { s.MaxAttempts = events.MaxMaxAttempts + 1 }, "max_attempts", "101 is outside 1 to 100"},
		{"max_attempts negative", func(s *events.Submission) { s.MaxAttempts = -1 }, "max_attempts", "-1 is outside 1 to 100"},

		{"ttl zero", func(s *events.Submission) { s.TTL = 0 }, "", ""},
		{"ttl minimum", func(s *events.Submission) { s.TTL = events.Duration(events.MinTTL) }, "", ""},
		{"ttl long", func(s *events.Submission) { s.TTL = events.Duration(365 * 24 * time.Hour) }, "", ""},
		{"ttl below minimum", func(s *events.Submission) { s.TTL = events.Duration(999 * time.Millisecond) }, "ttl", "999ms is shorter than the minimum of 1s"},
		{"ttl negative", func(s *events.Submission) { s.TTL = events.Duration(-time.Hour) }, "ttl", "-1h0m0s is shorter than the minimum of 1s"},

		{"deadline missing", func(s *events.Submission) { s.Deadline = nil }, "", ""},
		{"deadline just ahead", func(s *events.Submission) { s.Deadline = timePtr(testNow.Add(time.Nanosecond)); s.RunAt = nil }, "", ""},
		{"deadline now", func(s *events.Submission) { s.Deadline = timePtr(testNow); s.RunAt = nil }, "deadline", "2025-03-14T15:09:26Z is not in the future"},
		{"deadline past", func(s *events.Submission) { s.Deadline = timePtr(testNow.Add(-time.Hour)); s.RunAt = nil }, "deadline", "is not in the future"},

		{"run_at missing", func(s *events.Submission) { s.RunAt = nil }, "", ""},
		{"run_at now", func(s *events.Submission) { s.RunAt = timePtr(testNow) }, "run_at", "2025-03-14T15:09:26Z is not in the future"},
		{"run_at at deadline", func(s *events.Submission) { s.RunAt = timePtr(*s.Deadline) }, "run_at", "2025-03-15T15:09:26Z is not before the deadline 2025-03-15T15:09:26Z"},
		{"run_at after deadline", func(s *events.Submission) { s.RunAt = timePtr(s.Deadline.Add(time.Minute)) }, "run_at", "is not before the deadline"},
		{"run_at without deadline", func(s *events.Submission) { s.Deadline = nil; s.RunAt = timePtr(testNow.Add(1000 * time.Hour)) }, "", ""},

		{"webhook missing", func(s *events.Submission) { s.Webhook = nil }, "", ""},
		{"webhook http", func(s *events.Submission) { s.Webhook.URL = "http://localhost:8080/hook" }, "", ""},
		{"webhook upper scheme", func(s *events.Submission) { s.Webhook.URL = "HTTPS://example.com/" }, "", ""},
		{"webhook IPv6", func(s *events.Submission) { s.Webhook.URL = "https://[2001:db8::1]:8443/hook" }, "", ""},
		{"webhook longest", func(s *events.Submission) { s.Webhook.URL = longURL(events.MaxWebhookURLLen) }, "", ""},
		{"webhook too long", func(s *events.Submission) { s.Webhook.URL = longURL(events.MaxWebhookURLLen + 1) }, "webhook.url", "is 2049 bytes, longer than the maximum of 2048"},
		{"webhook empty", func(s *events.Submission) { s.Webhook.URL = "" }, "webhook.url", "is empty"},
		{"webhook no scheme", func(s *events.Submission) { s.Webhook.URL = "example.com/hook" }, "webhook.url", "is not an absolute URL"},
		{"webhook ftp", func(s *events.Submission) { s.Webhook.URL = "ftp://example.com/hook" }, "webhook.url", `scheme "ftp" is not http or https`},
		{"webhook mailto", func(s *events.Submission) { s.Webhook.URL = "mailto:ops@example.com" }, "webhook.url", `scheme "mailto" is not http or https`},
		{"webhook bracket host", func(s *events.Submission) { s.Webhook.URL = "http://]" }, "webhook.url", `host "]" is neither an IP address nor a DNS name`},
		{"webhook port too large", func(s *events.Submission) { s.Webhook.URL = "http://example.com:70000/" }, "webhook.url", `port "70000" is outside 1 to 65535`},
		{"webhook empty fragment", func(s *events.Submission) { s.Webhook.URL = "http://example.com/#" }, "webhook.url", "must not contain a fragment"},
		{"webhook no host", func(s *events.Submission) { s.Webhook.URL = "https:///hook" }, "webhook.url", "has no host"},
		{"webhook opaque", func(s *events.Submission) { s.Webhook.URL = "https:example.com" }, "webhook.url", "has no host"},
		{"webhook port only", func(s *events.Submission) { s.Webhook.URL = "https://:443/hook" }, "webhook.url", "has no host"},
		{"webhook credentials", func(s *events.Submission) { s.Webhook.URL = "https://user:secret@example.com/hook" }, "webhook.url", "must not contain credentials"},
		{"webhook user only", func(s *events.Submission) { s.Webhook.URL = "https://user@example.com/hook" }, "webhook.url", "must not contain credentials"},
		{"webhook fragment", func(s *events.Submission) { s.Webhook.URL = "https://example.com/hook#part" }, "webhook.url", "must not contain a fragment"},
		{"webhook not a URL", func(s *events.Submission) { s.Webhook.URL = "https://exa mple.com/" }, "webhook.url", "is not a URL"},
		{"webhook control character", func(s *events.Submission) { s.Webhook.URL = "https://example.com/\n" }, "webhook.url", "is not a URL"},

		{"metadata missing", func(s *events.Submission) { s.Metadata = nil }, "", ""},
		{"metadata most keys", func(s *events.Submission) { s.Metadata = metadata(events.MaxMetadataKeys) }, "", ""},
		{"metadata too many keys", func(s *events.Submission) { s.Metadata = metadata(events.MaxMetadataKeys + 1) }, "metadata", "has 65 keys, more than the maximum of 64"},
		{"metadata longest key", func(s *events.Submission) { s.Metadata = map[string]string{strings.Repeat("k", 64): "v"} }, "", ""},
		{"metadata key too long", func(s *events.Submission) { s.Metadata = map[string]string{strings.Repeat("k", 65): "v"} }, "metadata", "must be 1 to 64 bytes"},
		{"metadata empty key", func(s *events.Submission) { s.Metadata = map[string]string{"": "v"} }, "metadata", `key "" must be 1 to 64 bytes`},
		{"metadata longest value", func(s *events.Submission) { s.Metadata = map[string]string{"k": strings.Repeat("v", 512)} }, "", ""},
		{"metadata empty value", func(s *events.Submission) { s.Metadata = map[string]string{"k": ""} }, "", ""},
		{"metadata value too long", func(s *events.Submission) { s.Metadata = map[string]string{"k": strings.Repeat("v", 513)} }, "metadata.k", "is 513 bytes, longer than the maximum of 512"},
		{"metadata value counted in bytes", func(s *events.Submission) { s.Metadata = map[string]string{"k": strings.Repeat("é", 257)} }, "metadata.k", "is 514 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSubmission()
			tt.change(&s)
			err := s.Validate(testNow)
			if tt.wantField == "" {
				require.NoError(t, err)
				return
			}

			fe := fieldErrors(t, err)
			require.Len(t, fe, 1, "only the changed field is invalid: %v", fe)
			require.Equal(t, tt.wantField, fe[0].Field)
			require.Contains(t, fe[0].Message, tt.wantMsg)
			require.ErrorContains(t, err, "invalid request: "+tt.wantField+": ")
		})
	}
}

// longURL returns a valid https URL of exactly n bytes.
func longURL(n int) string {
	prefix := "https://example.com/"
	return prefix + strings.Repeat("p", n-len(prefix))
}

func TestSubmissionValidateListsEveryField(t *testing.T) {
	t.Parallel()

	s := events.Submission{
		Input:       json.RawMessage(`{`),
		Timeout:     events.Duration(time.Millisecond),
		MaxAttempts: 1000,
		TTL:         events.Duration(time.Millisecond),
		Deadline:    timePtr(testNow.Add(-time.Minute)),
		RunAt:       timePtr(testNow.Add(-time.Second)),
		Webhook:     &events.Webhook{URL: "ftp://example.com"},
	}
	fe := fieldErrors(t, s.Validate(testNow))

	fields := make([]string, len(fe))
	for i, e := range fe {
		fields[i] = e.Field
	}
	require.Equal(t, []string{"input", "timeout", "max_attempts", "ttl", "deadline", "run_at", "run_at", "webhook.url"}, fields)
	require.ErrorContains(t, fe, "invalid request: input: is not valid JSON; timeout: ")
}

func TestFieldErrorsJSON(t *testing.T) {
	t.Parallel()

	b, err := json.Marshal(events.FieldErrors{{Field: "ttl", Message: "is too short"}})
	require.NoError(t, err)
	require.JSONEq(t, `[{"field":"ttl","message":"is too short"}]`, string(b))
}

func TestSubmissionWithDefaults(t *testing.T) {
	t.Parallel()

	var empty events.Submission
	got := empty.WithDefaults()
	require.JSONEq(t, `{}`, string(got.Input))
	require.Equal(t, events.DefaultMaxAttempts, got.MaxAttempts)
	require.Equal(t, events.DefaultTTL, got.TTL.Std())
	require.Zero(t, got.Timeout, "the timeout default depends on the task type")
	require.Nil(t, got.Deadline)
	require.Nil(t, got.RunAt)
	require.Nil(t, got.Webhook)
	require.Nil(t, got.Metadata)
	require.Zero(t, empty, "WithDefaults must not change its receiver")

	null := events.Submission{Input: json.RawMessage(`null`)}
	require.JSONEq(t, `{}`, string(null.WithDefaults().Input))

	set := validSubmission()
	set.MaxAttempts = 1
	set.TTL = events.Duration(time.Hour)
	require.Equal(t, set, set.WithDefaults(), "set fields keep their values")

	scalar := events.Submission{Input: json.RawMessage(`0`)}
	require.Equal(t, `0`, string(scalar.WithDefaults().Input))
}

func TestSubmissionHashStable(t *testing.T) {
	t.Parallel()

	a := validSubmission()
	a.Input = json.RawMessage(`{"b":1,"a":{"y":[1,2],"x":"s"}}`)
	a.Metadata = map[string]string{"one": "1", "two": "2", "three": "3"}

	b := validSubmission()
	b.Input = json.RawMessage(" {\n  \"a\": {\"x\": \"s\", \"y\": [1, 2]},\n  \"b\": 1\n}\n")
	b.Metadata = map[string]string{"three": "3", "two": "2", "one": "1"}
	b.RequestHash = "ignored"

	hashA, err := a.Hash("files.manifest")
	require.NoError(t, err)
	hashB, err := b.Hash("files.manifest")
	require.NoError(t, err)
	require.Equal(t, hashA, hashB)
	require.Regexp(t, `^[0-9a-f]{64}$`, hashA)

	again, err := a.Hash("files.manifest")
	require.NoError(t, err)
	require.Equal(t, hashA, again)
	require.Equal(t, `{"b":1,"a":{"y":[1,2],"x":"s"}}`, string(a.Input), "Hash must not change its receiver's input")
}

func TestSubmissionHashSameInstant(t *testing.T) {
	t.Parallel()

	utc := validSubmission()
	zone := time.FixedZone("CET", 3600)
	other := validSubmission()
	other.Deadline = timePtr(utc.Deadline.In(zone))
	other.RunAt = timePtr(utc.RunAt.In(zone))

	hashUTC, err := utc.Hash("echo")
	require.NoError(t, err)
	hashOther, err := other.Hash("echo")
	require.NoError(t, err)
	require.Equal(t, hashUTC, hashOther, "the same instants in another zone are the same submission")
	require.Equal(t, zone, other.Deadline.Location(), "Hash must not change its receiver's times")
}

func TestSubmissionHashSameDuration(t *testing.T) {
	t.Parallel()

	var seconds, text events.Submission
	require.NoError(t, json.Unmarshal([]byte(`{"input":{},"timeout":90}`), &seconds))
	require.NoError(t, json.Unmarshal([]byte(`{"input":{},"timeout":"1m30s"}`), &text))

	hashSeconds, err := seconds.Hash("echo")
	require.NoError(t, err)
	hashText, err := text.Hash("echo")
	require.NoError(t, err)
	require.Equal(t, hashSeconds, hashText)
}

func TestSubmissionHashChanges(t *testing.T) {
	t.Parallel()

	base := validSubmission()
	baseHash, err := base.Hash("echo")
	require.NoError(t, err)

	tests := []struct {
		name     string
		taskType string
		change   func(*events.Submission)
	}{
		{"task type", "echo.v2", func(*events.Submission) {}},
		{"input value", "echo", func(s *events.Submission) { s.Input = json.RawMessage(`{"bucket":"reports","prefix":"2024/"}`) }},
		{"input key", "echo", func(s *events.Submission) { s.Input = json.RawMessage(`{"Bucket":"reports","prefix":"2025/"}`) }},
		{"input missing", "echo", func(s *events.Submission) { s.Input = nil }},
		{"timeout", "echo", func(s *events.Submission) { s.Timeout++ }},
		{"max_attempts", "echo", func(s *events.Submission) { s.MaxAttempts = 6 }},
		{"deadline", "echo", func(s *events.Submission) { s.Deadline = timePtr(s.Deadline.Add(time.Nanosecond)) }},
		{"deadline missing", "echo", func(s *events.Submission) { s.Deadline = nil }},
		{"ttl", "echo", func(s *events.Submission) { s.TTL = events.Duration(time.Hour) }},
		{"run_at", "echo", func(s *events.Submission) { s.RunAt = timePtr(s.RunAt.Add(time.Second)) }},
		{"webhook", "echo", func(s *events.Submission) { s.Webhook = &events.Webhook{URL: "https://hooks.example.com/other"} }},
		{"webhook missing", "echo", func(s *events.Submission) { s.Webhook = nil }},
		{"metadata value", "echo", func(s *events.Submission) { s.Metadata = map[string]string{"owner": "web-team", "ticket": "OPS-12"} }},
		{"metadata key", "echo", func(s *events.Submission) { s.Metadata = map[string]string{"Owner": "data-team", "ticket": "OPS-12"} }},
		{"metadata missing", "echo", func(s *events.Submission) { s.Metadata = nil }},
	}
	seen := map[string]string{baseHash: "base"}
	for _, tt := range tests {
		s := validSubmission()
		tt.change(&s)
		h, err := s.Hash(tt.taskType)
		require.NoError(t, err, tt.name)
		require.NotContains(t, seen, h, "%s hashes like %s", tt.name, seen[h])
		seen[h] = tt.name
	}
}

func TestSubmissionHashLargeIntegers(t *testing.T) {
	t.Parallel()

	// Both numbers are the same float64, so a hash that decoded them as
	// float64 would not tell them apart.
	a := events.Submission{Input: json.RawMessage(`{"id":9007199254740993}`)}
	b := events.Submission{Input: json.RawMessage(`{"id":9007199254740992}`)}

	hashA, err := a.Hash("echo")
	require.NoError(t, err)
	hashB, err := b.Hash("echo")
	require.NoError(t, err)
	require.NotEqual(t, hashA, hashB)

	c := events.Submission{Input: json.RawMessage(`{"id":123456789012345678901234567890}`)}
	d := events.Submission{Input: json.RawMessage(`{"id":123456789012345678901234567891}`)}
	hashC, err := c.Hash("echo")
	require.NoError(t, err)
	hashD, err := d.Hash("echo")
	require.NoError(t, err)
	require.NotEqual(t, hashC, hashD)
}

func TestSubmissionHashInvalidInput(t *testing.T) {
	t.Parallel()

	s := events.Submission{Input: json.RawMessage(`{"a":`)}
	_, err := s.Hash("echo")
	require.ErrorContains(t, err, "hash submission: ")
}

func TestSubmissionJSON(t *testing.T) {
	t.Parallel()

	b, err := json.Marshal(validSubmission())
	require.NoError(t, err)
	require.JSONEq(t, `{
		"input": {"bucket":"reports","prefix":"2025/"},
		"timeout": "5m0s",
		"max_attempts": 5,
		"deadline": "2025-03-15T15:09:26Z",
		"ttl": "48h0m0s",
		"run_at": "2025-03-14T16:09:26Z",
		"webhook": {"url": "https://hooks.example.com/handoff?team=data"},
		"metadata": {"owner": "data-team", "ticket": "OPS-12"}
	}`, string(b))

	b, err = json.Marshal(events.Submission{})
	require.NoError(t, err)
	require.JSONEq(t, `{"input":null}`, string(b), "only input has no omitempty")
}
