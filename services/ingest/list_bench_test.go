package ingest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/services/ingest"
)

// populate stores n tasks of tenant with a submitted and a succeeded
// event each, except every failEvery-th task, which fails; zero means
// none fails.
func populate(tb testing.TB, b *bundle, tenant string, n, failEvery int) {
	tb.Helper()
	sub := events.Submission{Input: json.RawMessage(`{"message": "hello"}`), TTL: events.Duration(time.Hour)}.WithDefaults()
	const window = 512
	var pending []jetstream.PubAckFuture
	flush := func() {
		for _, f := range pending {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				require.NoError(tb, err)
			}
		}
		pending = pending[:0]
	}
	for i := range n {
		id := events.NewID()
		ev, err := events.NewEvent(events.KindSubmitted, tenant, id, "echo", "/bench", sub)
		require.NoError(tb, err)
		pending = append(pending, publishAsync(tb, b, &ev))

		kind, data := events.KindSucceeded, any(events.Succeeded{Result: json.RawMessage(`{"ok": true}`)})
		if failEvery > 0 && i%failEvery == 0 {
			kind, data = events.KindFailed, events.Failed{Error: events.TaskError{Code: events.CodeHandlerError, Message: "boom"}}
		}
		end, err := events.NewEvent(kind, tenant, id, "echo", "/bench", data)
		require.NoError(tb, err)
		pending = append(pending, publishAsync(tb, b, &end))
		if len(pending) >= window {
			flush()
		}
	}
	flush()
}

// publishAsync stores ev without the compare-and-set, which needs the
// sequence of the task's previous event, unknown before its ack.
func publishAsync(tb testing.TB, b *bundle, ev *events.Event) jetstream.PubAckFuture {
	tb.Helper()
	msg := b.bus.Message(ev, bus.AppendOptions{TTL: time.Hour})
	msg.Header.Del(bus.HeaderExpectedSubjSeq)
	msg.Header.Del(bus.HeaderExpectedSubjSeqSubj)
	f, err := b.bus.JetStream().PublishMsgAsync(msg)
	require.NoError(tb, err)
	return f
}

// BenchmarkList measures GET /v1/tasks on a file-backed stream: 20000
// tasks of tenant "default" (40000 events), 100 of which failed, stored
// between 20000 tasks of another tenant, then 50 tasks of tenant "sparse"
// and 100 more of the other tenant. It reports the batch direct gets and
// task reads of each request.
//
//	go test -run '^$' -bench BenchmarkList -benchtime 100x .
func BenchmarkList(b *testing.B) {
	defaultToken, defaultEntry := issueToken(b, events.DefaultTenant, "default")
	sparseToken, sparseEntry := issueToken(b, "sparse", "sparse")
	bb, _ := setupTokens(b, []ingest.TokenEntry{defaultEntry, sparseEntry})
	populate(b, bb, "other", 10000, 0)
	populate(b, bb, events.DefaultTenant, 20000, 200)
	populate(b, bb, "other", 10000, 0)
	populate(b, bb, "sparse", 50, 0)
	populate(b, bb, "other", 100, 0)

	// A cursor 10000 tasks below the top.
	page := bb.listTasks(b, "limit=500", bearer(defaultToken)...)
	for range 19 {
		page = bb.listTasks(b, "limit=500&cursor="+page.NextCursor, bearer(defaultToken)...)
	}
	deep := page.NextCursor

	for _, bm := range []struct {
		name, query, token string
	}{
		{"first page of 50", "limit=50", defaultToken},
		{"first page of 500", "limit=500", defaultToken},
		{"page of 50 at 10000", "limit=50&cursor=" + deep, defaultToken},
		{"rare status", "status=failed&limit=50", defaultToken},
		{"sparse tenant", "limit=50", sparseToken},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for range b.N {
				req, err := http.NewRequest(http.MethodGet, bb.url+"/v1/tasks?"+bm.query, nil)
				require.NoError(b, err)
				req.Header.Set("Authorization", "Bearer "+bm.token)
				resp, err := bb.send(req)
				require.NoError(b, err)
				require.Equal(b, http.StatusOK, resp.status, "body: %s", resp.body)
			}
			b.StopTimer()
			logs := bb.logs.FilterMessage("tasks listed").All()
			last := logs[len(logs)-1].ContextMap()
			b.ReportMetric(float64(last["batches"].(int64)), "batches/op")
			b.ReportMetric(float64(last["reads"].(int64)), "reads/op")
			b.ReportMetric(float64(last["tasks"].(int64)), "tasks/op")
		})
	}
}
