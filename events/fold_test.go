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

// foldState is a state a task can be in, reached by folding valid events of
// the listed kinds.
type foldState struct {
	name   string
	status events.Status
	steps  []events.Kind
}

var foldStates = []foldState{
	{"new", events.StatusNew, nil},
	{"scheduled", events.StatusScheduled, []events.Kind{events.KindScheduled}},
	{"queued", events.StatusQueued, []events.Kind{events.KindSubmitted}},
	{"running", events.StatusRunning, []events.Kind{events.KindSubmitted, events.KindStarted}},
	{"running+cancel_requested", events.StatusRunning, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindCancelRequested}},
	{"running+pause_requested", events.StatusRunning, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindPauseRequested}},
	{"retrying", events.StatusRetrying, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindRetrying}},
	{"input_required", events.StatusInputRequired, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindInputRequired}},
	{"paused", events.StatusPaused, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindPauseRequested, events.KindPaused}},
	{"succeeded", events.StatusSucceeded, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindSucceeded}},
	{"failed", events.StatusFailed, []events.Kind{events.KindSubmitted, events.KindStarted, events.KindFailed}},
	{"cancelled", events.StatusCancelled, []events.Kind{events.KindSubmitted, events.KindCancelled}},
	{"rejected", events.StatusRejected, []events.Kind{events.KindSubmitted, events.KindRejected}},
	{"expired", events.StatusExpired, []events.Kind{events.KindSubmitted, events.KindDeadline, events.KindExpired}},
}

// legalKinds marks with x the kinds that may follow each state. The columns
// are the kinds in the order of events.Kinds:
//
//	sch scheduled        prq pause_requested   ret retrying             fai failed
//	sub submitted        pau paused            dsc deadline_scheduled   can cancelled
//	sta started          res resumed           dea deadline             rej rejected
//	pro progress         crq cancel_requested  suc succeeded            exp expired
//	inp input_required                                                  del delivered
//	                                                                    dfl delivery_failed
var legalKinds = map[string]string{
	//                          sch sub sta pro inp prq pau res crq ret dsc dea suc fai can rej exp del dfl
	"new":                      " x   x   .   .   .   .   .   .   .   .   x   .   .   .   .   x   .   .   . ",
	"scheduled":                " .   x   .   .   .   .   .   .   .   .   x   x   .   .   x   x   x   x   x ",
	"queued":                   " .   .   x   .   .   .   x   .   .   .   x   x   .   x   x   x   x   x   x ",
	"running":                  " .   .   x   x   x   x   x   .   x   x   x   x   x   x   x   .   x   x   x ",
	"running+cancel_requested": " .   .   .   .   .   .   .   .   .   .   x   x   .   .   x   .   x   x   x ",
	"running+pause_requested":  " .   .   .   x   x   .   x   .   x   .   x   x   x   x   x   .   x   x   x ",
	"retrying":                 " .   .   x   .   .   .   x   .   .   .   x   x   .   x   x   .   x   x   x ",
	"input_required":           " .   .   .   .   .   .   .   x   .   .   x   x   .   .   x   .   x   x   x ",
	"paused":                   " .   .   .   .   .   .   .   x   .   .   x   x   .   .   x   .   x   x   x ",
	"succeeded":                " .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   x   x ",
	"failed":                   " .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   x   x ",
	"cancelled":                " .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   x   x ",
	"rejected":                 " .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   x   x ",
	"expired":                  " .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   .   x   x ",
}

// statusAfter is the status each kind leads to, or "" for the kinds that
// leave the status as it was.
var statusAfter = map[events.Kind]events.Status{
	events.KindScheduled:         events.StatusScheduled,
	events.KindSubmitted:         events.StatusQueued,
	events.KindStarted:           events.StatusRunning,
	events.KindProgress:          "",
	events.KindInputRequired:     events.StatusInputRequired,
	events.KindPauseRequested:    "",
	events.KindPaused:            events.StatusPaused,
	events.KindResumed:           events.StatusQueued,
	events.KindCancelRequested:   "",
	events.KindRetrying:          events.StatusRetrying,
	events.KindDeadlineScheduled: "",
	events.KindDeadline:          "",
	events.KindSucceeded:         events.StatusSucceeded,
	events.KindFailed:            events.StatusFailed,
	events.KindCancelled:         events.StatusCancelled,
	events.KindRejected:          events.StatusRejected,
	events.KindExpired:           events.StatusExpired,
	events.KindDelivered:         "",
	events.KindDeliveryFailed:    "",
}

// buildState folds the steps of state with valid data and checks that the
// task reached the state's status without skipping anything.
func buildState(t *testing.T, state foldState) *history {
	t.Helper()

	h := newHistory(t)
	for _, kind := range state.steps {
		h.addValid(kind)
	}
	task := h.fold()
	require.Empty(t, task.Skipped, "building state %s", state.name)
	require.Equal(t, state.status, task.Status, "building state %s", state.name)
	return h
}

func TestFoldTransitionTable(t *testing.T) {
	t.Parallel()

	require.Len(t, legalKinds, len(foldStates))
	require.Len(t, statusAfter, len(events.Kinds))

	for _, state := range foldStates {
		row, ok := legalKinds[state.name]
		require.True(t, ok, "legalKinds has no row for %s", state.name)
		cells := strings.Fields(row)
		require.Len(t, cells, len(events.Kinds), "row %s", state.name)

		for i, kind := range events.Kinds {
			legal := cells[i] == "x"
			require.Contains(t, []string{"x", "."}, cells[i], "row %s", state.name)

			t.Run(state.name+"/"+string(kind), func(t *testing.T) {
				h := buildState(t, state)
				before := h.fold()
				ev := h.next(kind, validData(kind, before))

				checkErr := before.Check(kind)
				after := events.Fold(append(h.events(), ev))

				if !legal {
					require.ErrorIs(t, checkErr, events.ErrIllegalTransition)
					require.Len(t, after.Skipped, 1)
					require.Equal(t, events.SkippedEvent{Seq: ev.Seq, ID: ev.ID, Kind: kind, Reason: checkErr.Error()}, after.Skipped[0])

					want := *before
					want.LastSeq = ev.Seq
					want.Skipped = after.Skipped
					require.Equal(t, want, *after, "an illegal event must leave the task unchanged")
					return
				}

				require.NoError(t, checkErr)
				require.Empty(t, after.Skipped)
				require.Equal(t, expectApplied(t, before, &ev), *after)
			})
		}
	}
}

// expectApplied returns the task that applying ev to before must produce.
// It states the effect of each kind on its own, so that the test does not
// repeat the fold's code.
func expectApplied(t *testing.T, before *events.Task, ev *events.Event) events.Task {
	t.Helper()

	want := *before
	want.Events++
	want.Updated = ev.Time
	want.LastSeq = ev.Seq
	if status := statusAfter[ev.Kind]; status != "" {
		want.Status = status
	}
	identity := func() {
		want.ID = testTaskID
		want.Tenant = testTenant
		want.Type = testTaskType
		want.Created = ev.Time
	}
	clearOnEnd := func() {
		want.CancelRequested = false
		want.PauseRequested = false
		want.InputRequest = nil
		want.NextAttemptAt = time.Time{}
	}

	switch ev.Kind {
	case events.KindScheduled:
		identity()
		want.Submission = scheduledStored

	case events.KindSubmitted:
		if before.Status == events.StatusNew {
			identity()
		}
		want.Submission = submittedData

	case events.KindStarted:
		want.Attempt = before.Attempt + 1
		want.Executor = fmt.Sprintf("executor-%d", want.Attempt)
		if before.Status == events.StatusRunning {
			want.Failures++
		}
		want.Progress = nil
		want.NextAttemptAt = time.Time{}
		want.InputRequest = nil
		want.Error = nil

	case events.KindProgress:
		want.Progress = &events.Progress{Percent: 42.5, Message: "listed 425 of 1000 objects"}
		want.ProgressAt = ev.Time
		want.Checkpoint = json.RawMessage(`{"offset":425}`)

	case events.KindInputRequired:
		want.InputRequest = &inputRequiredData
		want.Checkpoint = json.RawMessage(`{"offset":500}`)
		want.PauseRequested = false

	case events.KindPauseRequested:
		want.PauseRequested = true
		want.Reason = "maintenance window"

	case events.KindPaused:
		want.PauseRequested = false
		want.Checkpoint = json.RawMessage(`{"offset":600}`)
		want.Reason = "paused for maintenance"
		want.NextAttemptAt = time.Time{}

	case events.KindResumed:
		want.Answer = json.RawMessage(`true`)
		want.InputRequest = nil
		want.Resumes++

	case events.KindCancelRequested:
		want.CancelRequested = true
		want.Reason = "no longer needed"

	case events.KindRetrying:
		want.Failures++
		want.Error = &retryError
		want.NextAttemptAt = nextAttemptAt

	case events.KindDeadlineScheduled:
		// No effect beyond the event count and the update time.

	case events.KindDeadline:
		want.DeadlinePassed = true

	case events.KindSucceeded:
		clearOnEnd()
		want.Result = json.RawMessage(`{"objects":1000}`)
		want.Error = nil

	case events.KindFailed:
		clearOnEnd()
		want.Error = &failedData.Error

	case events.KindCancelled:
		clearOnEnd()
		want.Reason = "cancelled by the operator"

	case events.KindRejected:
		clearOnEnd()
		if before.Status == events.StatusNew {
			identity()
		}
		want.Error = &rejectedData.Error

	case events.KindExpired:
		clearOnEnd()
		want.Error = &events.TaskError{Code: events.CodeTimeout, Message: "the task's deadline passed before it finished"}

	case events.KindDelivered:
		want.Deliveries++

	case events.KindDeliveryFailed:
		want.DeliveryFailures++

	default:
		require.Failf(t, "no expected effect", "kind %s", ev.Kind)
	}
	return want
}

func TestFoldInvalidDataSkipped(t *testing.T) {
	t.Parallel()

	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tests := []struct {
		name    string
		state   string // a name in foldStates where kind is legal
		kind    events.Kind
		data    json.RawMessage // nil sends the event without data
		wantMsg string
	}{
		{"scheduled without data", "new", events.KindScheduled, nil, "scheduled event has no data"},
		{"scheduled not an object", "new", events.KindScheduled, raw(`[]`), "invalid event data: scheduled: json: cannot unmarshal array"},
		{"scheduled without run_at", "new", events.KindScheduled, raw(`{"input":{}}`), "scheduled event has no run_at"},
		{"scheduled bad run_at", "new", events.KindScheduled, raw(`{"input":{},"run_at":"tomorrow"}`), "invalid event data: scheduled: "},
		{"scheduled bad timeout", "new", events.KindScheduled, raw(`{"run_at":"2025-03-14T13:00:00Z","timeout":"1ms"}`), "timeout: 1ms is outside 10ms to 168h0m0s"},
		{"submitted without data", "new", events.KindSubmitted, nil, "submitted event has no data"},
		{"submitted a string", "new", events.KindSubmitted, raw(`"go"`), "invalid event data: submitted: "},
		{"submitted unknown field", "new", events.KindSubmitted, raw(`{"input":{},"max_attemps":5}`), `json: unknown field "max_attemps"`},
		{"submitted too many attempts", "new", events.KindSubmitted, raw(`{"max_attempts":101}`), "max_attempts: 101 is outside 1 to 100"},
		{"submitted short ttl", "new", events.KindSubmitted, raw(`{"ttl":"500ms"}`), "ttl: 500ms is shorter than the minimum of 1s"},
		{"submitted negative timeout", "new", events.KindSubmitted, raw(`{"timeout":"-1s"}`), `invalid duration "-1s": must not be negative`},
		{"submitted ftp webhook", "new", events.KindSubmitted, raw(`{"webhook":{"url":"ftp://example.com"}}`), `webhook.url: scheme "ftp" is not http or https`},
		{"submitted empty metadata key", "new", events.KindSubmitted, raw(`{"metadata":{"":"v"}}`), `metadata: key "" must be 1 to 64 bytes`},
		{"submitted after scheduled", "scheduled", events.KindSubmitted, raw(`{"max_attempts":-1}`), "max_attempts: -1 is outside 1 to 100"},
		{"started without data", "queued", events.KindStarted, nil, "started event has no data"},
		{"started null", "queued", events.KindStarted, raw(`null`), "started attempt 0, expected 1"},
		{"started skips an attempt", "queued", events.KindStarted, raw(`{"attempt":2,"executor":"e"}`), "started attempt 2, expected 1"},
		{"started repeats the attempt", "retrying", events.KindStarted, raw(`{"attempt":1,"executor":"e"}`), "started attempt 1, expected 2"},
		{"started attempt as string", "queued", events.KindStarted, raw(`{"attempt":"1"}`), "invalid event data: started: "},
		{"progress above 100", "running", events.KindProgress, raw(`{"percent":150}`), "progress percent 150 is outside 0 to 100"},
		{"progress negative", "running", events.KindProgress, raw(`{"percent":-0.5}`), "progress percent -0.5 is outside 0 to 100"},
		{"progress percent as string", "running", events.KindProgress, raw(`{"percent":"50"}`), "invalid event data: progress: "},
		{"progress without data", "running", events.KindProgress, nil, "progress event has no data"},
		{"input_required without prompt", "running", events.KindInputRequired, raw(`{"input_schema":{}}`), "input_required has no prompt"},
		{"input_required empty prompt", "running", events.KindInputRequired, raw(`{"prompt":""}`), "input_required has no prompt"},
		{"input_required without data", "running", events.KindInputRequired, nil, "input_required event has no data"},
		{"pause_requested not an object", "running", events.KindPauseRequested, raw(`["stop"]`), "invalid event data: pause_requested: "},
		{"pause_requested reason a number", "running", events.KindPauseRequested, raw(`{"reason":5}`), "invalid event data: pause_requested: "},
		{"paused not an object", "running", events.KindPaused, raw(`"now"`), "invalid event data: paused: "},
		{"paused reason a number", "queued", events.KindPaused, raw(`{"reason":1}`), "invalid event data: paused: "},
		{"resumed without input", "input_required", events.KindResumed, nil, "resumed from input_required carries no input"},
		{"resumed empty object", "input_required", events.KindResumed, raw(`{}`), "resumed from input_required carries no input"},
		{"resumed not an object", "paused", events.KindResumed, raw(`5`), "invalid event data: resumed: "},
		{"resumed reason a number", "paused", events.KindResumed, raw(`{"reason":5}`), "invalid event data: resumed: "},
		{"cancel_requested reason a list", "running", events.KindCancelRequested, raw(`{"reason":[]}`), "invalid event data: cancel_requested: "},
		{"deadline_scheduled without deadline", "queued", events.KindDeadlineScheduled, raw(`{}`), "deadline_scheduled has no deadline"},
		{"deadline_scheduled bad deadline", "scheduled", events.KindDeadlineScheduled, raw(`{"deadline":"tomorrow"}`), "invalid event data: deadline_scheduled: "},
		{"deadline_scheduled without data", "running", events.KindDeadlineScheduled, nil, "deadline_scheduled event has no data"},
		{"retrying another attempt", "running", events.KindRetrying, raw(`{"attempt":2,"error":{"code":"timeout","message":"m"},"next_attempt_at":"2025-03-14T12:10:00Z"}`), "retrying names attempt 2, the current attempt is 1"},
		{"retrying without error code", "running", events.KindRetrying, raw(`{"attempt":1,"error":{"message":"m"},"next_attempt_at":"2025-03-14T12:10:00Z"}`), "retrying error has no code"},
		{"retrying bad time", "running", events.KindRetrying, raw(`{"attempt":1,"error":{"code":"timeout"},"next_attempt_at":"soon"}`), "invalid event data: retrying: "},
		{"retrying without data", "running", events.KindRetrying, nil, "retrying event has no data"},
		{"succeeded without result", "running", events.KindSucceeded, raw(`{}`), "succeeded must carry exactly one of result and result_ref"},
		{"succeeded null data", "running", events.KindSucceeded, raw(`null`), "succeeded must carry exactly one of result and result_ref"},
		{"succeeded both results", "running", events.KindSucceeded, raw(`{"result":1,"result_ref":{"object":"o"}}`), "succeeded must carry exactly one of result and result_ref"},
		{"succeeded result_ref a string", "running", events.KindSucceeded, raw(`{"result_ref":"o"}`), "invalid event data: succeeded: "},
		{"succeeded without data", "running", events.KindSucceeded, nil, "succeeded event has no data"},
		{"failed without code", "running", events.KindFailed, raw(`{"error":{"message":"boom"}}`), "failed error has no code"},
		{"failed without error", "running", events.KindFailed, raw(`{}`), "failed error has no code"},
		{"failed error a string", "running", events.KindFailed, raw(`{"error":"boom"}`), "invalid event data: failed: "},
		{"failed without data", "queued", events.KindFailed, nil, "failed event has no data"},
		{"cancelled reason a number", "queued", events.KindCancelled, raw(`{"reason":1}`), "invalid event data: cancelled: "},
		{"cancelled not an object", "running", events.KindCancelled, raw(`"stop"`), "invalid event data: cancelled: "},
		{"rejected without code", "queued", events.KindRejected, raw(`{"error":{"message":"bad"}}`), "rejected error has no code"},
		{"rejected without data", "new", events.KindRejected, nil, "rejected event has no data"},
	}

	states := make(map[string]foldState, len(foldStates))
	for _, s := range foldStates {
		states[s.name] = s
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, ok := states[tt.state]
			require.True(t, ok, "unknown state %s", tt.state)
			h := buildState(t, state)
			before := h.fold()
			require.NoError(t, before.Check(tt.kind), "the kind must be legal in the state, so that only the data is wrong")

			ev := h.next(tt.kind, tt.data)
			if tt.data == nil {
				ev.Data = nil
			}

			applied := *before
			err := applied.Apply(&ev)
			require.ErrorIs(t, err, events.ErrInvalidData)
			require.ErrorContains(t, err, tt.wantMsg)
			require.Equal(t, *before, applied, "Apply must leave the task unchanged on error")

			after := events.Fold(append(h.events(), ev))
			require.Len(t, after.Skipped, 1)
			require.Equal(t, events.SkippedEvent{Seq: ev.Seq, ID: ev.ID, Kind: tt.kind, Reason: err.Error()}, after.Skipped[0])

			want := *before
			want.LastSeq = ev.Seq
			want.Skipped = after.Skipped
			require.Equal(t, want, *after)
		})
	}
}

func TestFoldIgnoresDataOfDataFreeKinds(t *testing.T) {
	t.Parallel()

	// The fold reads no data for these kinds, so unexpected data does not
	// make them invalid.
	for _, kind := range []events.Kind{events.KindDeadline, events.KindExpired} {
		h := newHistory(t).addValid(events.KindSubmitted)
		h.add(kind, json.RawMessage(`{"unexpected":true}`))
		task := h.fold()
		require.Empty(t, task.Skipped, kind)
		require.Equal(t, 2, task.Events, kind)
	}
}

func TestFoldSkipsIncompleteDeliveryRecords(t *testing.T) {
	t.Parallel()

	for _, kind := range []events.Kind{events.KindDelivered, events.KindDeliveryFailed} {
		for _, data := range []string{`{"unexpected":true}`, `{"event_id":"e","endpoint":"http://127.0.0.1/","attempt":0}`, `{"endpoint":"http://127.0.0.1/","attempt":1}`} {
			h := newHistory(t).addValid(events.KindSubmitted)
			h.add(kind, json.RawMessage(data))
			task := h.fold()
			require.Len(t, task.Skipped, 1, "%s %s", kind, data)
			require.Contains(t, task.Skipped[0].Reason, "needs event_id, endpoint and an attempt", "%s %s", kind, data)
			require.Equal(t, 0, task.Deliveries+task.DeliveryFailures, "%s %s", kind, data)
		}
	}
}

func TestFoldLastSeqCountsSkipped(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted)
	h.add(events.KindProgress, progressData) // illegal while queued
	h.add(events.KindStarted, events.Started{Attempt: 5, Executor: "e"})
	task := h.fold()

	require.Equal(t, events.StatusQueued, task.Status)
	require.Equal(t, uint64(3), task.LastSeq)
	require.Equal(t, 1, task.Events)
	require.Len(t, task.Skipped, 2)
	require.Equal(t, uint64(2), task.Skipped[0].Seq)
	require.Equal(t, events.KindProgress, task.Skipped[0].Kind)
	require.Contains(t, task.Skipped[0].Reason, "illegal transition: progress while the task is queued")
	require.Equal(t, uint64(3), task.Skipped[1].Seq)
	require.Contains(t, task.Skipped[1].Reason, "invalid event data: started attempt 5, expected 1")
}

func TestFoldLastSeqNeverDecreases(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
	evs := h.events()
	evs[0].Seq = 7
	evs[1].Seq = 0 // not yet stored

	task := events.Fold(evs)
	require.Equal(t, uint64(7), task.LastSeq)
	require.Equal(t, events.StatusRunning, task.Status)
}

func TestFoldEmpty(t *testing.T) {
	t.Parallel()

	task := events.Fold(nil)
	require.False(t, task.Exists())
	require.False(t, task.Terminal())
	require.Equal(t, events.StatusNew, task.Status)
	require.Zero(t, task.LastSeq)
	require.ErrorIs(t, task.Check(events.KindDelivered), events.ErrIllegalTransition)
	require.ErrorContains(t, task.Check(events.KindStarted), "started while the task is not yet submitted")
	require.ErrorContains(t, task.Check(events.KindDelivered), "delivered before the task was submitted")
}

func TestFoldStartedAttempts(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted)
	h.add(events.KindStarted, events.Started{Attempt: 1, Executor: "a"})
	h.addValid(events.KindRetrying)
	h.add(events.KindStarted, events.Started{Attempt: 1, Executor: "b"}) // the same attempt again
	h.add(events.KindStarted, events.Started{Attempt: 3, Executor: "b"}) // one skipped
	h.add(events.KindStarted, events.Started{Attempt: 2, Executor: "b"})
	task := h.fold()

	require.Equal(t, events.StatusRunning, task.Status)
	require.Equal(t, 2, task.Attempt)
	require.Equal(t, "b", task.Executor)
	require.Len(t, task.Skipped, 2)
	require.Equal(t, uint64(4), task.Skipped[0].Seq)
	require.Equal(t, uint64(5), task.Skipped[1].Seq)
}

func TestFoldTakeoverCountsFailure(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindProgress)
	h.add(events.KindStarted, events.Started{Attempt: 2, Executor: "executor-b"})
	task := h.fold()

	require.Empty(t, task.Skipped)
	require.Equal(t, events.StatusRunning, task.Status)
	require.Equal(t, 2, task.Attempt)
	require.Equal(t, 1, task.Failures, "the lost attempt counts as a failure")
	require.Equal(t, "executor-b", task.Executor)
	require.Nil(t, task.Progress, "the new attempt starts without the lost attempt's progress")
	require.JSONEq(t, `{"offset":425}`, string(task.Checkpoint), "the new attempt resumes from the last checkpoint")
}

func TestFoldStartedRecordsMessage(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted)
	h.add(events.KindStarted, events.Started{Attempt: 1, Executor: "a", MessageSeq: 1, Delivery: 1})
	task := h.fold()
	require.Equal(t, uint64(1), task.AttemptMessageSeq)
	require.Equal(t, uint64(1), task.AttemptDelivery)

	// A takeover after the lease lapsed records the later delivery.
	h.add(events.KindStarted, events.Started{Attempt: 2, Executor: "b", MessageSeq: 1, Delivery: 2})
	task = h.fold()
	require.Empty(t, task.Skipped)
	require.Equal(t, uint64(1), task.AttemptMessageSeq)
	require.Equal(t, uint64(2), task.AttemptDelivery)

	// A writer that records neither leaves them zero.
	h.addValid(events.KindRetrying).addValid(events.KindStarted)
	task = h.fold()
	require.Zero(t, task.AttemptMessageSeq)
	require.Zero(t, task.AttemptDelivery)
}

func TestFoldRetryingCountsFailures(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted)
	for range 3 {
		h.addValid(events.KindStarted).addValid(events.KindRetrying)
	}
	h.addValid(events.KindStarted)
	task := h.fold()
	require.Empty(t, task.Skipped)
	require.Equal(t, 3, task.Failures)
	require.Equal(t, 4, task.Attempt)
	require.Equal(t, events.StatusRunning, task.Status)
	require.Nil(t, task.Error, "a new attempt clears the previous attempt's error")
	require.True(t, task.NextAttemptAt.IsZero())

	h.addValid(events.KindFailed)
	task = h.fold()
	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, 3, task.Failures, "a failed event ends the task and is not counted as a retry")
	require.Equal(t, events.CodeHandlerError, task.Error.Code)
}

func TestFoldCancelRequestBeatsSuccess(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindCancelRequested)
	task := h.fold()
	err := task.Check(events.KindSucceeded)
	require.ErrorIs(t, err, events.ErrIllegalTransition)
	require.ErrorContains(t, err, "succeeded after a cancel was requested")

	h.addValid(events.KindSucceeded).addValid(events.KindCancelled)
	task = h.fold()
	require.Equal(t, events.StatusCancelled, task.Status)
	require.Nil(t, task.Result)
	require.False(t, task.CancelRequested, "a terminal task has no open request")
	require.Len(t, task.Skipped, 1)
	require.Equal(t, events.KindSucceeded, task.Skipped[0].Kind)
}

func TestFoldPauseRequestBlocksRetry(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindPauseRequested)
	task := h.fold()
	require.ErrorContains(t, task.Check(events.KindRetrying), "retrying after a pause was requested")
	require.ErrorContains(t, task.Check(events.KindPauseRequested), "pause_requested after a pause was requested")

	h.addValid(events.KindPaused).addValid(events.KindResumed).addValid(events.KindStarted)
	task = h.fold()
	require.Empty(t, task.Skipped)
	require.Equal(t, events.StatusRunning, task.Status)
	require.False(t, task.PauseRequested)
	require.Equal(t, 2, task.Attempt)
	require.JSONEq(t, `{"offset":600}`, string(task.Checkpoint))
}

func TestFoldIgnoresEventsAfterTerminal(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindSucceeded)
	ended := h.fold()

	h.add(events.KindDeadline, nil) // a schedule that fired in the race
	h.add(events.KindStarted, events.Started{Attempt: 2, Executor: "late"})
	h.addValid(events.KindDelivered)
	h.add(events.KindFailed, failedData)
	h.addValid(events.KindDeliveryFailed)
	h.addValid(events.KindDelivered)
	task := h.fold()

	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, ended.Result, task.Result)
	require.Nil(t, task.Error)
	require.False(t, task.DeadlinePassed)
	require.Equal(t, 1, task.Attempt)
	require.Equal(t, 2, task.Deliveries)
	require.Equal(t, 1, task.DeliveryFailures)
	require.Equal(t, uint64(9), task.LastSeq)
	require.Equal(t, 6, task.Events)

	skipped := make([]events.Kind, len(task.Skipped))
	for i, s := range task.Skipped {
		skipped[i] = s.Kind
		require.Contains(t, s.Reason, "after the task ended as succeeded")
	}
	require.Equal(t, []events.Kind{events.KindDeadline, events.KindStarted, events.KindFailed}, skipped)
}

func TestFoldRejectedFirstAdoptsTask(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindRejected)
	task := h.fold()

	require.Empty(t, task.Skipped)
	require.True(t, task.Exists())
	require.True(t, task.Terminal())
	require.Equal(t, events.StatusRejected, task.Status)
	require.Equal(t, testTaskID, task.ID)
	require.Equal(t, testTenant, task.Tenant)
	require.Equal(t, testTaskType, task.Type)
	require.Equal(t, historyStart, task.Created)
	require.Equal(t, events.CodeInvalidInput, task.Error.Code)
	require.Equal(t, events.DefaultMaxAttempts, task.MaxAttempts())
	require.Equal(t, historyStart.Add(events.DefaultTTL), task.ExpiresAt())

	h.addValid(events.KindDelivered)
	require.Equal(t, 1, h.fold().Deliveries)
}

func TestFoldRejectedLaterKeepsIdentity(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindScheduled).addValid(events.KindRejected)
	task := h.fold()
	require.Equal(t, events.StatusRejected, task.Status)
	require.Equal(t, historyStart, task.Created, "created is the time of the first event")
	require.Equal(t, historyStart.Add(time.Second), task.Updated)
}

func TestApplyWrongTask(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		change func(*events.Event)
	}{
		{"another task id", func(ev *events.Event) { ev.TaskID = "01JQ4OTHER0000000000000000" }},
		{"another tenant", func(ev *events.Event) { ev.Tenant = "globex" }},
		{"another task type", func(ev *events.Event) { ev.TaskType = "files.other" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t).addValid(events.KindSubmitted)
			task := h.fold()
			before := *task

			ev := h.next(events.KindStarted, events.Started{Attempt: 1, Executor: "e"})
			tt.change(&ev)
			err := task.Apply(&ev)
			require.ErrorIs(t, err, events.ErrWrongTask)
			require.ErrorContains(t, err, "event "+ev.ID+" is for task "+ev.Tenant+"/"+ev.TaskID+" of type "+ev.TaskType+", not acme/"+testTaskID+" of type files.manifest")
			require.Equal(t, before, *task)

			task.Fold(&ev)
			require.Equal(t, events.StatusQueued, task.Status)
			require.Len(t, task.Skipped, 1)
			require.Equal(t, err.Error(), task.Skipped[0].Reason)
			require.Equal(t, ev.Seq, task.LastSeq)
		})
	}
}

func TestFoldPrefersStoredTime(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindProgress)
	evs := h.events()
	stored := historyStart.Add(time.Hour)
	for i := range evs {
		evs[i].Stored = stored.Add(time.Duration(i) * time.Millisecond)
	}

	task := events.Fold(evs)
	require.Equal(t, evs[0].Time, task.Created, "created is the CloudEvents time of the first event")
	require.Equal(t, evs[2].Stored, task.Updated)
	require.Equal(t, evs[2].Stored, task.ProgressAt)
}

func TestFoldCreatedTime(t *testing.T) {
	t.Parallel()

	stored := historyStart.Add(time.Minute)
	tests := []struct {
		name   string
		ceTime time.Time
		want   time.Time
	}{
		{"CloudEvents time before storing", historyStart, historyStart},
		{"no CloudEvents time", time.Time{}, stored},
		{"CloudEvents time after storing", stored.Add(time.Hour), stored},
	}
	for _, tt := range tests {
		h := newHistory(t).addValid(events.KindSubmitted)
		evs := h.events()
		evs[0].Time = tt.ceTime
		evs[0].Stored = stored
		task := events.Fold(evs)
		require.Equal(t, tt.want, task.Created, tt.name)
		require.Equal(t, tt.want.Add(48*time.Hour), task.ExpiresAt(), tt.name)
	}
}

func TestFoldDelayedTaskAfterScheduleFired(t *testing.T) {
	t.Parallel()

	// The schedule of the scheduled event published a submitted event with
	// the scheduled event's time and data, and the server then removed the
	// scheduled event. The deadline_scheduled event that followed it comes
	// first now.
	h := newHistory(t).addValid(events.KindScheduled).addValid(events.KindDeadlineScheduled)
	scheduled := h.events()[0]
	fired := h.next(events.KindSubmitted, scheduledData)
	fired.ID = scheduled.ID
	fired.Time = scheduled.Time
	fired.Stored = scheduledRunAt
	evs := []events.Event{h.events()[1], fired}

	task := events.Fold(evs)
	require.Empty(t, task.Skipped)
	require.Equal(t, events.StatusQueued, task.Status)
	require.Equal(t, historyStart, task.Created, "created stays the time of the scheduled event")
	require.Equal(t, scheduledStored, task.Submission)
	require.Equal(t, scheduledRunAt, task.Updated)
	require.Equal(t, 2, task.Events)
}

func TestFoldInterruptedRetryIsNoFailure(t *testing.T) {
	t.Parallel()

	interrupted := func(task *events.Task) events.Retrying {
		return events.Retrying{
			Attempt:       task.Attempt,
			Error:         events.TaskError{Code: events.CodeInterrupted, Message: "the executor stopped", Retryable: true},
			NextAttemptAt: nextAttemptAt,
		}
	}
	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
	h.add(events.KindRetrying, interrupted(h.fold()))
	h.addValid(events.KindStarted)
	h.add(events.KindRetrying, interrupted(h.fold()))
	h.addValid(events.KindStarted).addValid(events.KindRetrying).addValid(events.KindStarted)
	task := h.fold()

	require.Empty(t, task.Skipped)
	require.Equal(t, events.StatusRunning, task.Status)
	require.Equal(t, 4, task.Attempt)
	require.Equal(t, 1, task.Failures, "only the failed attempt counts, not the two interrupted ones")
}

func TestFoldCountsResumes(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindPaused)
	h.add(events.KindResumed, events.Resumed{Reason: "the grant arrived"})
	h.addValid(events.KindStarted).addValid(events.KindInputRequired).addValid(events.KindResumed)
	task := h.fold()

	require.Empty(t, task.Skipped)
	require.Equal(t, 2, task.Resumes)
	require.Equal(t, "the grant arrived", task.Reason, "a resume without a reason keeps the last one")
	require.JSONEq(t, `true`, string(task.Answer))
	require.JSONEq(t, `{"offset":500}`, string(task.Checkpoint))

	// A pause and a resume later, the answer still holds.
	h.addValid(events.KindStarted).addValid(events.KindPauseRequested).addValid(events.KindPaused)
	h.add(events.KindResumed, nil)
	task = h.fold()
	require.Empty(t, task.Skipped)
	require.Equal(t, 3, task.Resumes)
	require.JSONEq(t, `true`, string(task.Answer))
}

func TestFoldResumedFromPausedWithoutData(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindPaused)
	h.add(events.KindResumed, nil)
	task := h.fold()
	require.Empty(t, task.Skipped)
	require.Equal(t, events.StatusQueued, task.Status)
	require.Nil(t, task.Answer)
}

func TestFoldScheduledThenSubmitted(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindScheduled)
	h.add(events.KindSubmitted, scheduledData) // as when a schedule republishes the scheduled data
	task := h.fold()

	require.Empty(t, task.Skipped)
	require.Equal(t, events.StatusQueued, task.Status)
	require.Equal(t, historyStart, task.Created)
	require.Equal(t, scheduledStored, task.Submission)
}

func TestFoldSucceededWithResultRef(t *testing.T) {
	t.Parallel()

	ref := &events.ResultRef{
		Object:    "acme/01JQ4TASK00000000000000000/result",
		Size:      10 << 20,
		MediaType: "application/json",
		SHA256:    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}
	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
	h.add(events.KindSucceeded, events.Succeeded{ResultRef: ref})
	task := h.fold()

	require.Empty(t, task.Skipped)
	require.Equal(t, ref, task.ResultRef)
	require.Nil(t, task.Result)

	// The view carries the reference without a link, which only the HTTP
	// API can sign.
	v := task.View()
	require.Equal(t, &events.ResultLink{ResultRef: *ref}, v.ResultRef)
	require.Nil(t, v.Result)
}

func TestFoldSucceededWithNullResult(t *testing.T) {
	t.Parallel()

	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
	h.add(events.KindSucceeded, json.RawMessage(`{"result":null}`))
	task := h.fold()

	require.Empty(t, task.Skipped, "null is a result")
	require.Equal(t, events.StatusSucceeded, task.Status)
	require.Equal(t, json.RawMessage(`null`), task.Result)
}

func TestTaskExpiresAt(t *testing.T) {
	t.Parallel()

	task := newHistory(t).addValid(events.KindSubmitted).fold()
	require.Equal(t, historyStart.Add(48*time.Hour), task.ExpiresAt())
	require.Equal(t, 4, task.MaxAttempts())

	var zero events.Task
	require.Equal(t, time.Time{}.Add(events.DefaultTTL), zero.ExpiresAt())
	require.Equal(t, events.DefaultMaxAttempts, zero.MaxAttempts())
}

func TestTaskTTLLeft(t *testing.T) {
	t.Parallel()

	task := newHistory(t).addValid(events.KindSubmitted).fold()
	expires := historyStart.Add(48 * time.Hour)

	tests := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"at creation", historyStart, 48 * time.Hour},
		{"halfway", historyStart.Add(24 * time.Hour), 24 * time.Hour},
		{"rounds up a little", expires.Add(-10*time.Minute - 400*time.Millisecond), 10*time.Minute + time.Second},
		{"rounds up", expires.Add(-10*time.Minute - 600*time.Millisecond), 10*time.Minute + time.Second},
		{"whole seconds", expires.Add(-10 * time.Minute), 10 * time.Minute},
		{"one second left", expires.Add(-time.Second), time.Second},
		{"a second and a nanosecond left", expires.Add(-time.Second - 1), 2 * time.Second},
		{"under a second left", expires.Add(-400 * time.Millisecond), events.MinTTL},
		{"at expiry", expires, events.MinTTL},
		{"after expiry", expires.Add(time.Hour), events.MinTTL},
		{"before creation", historyStart.Add(-time.Hour), 49 * time.Hour},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, task.TTLLeft(tt.now), tt.name)
	}
}

// BenchmarkFold folds a task of ten events: two attempts, progress, a retry
// and a success.
func BenchmarkFold(b *testing.B) {
	h := newHistory(b).addValid(events.KindSubmitted).addValid(events.KindStarted)
	h.addValid(events.KindProgress).addValid(events.KindProgress).addValid(events.KindRetrying)
	h.addValid(events.KindStarted).addValid(events.KindProgress).addValid(events.KindProgress)
	h.addValid(events.KindSucceeded).addValid(events.KindDelivered)
	evs := h.events()
	if task := events.Fold(evs); len(task.Skipped) > 0 || task.Status != events.StatusSucceeded {
		b.Fatalf("history folds to %s with skipped events %v", task.Status, task.Skipped)
	}

	b.ReportAllocs()
	for b.Loop() {
		events.Fold(evs)
	}
}

func TestFoldCancelReason(t *testing.T) {
	t.Parallel()

	// A paused task cancelled without a reason does not take the pause's.
	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).
		add(events.KindPaused, events.Paused{Reason: "paused for the night"}).
		add(events.KindCancelled, nil)
	task := h.fold()
	require.Equal(t, events.StatusCancelled, task.Status)
	require.Empty(t, task.Reason)

	// A running task keeps the cancel request's reason when the cancelled
	// event gives none.
	h = newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).
		add(events.KindCancelRequested, events.Reason{Reason: "no longer needed"}).
		add(events.KindCancelled, nil)
	task = h.fold()
	require.Equal(t, events.StatusCancelled, task.Status)
	require.Equal(t, "no longer needed", task.Reason)
}
