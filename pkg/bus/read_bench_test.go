package bus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

// retainTasks stores n tasks of four events each (submitted, started,
// progress, succeeded) with asynchronous publishes.
func retainTasks(tb testing.TB, b *bus.Bus, n int) {
	tb.Helper()
	js := b.JetStream()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("t%06d", i)
		for _, ev := range []*events.Event{
			newEvent(tb, events.KindSubmitted, id, submission()),
			newEvent(tb, events.KindStarted, id, events.Started{Attempt: 1, Executor: "x"}),
			newEvent(tb, events.KindProgress, id, events.Progress{Percent: 50}),
			newEvent(tb, events.KindSucceeded, id, events.Succeeded{Result: []byte(`{}`)}),
		} {
			_, err := js.PublishMsgAsync(bus.Encode("handoff", ev))
			require.NoError(tb, err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
}

// TestReadEventsAnywhereInStream reads tasks at the start, middle and end
// of a stream, whole and after their first event.
func TestReadEventsAnywhereInStream(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	retainTasks(t, b, 3000)

	for _, id := range []string{"t000000", "t001500", "t002999"} {
		te, err := b.ReadEvents(ctx, "acme", id, 0)
		require.NoError(t, err)
		require.Len(t, te.Events, 4, id)
		require.Equal(t, te.Events[3].Seq, te.LastSeq, id)

		tail, err := b.ReadEvents(ctx, "acme", id, te.Events[0].Seq)
		require.NoError(t, err)
		require.Len(t, tail.Events, 3, id)
		require.Equal(t, te.Events[1:], tail.Events, id)

		none, err := b.ReadEvents(ctx, "acme", id, te.LastSeq)
		require.NoError(t, err)
		require.Empty(t, none.Events, id)
		require.Equal(t, te.LastSeq, none.LastSeq, id)
	}
}

// BenchmarkReadEventsRetained reads the first task of a stream of 20,000
// retained tasks: the case where a search past the task's last event would
// scan every later block.
func BenchmarkReadEventsRetained(b *testing.B) {
	bs := natstest.Start(b).Bus(b)
	ctx := context.Background()
	retainTasks(b, bs, 20000)
	b.ReportAllocs()
	for b.Loop() {
		te, err := bs.ReadEvents(ctx, "acme", "t000001", 0)
		if err != nil || len(te.Events) != 4 {
			b.Fatalf("read: %v, %d events", err, len(te.Events))
		}
	}
}
