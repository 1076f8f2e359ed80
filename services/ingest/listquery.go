package ingest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// Page sizes of GET /v1/tasks.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// listParams lists the query parameters of GET /v1/tasks.
var listParams = []string{"type", "status", "created_after", "created_before", "cursor", "limit"}

// cursorVersion starts every cursor, so that a later format can tell its
// own cursors from these.
const cursorVersion = "1"

// listQuery is the decoded query of GET /v1/tasks.
type listQuery struct {
	// typePattern is a task type, a family such as "files.>", or "" for
	// every type.
	typePattern string
	// statuses are the statuses to list, sorted; empty means all.
	statuses []events.Status
	// createdAfter and createdBefore bound created_at, exclusive; zero
	// means unbounded.
	createdAfter, createdBefore time.Time
	limit                       int
	// before is the cursor's bound: only tasks created at a stream
	// sequence below it are listed. Zero means the first page.
	before uint64
}

// parseListQuery decodes the query of GET /v1/tasks. Every invalid or
// unknown parameter is named in the 400 problem it returns.
func parseListQuery(values url.Values) (listQuery, *Problem) {
	q := listQuery{limit: DefaultListLimit}
	var errs []ProblemError
	add := func(field, message string) {
		errs = append(errs, ProblemError{Field: field, Message: message})
	}

	var unknown []string
	for name := range values {
		if !slices.Contains(listParams, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		if name == "" {
			add(`""`, "a parameter has no name; remove the stray '='")
			continue
		}
		add(excerpt(name), "is not a parameter of this request; use "+strings.Join(listParams, ", "))
	}

	get := func(name string) (string, bool) {
		vs, ok := values[name]
		if !ok {
			return "", false
		}
		if len(vs) > 1 {
			add(name, "is given more than once; give it once")
			return "", false
		}
		return vs[0], true
	}

	if v, ok := get("type"); ok {
		if err := events.ValidateTypePattern(v); err != nil {
			add("type", fmt.Sprintf("%s; give a task type such as files.manifest or a family such as files.>", events.TokenFault(err)))
		} else if v != ">" {
			q.typePattern = v
		}
	}
	if v, ok := get("status"); ok {
		q.statuses = parseStatuses(v, add)
	}
	if v, ok := get("created_after"); ok {
		q.createdAfter = parseListTime("created_after", v, add)
	}
	if v, ok := get("created_before"); ok {
		q.createdBefore = parseListTime("created_before", v, add)
	}
	if !q.createdAfter.IsZero() && !q.createdBefore.IsZero() && !q.createdAfter.Before(q.createdBefore) {
		add("created_before", "must be after created_after")
	}
	if v, ok := get("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			add("limit", fmt.Sprintf("%q is not a number from 1 to %d", excerpt(v), MaxListLimit))
		} else {
			q.limit = n
		}
	}
	if v, ok := get("cursor"); ok && len(errs) == 0 {
		before, err := q.decodeCursor(v)
		if err != "" {
			add("cursor", err)
		}
		q.before = before
	}

	if len(errs) > 0 {
		p := newProblem(ProblemInvalidQuery, http.StatusBadRequest, fieldsDetail(errs))
		p.Errors = errs
		return listQuery{}, p
	}
	return q, nil
}

func parseStatuses(v string, add func(field, message string)) []events.Status {
	var out []events.Status
	for part := range strings.SplitSeq(v, ",") {
		st := events.Status(strings.TrimSpace(part))
		if !st.Valid() {
			names := make([]string, len(events.Statuses))
			for i, s := range events.Statuses {
				names[i] = string(s)
			}
			add("status", fmt.Sprintf("%q is not a status; use one or more of %s", excerpt(string(st)), strings.Join(names, ", ")))
			return nil
		}
		if !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	slices.Sort(out)
	return out
}

func parseListTime(name, v string, add func(field, message string)) time.Time {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		add(name, fmt.Sprintf("%q is not an RFC 3339 date-time such as 2030-01-02T15:04:05Z", excerpt(v)))
		return time.Time{}
	}
	return t
}

// filterDigest identifies the filters of a query, so a cursor is used only
// with the filters of the page that issued it.
func (q listQuery) filterDigest() string {
	statuses := make([]string, len(q.statuses))
	for i, s := range q.statuses {
		statuses[i] = string(s)
	}
	var after, before string
	if !q.createdAfter.IsZero() {
		after = q.createdAfter.UTC().Format(time.RFC3339Nano)
	}
	if !q.createdBefore.IsZero() {
		before = q.createdBefore.UTC().Format(time.RFC3339Nano)
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{q.typePattern, strings.Join(statuses, ","), after, before}, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// encodeCursor returns the cursor of the page that lists the tasks
// created below stream sequence before.
func (q listQuery) encodeCursor(before uint64) string {
	raw := cursorVersion + ":" + strconv.FormatUint(before, 10) + ":" + q.filterDigest()
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor returns the sequence bound of a cursor, or a message for
// an invalid cursor or one issued for other filters.
func (q listQuery) decodeCursor(cursor string) (uint64, string) {
	const invalid = "is not a cursor of this API; pass next_cursor unchanged"
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, invalid
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != cursorVersion {
		return 0, invalid
	}
	before, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || before == 0 {
		return 0, invalid
	}
	if parts[2] != q.filterDigest() {
		return 0, "was issued for other filters; repeat the filters of the first page, or leave out cursor to start again"
	}
	return before, ""
}
