package bus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

// scheduleWait bounds how long a test waits for a schedule to fire: the
// schedules below fire one to two seconds after they are stored.
const scheduleWait = 15 * time.Second

// delayedSubmission returns a submission that runs at runAt.
func delayedSubmission(runAt time.Time) events.Submission {
	return events.Submission{Input: json.RawMessage(`{"dir":"."}`), RunAt: &runAt}
}

// schedule appends a scheduled event for taskID whose schedule publishes
// the submitted event at runAt, and returns the event and its sequence.
func schedule(t *testing.T, b *bus.Bus, taskID string, runAt time.Time) (*events.Event, uint64) {
	t.Helper()
	ev := newEvent(t, events.KindScheduled, taskID, delayedSubmission(runAt))
	seq, err := b.Append(context.Background(), ev, bus.AppendOptions{
		TTL:      time.Hour,
		Schedule: &bus.Schedule{At: runAt, Target: events.KindSubmitted, TTL: 50 * time.Minute},
	})
	require.NoError(t, err)
	return ev, seq
}

func TestScheduledEventPublishesSubmitted(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	runAt := time.Now().Add(time.Second)
	holder, _ := schedule(t, b, "later", runAt)
	task, err := b.ReadTask(ctx, "acme", "later")
	require.NoError(t, err)
	require.Equal(t, events.StatusScheduled, task.Status)

	require.Eventually(t, func() bool {
		task, err = b.ReadTask(ctx, "acme", "later")
		return err == nil && task.Status == events.StatusQueued
	}, scheduleWait, 20*time.Millisecond)

	te, err := b.ReadEvents(ctx, "acme", "later", 0)
	require.NoError(t, err)
	require.Len(t, te.Events, 1, "the server removes the scheduled event once its schedule fired")
	fired := te.Events[0]
	require.Equal(t, events.KindSubmitted, fired.Kind)
	require.Equal(t, holder.ID, fired.ID)
	require.True(t, holder.Time.Equal(fired.Time))
	require.False(t, fired.Stored.Before(runAt.Truncate(time.Second)), "fired at %s, before run_at %s", fired.Stored, runAt)
	require.True(t, holder.Time.Equal(task.Created), "created stays the time of the scheduled event")
	require.Empty(t, task.Skipped)

	msg := storedMsg(t, b, fired.Seq)
	require.Equal(t, "3000", msg.Header.Get(bus.HeaderTTL), "the copy carries the schedule's TTL")
	require.Equal(t, "handoff.task.acme.later.scheduled.files.manifest", msg.Header.Get(bus.HeaderScheduler))
	require.Empty(t, msg.Header.Get(bus.HeaderExpectedSubjSeq))
}

func TestDeadlineScheduledPublishesDeadline(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	deadline := time.Now().Add(time.Second)
	sub := submission()
	sub.Deadline = &deadline
	seq, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "bounded", sub), bus.AppendOptions{TTL: time.Hour})
	require.NoError(t, err)
	holder := newEvent(t, events.KindDeadlineScheduled, "bounded", events.DeadlineScheduled{Deadline: deadline})
	_, err = b.Append(ctx, holder, bus.AppendOptions{
		ExpectSeq: seq,
		TTL:       time.Hour,
		Schedule:  &bus.Schedule{At: deadline, Target: events.KindDeadline, TTL: time.Hour},
	})
	require.NoError(t, err)

	var task *events.Task
	require.Eventually(t, func() bool {
		task, err = b.ReadTask(ctx, "acme", "bounded")
		return err == nil && task.DeadlinePassed
	}, scheduleWait, 20*time.Millisecond)

	require.Equal(t, events.StatusQueued, task.Status)
	te, err := b.ReadEvents(ctx, "acme", "bounded", 0)
	require.NoError(t, err)
	var kinds []events.Kind
	for _, ev := range te.Events {
		kinds = append(kinds, ev.Kind)
	}
	require.Equal(t, []events.Kind{events.KindSubmitted, events.KindDeadline}, kinds)
	require.Equal(t, holder.ID, te.Events[1].ID)
}

func TestPurgeSchedulesStopsThem(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	runAt := time.Now().Add(time.Second)
	holder, seq := schedule(t, b, "cancelled", runAt)
	// A second task fires at the same time, so that the test knows when
	// the first one would have fired.
	schedule(t, b, "witness", runAt)

	// The task is cancelled while scheduled: a submitted copy of its
	// scheduled event and the cancelled event land as one batch, so the
	// task keeps its submission once the scheduled event is gone.
	copied := newEvent(t, events.KindSubmitted, "cancelled", delayedSubmission(runAt))
	copied.Time = holder.Time
	cancelled := newEvent(t, events.KindCancelled, "cancelled", events.Reason{Reason: "plans changed"})
	last, err := b.AppendBatch(ctx, []*events.Event{copied, cancelled}, bus.AppendOptions{ExpectSeq: seq, TTL: time.Hour})
	require.NoError(t, err)
	require.NoError(t, b.PurgeSchedules(ctx, "acme", "cancelled", "files.manifest"))

	require.Eventually(t, func() bool {
		task, err := b.ReadTask(ctx, "acme", "witness")
		return err == nil && task.Status == events.StatusQueued
	}, scheduleWait, 20*time.Millisecond)

	te, err := b.ReadEvents(ctx, "acme", "cancelled", 0)
	require.NoError(t, err)
	require.Len(t, te.Events, 2)
	require.Equal(t, events.KindSubmitted, te.Events[0].Kind)
	require.Equal(t, events.KindCancelled, te.Events[1].Kind)
	require.Equal(t, last, te.LastSeq)
	require.Equal(t, te.Events[0].Seq+1, te.Events[1].Seq, "a batch is stored without gaps")

	task := events.Fold(te.Events)
	require.Equal(t, events.StatusCancelled, task.Status)
	require.True(t, holder.Time.Equal(task.Created))
	require.Equal(t, "plans changed", task.Reason)
	require.NotNil(t, task.Submission.RunAt)
}

func TestAppendBatchCompareAndSet(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	seq, err := b.Append(ctx, newEvent(t, events.KindSubmitted, "batch", submission()), bus.AppendOptions{})
	require.NoError(t, err)
	started := newEvent(t, events.KindStarted, "batch", events.Started{Attempt: 1, Executor: "x"})
	_, err = b.Append(ctx, started, bus.AppendOptions{ExpectSeq: seq})
	require.NoError(t, err)

	// A batch that read before the started event stores nothing.
	progress := newEvent(t, events.KindProgress, "batch", events.Progress{Percent: 10})
	done := newEvent(t, events.KindSucceeded, "batch", events.Succeeded{Result: json.RawMessage(`1`)})
	_, err = b.AppendBatch(ctx, []*events.Event{progress, done}, bus.AppendOptions{ExpectSeq: seq})
	require.ErrorIs(t, err, bus.ErrConflict)
	te, err := b.ReadEvents(ctx, "acme", "batch", 0)
	require.NoError(t, err)
	require.Len(t, te.Events, 2)

	other := newEvent(t, events.KindSubmitted, "other", submission())
	_, err = b.AppendBatch(ctx, []*events.Event{progress, other}, bus.AppendOptions{ExpectSeq: te.LastSeq})
	require.ErrorContains(t, err, "belongs to task acme/other")
	_, err = b.AppendBatch(ctx, nil, bus.AppendOptions{})
	require.Error(t, err)
}

func TestAppendRejectsInvalidSchedule(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	at := time.Now().Add(time.Hour)

	tests := []struct {
		name    string
		ev      *events.Event
		sched   bus.Schedule
		wantMsg string
	}{
		{"kind without schedule", newEvent(t, events.KindSubmitted, "s1", submission()), bus.Schedule{At: at, Target: events.KindSubmitted}, "a submitted event cannot hold a message schedule"},
		{"wrong target", newEvent(t, events.KindScheduled, "s2", delayedSubmission(at)), bus.Schedule{At: at, Target: events.KindDeadline}, "must publish a submitted event"},
		{"no time", newEvent(t, events.KindScheduled, "s3", delayedSubmission(at)), bus.Schedule{Target: events.KindSubmitted}, "the schedule has no time"},
	}
	for _, tt := range tests {
		_, err := b.Append(ctx, tt.ev, bus.AppendOptions{Schedule: &tt.sched})
		require.ErrorContains(t, err, tt.wantMsg, tt.name)
		_, err = b.AppendAsync(tt.ev, bus.AppendOptions{Schedule: &tt.sched})
		require.ErrorContains(t, err, tt.wantMsg, tt.name)
	}

	batch := newEvent(t, events.KindScheduled, "s4", delayedSubmission(at))
	_, err := b.AppendBatch(ctx, []*events.Event{batch}, bus.AppendOptions{Schedule: &bus.Schedule{At: at, Target: events.KindSubmitted}})
	require.ErrorContains(t, err, "cannot hold a message schedule")
}

func TestMessageScheduleHeaders(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	at := time.Date(2030, 1, 2, 3, 4, 5, 1, time.FixedZone("UTC+1", 3600))
	ev := newEvent(t, events.KindScheduled, "s1", delayedSubmission(at))

	msg := b.Message(ev, bus.AppendOptions{TTL: 90 * time.Second, Schedule: &bus.Schedule{At: at, Target: events.KindSubmitted, TTL: 1500 * time.Millisecond}})
	require.Equal(t, "@at 2030-01-02T02:04:06Z", msg.Header.Get(bus.HeaderSchedule), "rounded up to the next second, in UTC")
	require.Equal(t, "handoff.task.acme.s1.submitted.files.manifest", msg.Header.Get(bus.HeaderScheduleTarget))
	require.Equal(t, "1", msg.Header.Get(bus.HeaderScheduleTTL))
	require.Equal(t, "90", msg.Header.Get(bus.HeaderTTL))
	require.Equal(t, "0", msg.Header.Get(bus.HeaderExpectedSubjSeq))

	whole := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	msg = b.Message(ev, bus.AppendOptions{Schedule: &bus.Schedule{At: whole, Target: events.KindSubmitted}})
	require.Equal(t, "@at 2030-01-02T03:04:05Z", msg.Header.Get(bus.HeaderSchedule))
	require.Empty(t, msg.Header.Get(bus.HeaderScheduleTTL))
}

func TestDecodeScheduledCopy(t *testing.T) {
	holder := events.Event{
		ID: "01J0EVENT", Source: "/handoff/ingest", Kind: events.KindScheduled,
		TaskID: "01J0TASK", Tenant: "acme", TaskType: "files.manifest",
		Time: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC),
		Data: json.RawMessage(`{"input":{},"run_at":"2026-12-04T11:00:00Z"}`),
	}
	deadline := holder
	deadline.Kind = events.KindDeadlineScheduled
	deadline.Data = json.RawMessage(`{"deadline":"2026-12-04T12:00:00Z"}`)
	const (
		scheduledSubject = "handoff.task.acme.01J0TASK.scheduled.files.manifest"
		deadlineHolder   = "handoff.task.acme.01J0TASK.deadline_scheduled.files.manifest"
		deadlineSubject  = "handoff.task.acme.01J0TASK.deadline.files.manifest"
	)

	tests := []struct {
		name      string
		ev        events.Event
		subject   string
		scheduler string
		want      events.Kind
		wantMsg   string
	}{
		{"scheduled becomes submitted", holder, subjectSubmitted, scheduledSubject, events.KindSubmitted, ""},
		{"deadline_scheduled becomes deadline", deadline, deadlineSubject, deadlineHolder, events.KindDeadline, ""},
		{"scheduled on the deadline subject", holder, deadlineSubject, scheduledSubject, "", "holds no schedule of deadline events"},
		{"a kind without schedule", func() events.Event { e := holder; e.Kind = events.KindSubmitted; return e }(), subjectSubmitted, scheduledSubject, "", `CloudEvents type "dev.handoff.task.submitted", which holds no schedule`},
		{"holder of another task", holder, subjectSubmitted, "handoff.task.acme.OTHER.scheduled.files.manifest", "", "must come from " + scheduledSubject},
		{"holder of another kind", holder, subjectSubmitted, deadlineHolder, "", "must come from " + scheduledSubject},
	}
	for _, tt := range tests {
		msg := bus.Encode("handoff", &tt.ev)
		msg.Header.Set(bus.HeaderScheduler, tt.scheduler)
		got, err := bus.Decode(tt.subject, msg.Header, msg.Data, 9, time.Time{})
		if tt.wantMsg != "" {
			require.ErrorIs(t, err, bus.ErrInvalidEvent, tt.name)
			require.ErrorContains(t, err, tt.wantMsg, tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, got.Kind, tt.name)
		require.Equal(t, tt.ev.ID, got.ID, tt.name)
		require.Equal(t, tt.ev.Time, got.Time, tt.name)
	}

	// Without Nats-Scheduler the kinds must match as before.
	msg := bus.Encode("handoff", &holder)
	_, err := bus.Decode(subjectSubmitted, msg.Header, msg.Data, 9, time.Time{})
	require.ErrorContains(t, err, "does not match the subject's kind")
}

func TestVerifyNeedsAtomicPublish(t *testing.T) {
	srv := natstest.Start(t)
	b, err := bus.New(srv.Connect(t), "")
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, b.Provision(ctx, bus.StreamOptions{}))

	stream, err := b.JetStream().Stream(ctx, b.Names().TasksStream())
	require.NoError(t, err)
	cfg := stream.CachedInfo().Config
	require.True(t, cfg.AllowAtomicPublish)
	cfg.AllowAtomicPublish = false
	_, err = b.JetStream().UpdateStream(ctx, cfg)
	require.NoError(t, err)

	err = b.Verify(ctx)
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.ErrorContains(t, err, "lacks allow_atomic")
}

// storedMsg returns the raw message at seq in the tasks stream.
func storedMsg(t *testing.T, b *bus.Bus, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	stream, err := b.JetStream().Stream(ctx, b.Names().TasksStream())
	require.NoError(t, err)
	msg, err := stream.GetMsg(ctx, seq)
	require.NoError(t, err)
	return msg
}
