package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// tracedTasks is how many tasks the latency rows follow through their
// events after the rounds.
const tracedTasks = 200

// trip is one task from its submission to the arrival of its outcome.
type trip struct {
	id         string
	start, end time.Time
}

func (t trip) took() time.Duration { return t.end.Sub(t.start) }

// tracePaths runs tracedTasks trips one at a time and returns a note with
// the median time of each step of a task's path. The steps end when the
// stream stores the submitted, started and succeeded events, by the
// stream's timestamps, and at the end of the trip, which last names. A
// failure to trace is the note.
func (g *generator) tracePaths(ctx context.Context, run func(context.Context) (trip, error), last string) string {
	steps := make([][]float64, 4)
	for range tracedTasks {
		t, err := run(ctx)
		if err != nil {
			return fmt.Sprintf("tracing the path of a task failed: %v", err)
		}
		stored, err := g.storedTimes(ctx, t.id)
		if err != nil {
			return fmt.Sprintf("tracing the path of task %s failed: %v", t.id, err)
		}
		marks := []time.Time{t.start, stored[events.KindSubmitted], stored[events.KindStarted], stored[events.KindSucceeded], t.end}
		for i := range steps {
			steps[i] = append(steps[i], float64(marks[i+1].Sub(marks[i])))
		}
	}
	ms := func(i int) string { return formatDuration(time.Duration(median(steps[i]))) }
	return fmt.Sprintf("median path of %d tasks one at a time: submitted event stored %s after the submission began, started %s later, succeeded %s later, and %s %s later",
		tracedTasks, ms(0), ms(1), ms(2), last, ms(3))
}

// storedTimes returns when the stream stored the first event of each kind
// of the task.
func (g *generator) storedTimes(ctx context.Context, id string) (map[events.Kind]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	te, err := g.st.client.ReadEvents(ctx, benchTenant, id, 0)
	if err != nil {
		return nil, err
	}
	stored := make(map[events.Kind]time.Time)
	for _, ev := range te.Events {
		if _, ok := stored[ev.Kind]; !ok {
			stored[ev.Kind] = ev.Stored
		}
	}
	for _, kind := range []events.Kind{events.KindSubmitted, events.KindStarted, events.KindSucceeded} {
		if _, ok := stored[kind]; !ok {
			return nil, fmt.Errorf("no %s event", kind)
		}
	}
	return stored, nil
}
