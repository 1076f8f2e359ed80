package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// MaxSleepSeconds bounds the input of the built-in sleep handler.
const MaxSleepSeconds = 24 * 60 * 60

var (
	sleepInputSchema = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["seconds"],
  "properties": {
    "seconds": {"type": "number", "minimum": 0, "maximum": %d, "description": "How long to sleep."}
  }
}`, MaxSleepSeconds))
	sleepOutputSchema = json.RawMessage(`{
  "type": "object",
  "required": ["slept_seconds"],
  "properties": {"slept_seconds": {"type": "number"}}
}`)
	echoInputSchema = json.RawMessage(`{"description": "Any JSON value, returned unchanged."}`)
)

// sleepHandler sleeps for input.seconds, reporting progress every second,
// and returns {"slept_seconds": n}. A cancelled context ends it early with
// the context's cause.
func sleepHandler(ctx context.Context, t *Task) (any, error) {
	var in struct {
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal(t.Input, &in); err != nil {
		return nil, Permanent(fmt.Errorf("decode input: %w", err))
	}
	if in.Seconds < 0 || in.Seconds > MaxSleepSeconds || math.IsNaN(in.Seconds) {
		return nil, Permanent(fmt.Errorf("seconds %v is outside 0 to %d", in.Seconds, MaxSleepSeconds))
	}

	total := time.Duration(in.Seconds * float64(time.Second))
	start := time.Now()
	end := time.NewTimer(total)
	defer end.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-end.C:
			return map[string]float64{"slept_seconds": in.Seconds}, nil
		case <-tick.C:
			slept := time.Since(start)
			t.Progress(100*slept.Seconds()/in.Seconds, fmt.Sprintf("slept %.0f of %g seconds", slept.Seconds(), in.Seconds))
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// echoHandler returns its input.
func echoHandler(_ context.Context, t *Task) (any, error) {
	return t.Input, nil
}
