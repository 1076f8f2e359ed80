package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults and limits of a submission.
const (
	DefaultTimeout     = 10 * time.Minute
	DefaultMaxAttempts = 3
	DefaultTTL         = 7 * 24 * time.Hour

	MinTimeout     = 10 * time.Millisecond
	MaxTimeout     = 7 * 24 * time.Hour
	MaxMaxAttempts = 100
	// MinTTL is the shortest TTL NATS accepts on a message.
	MinTTL = time.Second

	MaxMetadataKeys     = 64
	MaxMetadataKeyLen   = 64
	MaxMetadataValueLen = 512
	MaxWebhookURLLen    = 2048
)

// FieldError is one invalid field of a request, named by its JSON name or
// by a JSON pointer into the input.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// FieldErrors lists every invalid field of a request.
type FieldErrors []FieldError

func (fe FieldErrors) Error() string {
	parts := make([]string, len(fe))
	for i, e := range fe {
		parts[i] = e.Field + ": " + e.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Validate checks the fields of a submission against the limits above and
// the clock now. It returns FieldErrors listing every invalid field, or nil.
// It does not check the input against the task type's schema.
func (s *Submission) Validate(now time.Time) error {
	var errs FieldErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	if len(s.Input) > 0 && !json.Valid(s.Input) {
		add("input", "is not valid JSON")
	}
	if t := s.Timeout.Std(); t != 0 && (t < MinTimeout || t > MaxTimeout) {
		add("timeout", "%s is outside %s to %s", t, MinTimeout, MaxTimeout)
	}
	if s.MaxAttempts < 0 || s.MaxAttempts > MaxMaxAttempts {
		add("max_attempts", "%d is outside 1 to %d", s.MaxAttempts, MaxMaxAttempts)
	}
	if t := s.TTL.Std(); t != 0 && t < MinTTL {
		add("ttl", "%s is shorter than the minimum of %s", t, MinTTL)
	}
	if s.Deadline != nil && !s.Deadline.After(now) {
		add("deadline", "%s is not in the future", s.Deadline.Format(time.RFC3339))
	}
	if s.RunAt != nil {
		if !s.RunAt.After(now) {
			add("run_at", "%s is not in the future", s.RunAt.Format(time.RFC3339))
		}
		if s.Deadline != nil && !s.RunAt.Before(*s.Deadline) {
			add("run_at", "%s is not before the deadline %s", s.RunAt.Format(time.RFC3339), s.Deadline.Format(time.RFC3339))
		}
	}
	if s.Webhook != nil {
		if err := ValidateWebhookURL(s.Webhook.URL); err != nil {
			add("webhook.url", "%s", err)
		}
	}
	if len(s.Metadata) > MaxMetadataKeys {
		add("metadata", "has %d keys, more than the maximum of %d", len(s.Metadata), MaxMetadataKeys)
	}
	for k, v := range s.Metadata {
		if k == "" || len(k) > MaxMetadataKeyLen {
			add("metadata", "key %q must be 1 to %d bytes", k, MaxMetadataKeyLen)
		}
		if len(v) > MaxMetadataValueLen {
			add("metadata."+k, "is %d bytes, longer than the maximum of %d", len(v), MaxMetadataValueLen)
		}
	}

	if len(errs) == 0 {
		return nil
	}
	return errs
}

// ValidateWebhookURL checks that raw is an absolute http or https URL with a
// host and without credentials. Whether its address may be dialled is the
// notifier's decision, made on the resolved address.
func ValidateWebhookURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("is empty")
	}
	if len(raw) > MaxWebhookURLLen {
		return fmt.Errorf("is %d bytes, longer than the maximum of %d", len(raw), MaxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	if u.Scheme == "" {
		return fmt.Errorf("is not an absolute URL; give one such as https://agent.example.com/hooks")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("has no host")
	}
	if err := validateHost(u.Hostname()); err != nil {
		return err
	}
	if u.User != nil {
		return fmt.Errorf("must not contain credentials; receivers verify the webhook signature instead")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is outside 1 to 65535", port)
		}
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("must not contain a fragment")
	}
	return nil
}

// WithDefaults returns a copy of s in which zero TTL and MaxAttempts are
// set to their defaults and a missing input is the empty object. Timeout is
// left alone because its default depends on the task type.
func (s Submission) WithDefaults() Submission {
	if len(s.Input) == 0 || string(s.Input) == "null" {
		s.Input = json.RawMessage(`{}`)
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.TTL == 0 {
		s.TTL = Duration(DefaultTTL)
	}
	return s
}

// Hash returns the hex SHA-256 of the task type and the submission with its
// RequestHash cleared. Two submissions with equal fields have equal hashes
// regardless of key order in their input or metadata and of the time zone
// their deadline and run_at are written in.
func (s Submission) Hash(taskType string) (string, error) {
	s.RequestHash = ""
	if s.Deadline != nil {
		deadline := s.Deadline.UTC()
		s.Deadline = &deadline
	}
	if s.RunAt != nil {
		runAt := s.RunAt.UTC()
		s.RunAt = &runAt
	}
	if len(s.Input) > 0 {
		// Decoding with UseNumber keeps large integers exact, and encoding
		// a decoded value sorts object keys.
		dec := json.NewDecoder(bytes.NewReader(s.Input))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("hash submission: %w", err)
		}
		canonical, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("hash submission: %w", err)
		}
		s.Input = canonical
	}
	b, err := json.Marshal(struct {
		Type string `json:"type"`
		Submission
	}{taskType, s})
	if err != nil {
		return "", fmt.Errorf("hash submission: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// validateHost accepts an IP address or a DNS name of letters, digits,
// hyphens and dots.
func validateHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
		}
	}
	return nil
}
