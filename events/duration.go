package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Duration is a time.Duration that travels in JSON as a Go duration string
// such as "90s", "10m" or "168h". Decoding also accepts a number of seconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

// UnmarshalJSON decodes a duration string ("1m30s") or a number of seconds.
// Negative durations are rejected.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: use a Go duration such as \"90s\", \"10m\" or \"2h30m\", or a number of seconds", s)
		}
		if v < 0 {
			return fmt.Errorf("invalid duration %q: must not be negative", s)
		}
		*d = Duration(v)
		return nil
	}

	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("invalid duration %s: use a Go duration string such as \"90s\" or a number of seconds", b)
	}
	// float64(math.MaxInt64) rounds up to 2^63, which does not fit in an
	// int64, so the bound is exclusive.
	if secs < 0 || math.IsNaN(secs) || secs >= float64(math.MaxInt64)/float64(time.Second) {
		return fmt.Errorf("invalid duration %s: seconds must be between 0 and %d", b, math.MaxInt64/int64(time.Second))
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
