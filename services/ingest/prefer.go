package ingest

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// preferences are the RFC 7240 preferences of a submission that the server
// supports: wait and respond-async.
type preferences struct {
	// wait is how long the client is ready to wait for the task to end,
	// capped at Config.MaxWait; zero when it sent no valid wait.
	wait time.Duration
	// respondAsync requests 202 at once.
	respondAsync bool
}

// parsePrefer reads the Prefer header fields of a request. Preference
// names are compared case-insensitively, the first instance of a
// preference counts, and parameters after ';' are ignored. A wait that is
// not a number of seconds is ignored like an unknown preference, so a
// preference never makes a request fail.
func parsePrefer(values []string, maxWait time.Duration) preferences {
	var p preferences
	seen := map[string]bool{}
	for _, value := range values {
		for _, item := range splitOutsideQuotes(value, ',') {
			item, _, _ = strings.Cut(item, ";")
			name, arg, _ := strings.Cut(item, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			switch name {
			case "respond-async":
				p.respondAsync = true
			case "wait":
				arg = strings.Trim(strings.TrimSpace(arg), `"`)
				secs, err := strconv.ParseUint(arg, 10, 32)
				if errors.Is(err, strconv.ErrRange) {
					// A wait too long to count is capped like any long one.
					p.wait = maxWait
					continue
				}
				if err != nil || arg == "" {
					continue
				}
				p.wait = min(time.Duration(secs)*time.Second, maxWait)
			}
		}
	}
	return p
}

// applied returns the Preference-Applied value of the preferences that
// the server honoured, or "" for none.
func (p preferences) applied() string {
	var parts []string
	if p.respondAsync {
		parts = append(parts, "respond-async")
	}
	if p.wait > 0 {
		parts = append(parts, "wait="+strconv.Itoa(int(p.wait/time.Second)))
	}
	return strings.Join(parts, ", ")
}

// setHeaders sets Vary and, when preferences were honoured,
// Preference-Applied.
func (p preferences) setHeaders(h http.Header) {
	h.Set("Vary", "Prefer")
	if applied := p.applied(); applied != "" {
		h.Set("Preference-Applied", applied)
	}
}

// splitOutsideQuotes splits s at each sep that is not inside a quoted
// string.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	start, quoted, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}
