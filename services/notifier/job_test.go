package notifier

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestJobSubjects(t *testing.T) {
	ev := newTestEvent(t, events.KindSucceeded, nil)
	ev.Seq = 42
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	task := events.Task{Created: created, Submission: events.Submission{TTL: events.Duration(time.Hour)}}

	hook := newJob(&task, &ev, "https://hooks.example.com/h?token=s3cr3t", "")
	require.NoError(t, hook.validate())
	key := hook.endpointKey()
	require.True(t, strings.HasPrefix(key, "wh-"), key)
	require.Len(t, key, 27)
	require.NotContains(t, key, "s3cr3t")
	require.Equal(t, "handoff.delivery.acme."+key+".01JZ3K6Q4W8V0N2P5R7T9X1Y3B", hook.subject("handoff"))
	require.Equal(t, ev.ID+"/"+key, hook.msgID(""))
	require.Equal(t, "replay-1/"+ev.ID+"/"+key, hook.msgID("replay-1/"))

	// Every event of the task to the same URL shares the subject.
	other := newTestEvent(t, events.KindInputRequired, nil)
	same := newJob(&task, &other, hook.URL, "")
	require.Equal(t, hook.subject("handoff"), same.subject("handoff"))
	elsewhere := newJob(&task, &ev, "https://hooks.example.com/other", "")
	require.NotEqual(t, hook.subject("handoff"), elsewhere.subject("handoff"))

	sub := newJob(&task, &ev, "", "sub_01JZ3K6Q4W8V0N2P5R7T9X1Y3C")
	require.NoError(t, sub.validate())
	require.Equal(t, created, sub.TaskCreated)
	require.Equal(t, events.Duration(time.Hour), sub.TaskTTL)
	require.Equal(t, uint64(42), sub.EventSeq)
	require.Empty(t, sub.URL)
	require.Equal(t, "handoff.delivery.acme.sub_01JZ3K6Q4W8V0N2P5R7T9X1Y3C.01JZ3K6Q4W8V0N2P5R7T9X1Y3B", sub.subject("handoff"))
}

func TestDecodeJobRejects(t *testing.T) {
	tests := map[string]string{
		"not JSON":         `{`,
		"no endpoint":      `{"tenant":"acme","task_id":"t1","event_id":"e1","event_seq":1}`,
		"two endpoints":    `{"tenant":"acme","task_id":"t1","event_id":"e1","event_seq":1,"url":"https://a.example.com","subscription_id":"sub_1"}`,
		"bad tenant":       `{"tenant":"a.b","task_id":"t1","event_id":"e1","event_seq":1,"url":"https://a.example.com"}`,
		"bad task id":      `{"tenant":"acme","task_id":"t.1","event_id":"e1","event_seq":1,"url":"https://a.example.com"}`,
		"missing event id": `{"tenant":"acme","task_id":"t1","event_seq":1,"url":"https://a.example.com"}`,
		"no event seq":     `{"tenant":"acme","task_id":"t1","event_id":"e1","url":"https://a.example.com"}`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decodeJob([]byte(data))
			require.Error(t, err)
		})
	}
	j, err := decodeJob([]byte(`{"tenant":"acme","task_id":"t1","event_id":"e1","event_seq":7,"subscription_id":"sub_1","attempt_base":2,"replay":true}`))
	require.NoError(t, err)
	require.Equal(t, uint64(7), j.EventSeq)
	require.Equal(t, 2, j.AttemptBase)
	require.True(t, j.Replay)
}

func TestBlockedDelayGrows(t *testing.T) {
	require.Equal(t, 100*time.Millisecond, blockedDelay(0))
	require.Equal(t, 100*time.Millisecond, blockedDelay(1))
	require.Equal(t, 200*time.Millisecond, blockedDelay(2))
	require.Equal(t, 800*time.Millisecond, blockedDelay(4))
	require.Equal(t, 30*time.Second, blockedDelay(20))
	require.Equal(t, 30*time.Second, blockedDelay(1<<40))
}

func TestEndpointSlots(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newEndpointSlots(2, 15*time.Second)
	s.now = func() time.Time { return now }

	a, _, ok := s.acquire("https://a.example.com")
	require.True(t, ok)
	now = now.Add(4 * time.Second)
	b, _, ok := s.acquire("https://a.example.com")
	require.True(t, ok)
	require.NotEqual(t, a, b)

	// Another endpoint has its own slots.
	c, _, ok := s.acquire("https://b.example.com")
	require.True(t, ok)

	// A busy endpoint: wait about as long as its oldest attempt has run.
	now = now.Add(6 * time.Second)
	_, wait, ok := s.acquire("https://a.example.com")
	require.False(t, ok)
	require.GreaterOrEqual(t, wait, 8*time.Second)
	require.Less(t, wait, 12*time.Second)

	// Never longer than the maximum, never shorter than minBusyDelay.
	now = now.Add(time.Minute)
	_, wait, _ = s.acquire("https://a.example.com")
	require.LessOrEqual(t, wait, 18*time.Second)
	s.release("https://a.example.com", a)
	_, _, ok = s.acquire("https://a.example.com")
	require.True(t, ok, "a released slot is free again")

	fresh := newEndpointSlots(1, 15*time.Second)
	fresh.now = s.now
	_, _, ok = fresh.acquire("https://c.example.com")
	require.True(t, ok)
	_, wait, ok = fresh.acquire("https://c.example.com")
	require.False(t, ok)
	require.GreaterOrEqual(t, wait, 40*time.Millisecond)
	require.Less(t, wait, 60*time.Millisecond)

	s.release("https://b.example.com", c)
	require.NotContains(t, s.loads, "https://b.example.com", "an idle endpoint leaves no entry")
}

func TestEndpointSlotsWaitForQuickEndpoint(t *testing.T) {
	s := newEndpointSlots(1, 15*time.Second)
	held, _, ok := s.acquire("https://a.example.com")
	require.True(t, ok)

	// The attempt in flight is young, so the next job waits in the worker
	// and gets the slot when it is released.
	got := make(chan bool, 1)
	go func() {
		_, _, ok := s.acquire("https://a.example.com")
		got <- ok
	}()
	s.release("https://a.example.com", held)
	select {
	case ok := <-got:
		require.True(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting job did not get the released slot")
	}
}

func TestJobTTLLeft(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, task := range []events.Task{
		{Created: now.Add(-time.Minute), Submission: events.Submission{TTL: events.Duration(2 * time.Hour)}},
		{Created: now.Add(-time.Minute - 300*time.Millisecond), Submission: events.Submission{TTL: events.Duration(time.Hour)}},
		{Created: now.Add(-time.Hour)},
		{Created: now.Add(-48 * time.Hour), Submission: events.Submission{TTL: events.Duration(time.Hour)}},
	} {
		ev := newTestEvent(t, events.KindSucceeded, nil)
		ev.Seq = 1
		j := newJob(&task, &ev, "https://hooks.example.com/", "")

		// Through the job's JSON, as a worker gets it.
		data, err := json.Marshal(&j)
		require.NoError(t, err)
		decoded, err := decodeJob(data)
		require.NoError(t, err)
		require.Equal(t, task.TTLLeft(now), decoded.ttlLeft(now))
	}
}

func TestJobExpired(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	short := job{TaskCreated: created, TaskTTL: events.Duration(time.Hour)}
	require.False(t, short.expired(created.Add(59*time.Minute)))
	require.True(t, short.expired(created.Add(time.Hour)))

	// A task without a ttl keeps the default.
	long := job{TaskCreated: created}
	require.False(t, long.expired(created.Add(time.Hour)))
	require.True(t, long.expired(created.Add(events.DefaultTTL)))
}
