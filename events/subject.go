package events

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Token limits of the subject grammar.
const (
	MaxTenantLen    = 64
	MaxTaskIDLen    = 64
	MaxTaskTypeLen  = 128
	MaxNamespaceLen = 32

	// DefaultNamespace is the first token of every subject and the prefix of
	// every stream name unless a deployment configures another.
	DefaultNamespace = "handoff"

	// DefaultTenant is the tenant of every task when authentication is off.
	DefaultTenant = "default"
)

// Subject is the parsed form of a task event subject,
// <namespace>.task.<tenant>.<task_id>.<kind>.<task_type>.
type Subject struct {
	Namespace string
	Tenant    string
	TaskID    string
	Kind      Kind
	TaskType  string
}

// String returns the subject as published on NATS. It does not validate;
// call [Subject.Validate] first for values that came from outside.
func (s Subject) String() string {
	var b strings.Builder
	b.Grow(len(s.Namespace) + len(s.Tenant) + len(s.TaskID) + len(s.Kind) + len(s.TaskType) + 9)
	b.WriteString(s.Namespace)
	b.WriteString(".task.")
	b.WriteString(s.Tenant)
	b.WriteByte('.')
	b.WriteString(s.TaskID)
	b.WriteByte('.')
	b.WriteString(string(s.Kind))
	b.WriteByte('.')
	b.WriteString(s.TaskType)
	return b.String()
}

// Validate checks every token of s and returns an error that names the
// first invalid one.
func (s Subject) Validate() error {
	if err := ValidateNamespace(s.Namespace); err != nil {
		return err
	}
	if err := ValidateTenant(s.Tenant); err != nil {
		return err
	}
	if err := ValidateTaskID(s.TaskID); err != nil {
		return err
	}
	if !s.Kind.Valid() {
		return fmt.Errorf("%w: %q", ErrUnknownKind, s.Kind)
	}
	return ValidateTaskType(s.TaskType)
}

// ParseSubject parses and validates a task event subject.
func ParseSubject(subject string) (Subject, error) {
	var s Subject
	rest := subject

	var ok bool
	if s.Namespace, rest, ok = strings.Cut(rest, "."); !ok {
		return Subject{}, fmt.Errorf("%w: %q has fewer than 6 tokens", ErrInvalidSubject, subject)
	}
	var task string
	if task, rest, ok = strings.Cut(rest, "."); !ok {
		return Subject{}, fmt.Errorf("%w: %q has fewer than 6 tokens", ErrInvalidSubject, subject)
	}
	if task != "task" {
		return Subject{}, fmt.Errorf("%w: %q: second token must be \"task\"", ErrInvalidSubject, subject)
	}
	if s.Tenant, rest, ok = strings.Cut(rest, "."); !ok {
		return Subject{}, fmt.Errorf("%w: %q has fewer than 6 tokens", ErrInvalidSubject, subject)
	}
	if s.TaskID, rest, ok = strings.Cut(rest, "."); !ok {
		return Subject{}, fmt.Errorf("%w: %q has fewer than 6 tokens", ErrInvalidSubject, subject)
	}
	var kind string
	if kind, rest, ok = strings.Cut(rest, "."); !ok {
		return Subject{}, fmt.Errorf("%w: %q has fewer than 6 tokens", ErrInvalidSubject, subject)
	}
	s.Kind = Kind(kind)
	s.TaskType = rest

	if err := s.Validate(); err != nil {
		return Subject{}, fmt.Errorf("%w: %q: %w", ErrInvalidSubject, subject, err)
	}
	return s, nil
}

// TaskFilter returns the subject filter that matches every event of one
// task: <namespace>.task.<tenant>.<task_id>.>. It is also the subject of the
// per-task compare-and-set.
func TaskFilter(namespace, tenant, taskID string) string {
	return namespace + ".task." + tenant + "." + taskID + ".>"
}

// KindFilter returns the subject filter for events of one kind across all
// tenants and tasks. typePattern is a task type, a family such as
// "files.>", or ">" for every type.
func KindFilter(namespace string, kind Kind, typePattern string) string {
	return namespace + ".task.*.*." + string(kind) + "." + typePattern
}

// ValidateNamespace checks a namespace: one token of [a-z0-9_-], at most 32
// bytes.
func ValidateNamespace(ns string) error {
	return checkToken("namespace", ns, MaxNamespaceLen, lowerToken)
}

// ValidateTenant checks a tenant: one token of [a-z0-9_-], at most 64 bytes.
func ValidateTenant(tenant string) error {
	return checkToken("tenant", tenant, MaxTenantLen, lowerToken)
}

// ValidateTaskID checks a task id: one token of [A-Za-z0-9_-], at most 64
// bytes.
func ValidateTaskID(id string) error {
	return checkToken("task id", id, MaxTaskIDLen, idToken)
}

// ValidateTaskType checks a task type: dot-separated tokens of [a-z0-9_-],
// at most 128 bytes in all.
func ValidateTaskType(taskType string) error {
	if taskType == "" {
		return fmt.Errorf("%w: task type is empty", ErrInvalidToken)
	}
	if len(taskType) > MaxTaskTypeLen {
		return fmt.Errorf("%w: task type is %d bytes, longer than the maximum of %d", ErrInvalidToken, len(taskType), MaxTaskTypeLen)
	}
	start := 0
	for i := 0; i <= len(taskType); i++ {
		if i < len(taskType) && taskType[i] != '.' {
			if !lowerToken(taskType[i]) {
				return fmt.Errorf("%w: task type %q contains %s; allowed are a-z, 0-9, '_', '-' and '.' between tokens", ErrInvalidToken, taskType, quoteCharAt(taskType, i))
			}
			continue
		}
		if i == start {
			return fmt.Errorf("%w: task type %q has an empty token", ErrInvalidToken, taskType)
		}
		start = i + 1
	}
	return nil
}

// ValidateTypePattern checks a task type or a family pattern: a task type,
// a task type prefix followed by ".>", or ">" alone.
func ValidateTypePattern(pattern string) error {
	if pattern == ">" {
		return nil
	}
	if prefix, ok := strings.CutSuffix(pattern, ".>"); ok {
		return ValidateTaskType(prefix)
	}
	return ValidateTaskType(pattern)
}

func checkToken(name, s string, maxLen int, allowed func(byte) bool) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidToken, name)
	}
	if len(s) > maxLen {
		return fmt.Errorf("%w: %s is %d bytes, longer than the maximum of %d", ErrInvalidToken, name, len(s), maxLen)
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return fmt.Errorf("%w: %s %q contains %s; allowed are %s", ErrInvalidToken, name, s, quoteCharAt(s, i), allowedText(allowed))
		}
	}
	return nil
}

// quoteCharAt quotes the character that starts at s[i], so that a
// multi-byte character is shown whole rather than as its first byte.
func quoteCharAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf(`'\x%02x'`, s[i])
	}
	return strconv.QuoteRune(r)
}

func lowerToken(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func idToken(c byte) bool {
	return lowerToken(c) || c >= 'A' && c <= 'Z'
}

func allowedText(allowed func(byte) bool) string {
	if allowed('A') {
		return "A-Z, a-z, 0-9, '_' and '-'"
	}
	return "a-z, 0-9, '_' and '-'"
}
