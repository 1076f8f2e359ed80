package executor

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestHTTPHandler(t *testing.T) {
	t.Parallel()
	tb := setup(t)

	var mu sync.Mutex
	headers := map[string]http.Header{}
	var unavailable atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ok", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers[r.Header.Get(HeaderTaskID)] = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"price": 42}`))
	})
	mux.HandleFunc("POST /flaky", func(w http.ResponseWriter, r *http.Request) {
		if unavailable.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`"second time lucky"`))
	})
	mux.HandleFunc("POST /bad", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"customer is required"}`, http.StatusBadRequest)
	})
	mux.HandleFunc("POST /text", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("plain words"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	httpType := func(path string) TypeConfig {
		return TypeConfig{Handler: HandlerHTTP, URL: srv.URL + path, Timeout: 5 * time.Second}
	}
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{
		"quote.ok":    httpType("/ok"),
		"quote.flaky": httpType("/flaky"),
		"quote.bad":   httpType("/bad"),
		"quote.text":  httpType("/text"),
	}), nil)

	t.Run("success", func(t *testing.T) {
		id := submit(t, tb.bus, "quote.ok", input(`{"sku":"a"}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusSucceeded, task.Status)
		require.JSONEq(t, `{"price":42}`, string(task.Result))

		mu.Lock()
		h := headers[id]
		mu.Unlock()
		require.NotNil(t, h)
		require.Equal(t, "1", h.Get(HeaderAttempt))
		require.Equal(t, "quote.ok", h.Get(HeaderTaskType))
		require.Equal(t, "application/json", h.Get("Content-Type"))
	})

	t.Run("server error is retried", func(t *testing.T) {
		id := submit(t, tb.bus, "quote.flaky", input(`{}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusSucceeded, task.Status)
		require.Equal(t, 2, task.Attempt)
		require.JSONEq(t, `"second time lucky"`, string(task.Result))
		var retrying events.Retrying
		require.NoError(t, eventsOf(history(t, tb.bus, id), events.KindRetrying)[0].DecodeData(&retrying))
		require.Equal(t, events.CodeUpstreamStatus, retrying.Error.Code)
		require.Contains(t, retrying.Error.Message, "503")
	})

	t.Run("client error fails at once", func(t *testing.T) {
		id := submit(t, tb.bus, "quote.bad", input(`{}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusFailed, task.Status)
		require.Equal(t, 1, task.Attempt)
		require.Equal(t, events.CodeUpstreamStatus, task.Error.Code)
		require.Contains(t, task.Error.Message, "400 Bad Request")
		require.Contains(t, task.Error.Message, "customer is required")
	})

	t.Run("non-JSON body fails", func(t *testing.T) {
		id := submit(t, tb.bus, "quote.text", input(`{}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusFailed, task.Status)
		require.Equal(t, events.CodeInvalidOutput, task.Error.Code)
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, 7*time.Second, parseRetryAfter("7", now))
	require.Equal(t, time.Duration(0), parseRetryAfter("", now))
	require.Equal(t, time.Duration(0), parseRetryAfter("soon", now))
	require.Equal(t, time.Duration(0), parseRetryAfter("-3", now))
	require.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
}
