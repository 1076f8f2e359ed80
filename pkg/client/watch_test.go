package client

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

const streamText = `: a comment before anything

id: 3
event: submitted
data: {"specversion":"1.0","id":"e1","source":"/handoff/ingest","type":"dev.handoff.task.submitted","subject":"t1","time":"2030-01-02T15:04:05Z","tenant":"acme","tasktype":"echo","data":{"input":{}}}

: heartbeat

id: 7
event: started
data: {"specversion":"1.0","id":"e2","source":"/x","type":"dev.handoff.task.started","subject":"t1","tenant":"acme","tasktype":"echo","attempt":2,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}

`

func TestReadEvents(t *testing.T) {
	out := make(chan events.Event, 10)
	var last uint64
	require.NoError(t, readEvents(context.Background(), strings.NewReader(streamText), out, &last))
	close(out)

	var got []events.Event
	for ev := range out {
		got = append(got, ev)
	}
	require.Len(t, got, 2)
	require.Equal(t, uint64(7), last)

	require.Equal(t, uint64(3), got[0].Seq)
	require.Equal(t, events.KindSubmitted, got[0].Kind)
	require.Equal(t, "e1", got[0].ID)
	require.Equal(t, "t1", got[0].TaskID)
	require.Equal(t, "acme", got[0].Tenant)
	require.Equal(t, "echo", got[0].TaskType)
	require.Equal(t, 2030, got[0].Time.Year())
	require.JSONEq(t, `{"input": {}}`, string(got[0].Data))

	require.Equal(t, events.KindStarted, got[1].Kind)
	require.Equal(t, 2, got[1].Attempt)
	require.NotEmpty(t, got[1].TraceParent)
	require.Nil(t, got[1].Data)
}

func TestReadEventsSkipsDelivered(t *testing.T) {
	out := make(chan events.Event, 10)
	last := uint64(3)
	require.NoError(t, readEvents(context.Background(), strings.NewReader(streamText), out, &last))
	close(out)
	var kinds []events.Kind
	for ev := range out {
		kinds = append(kinds, ev.Kind)
	}
	require.Equal(t, []events.Kind{events.KindStarted}, kinds, "an event at or before the last one is not sent again")
}

func TestReadEventsInvalid(t *testing.T) {
	for name, text := range map[string]string{
		"id not a sequence": "id: first\ndata: {}\n\n",
		"data not JSON":     "id: 1\ndata: {\n\n",
		"foreign type":      `id: 1` + "\n" + `data: {"type": "com.example.other"}` + "\n\n",
		"attempt a string":  `id: 1` + "\n" + `data: {"type": "dev.handoff.task.started", "attempt": "one"}` + "\n\n",
	} {
		var last uint64
		err := readEvents(context.Background(), strings.NewReader(text), make(chan events.Event, 1), &last)
		require.Error(t, err, name)
	}
}
