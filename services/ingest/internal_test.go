package ingest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestRetryAfterSeconds(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		task events.Task
		want int
	}{
		{"new task", events.Task{Created: now.Add(-2 * time.Second)}, 1},
		{"under a minute old", events.Task{Created: now.Add(-30 * time.Second)}, 2},
		{"minutes old", events.Task{Created: now.Add(-5 * time.Minute)}, 5},
		{"half an hour old", events.Task{Created: now.Add(-30 * time.Minute)}, 15},
		{"hours old", events.Task{Created: now.Add(-5 * time.Hour)}, 30},
		{
			"old task with recent progress",
			events.Task{Created: now.Add(-5 * time.Hour), Progress: &events.Progress{Percent: 10}, ProgressAt: now.Add(-5 * time.Second)},
			2,
		},
		{
			"old task with stale progress",
			events.Task{Created: now.Add(-5 * time.Hour), Progress: &events.Progress{Percent: 10}, ProgressAt: now.Add(-time.Hour)},
			30,
		},
		{
			"retrying soon",
			events.Task{Created: now.Add(-2 * time.Second), Status: events.StatusRetrying, NextAttemptAt: now.Add(7500 * time.Millisecond)},
			8,
		},
		{
			"retrying much later",
			events.Task{Created: now.Add(-2 * time.Second), Status: events.StatusRetrying, NextAttemptAt: now.Add(time.Hour)},
			30,
		},
		{"clock skew", events.Task{Created: now.Add(time.Minute)}, 1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, retryAfterSeconds(&tt.task, now), tt.name)
	}
}

func TestTooDeep(t *testing.T) {
	tests := []struct {
		body   string
		offset int
		deep   bool
	}{
		{`{"a": [1, 2]}`, 0, false},
		{`{"a": [1, {"b": 2}]}`, 10, true},
		{`{"a": [[1]]}`, 7, true},
		{`{"a": "[[[[[[[["}`, 0, false},
		{`{"a": "\"[[[["}`, 0, false},
		{`{"a": "\\", "b": [[1]]}`, 18, true},
		{`]]]]]]{{{`, 0, false},
	}
	for _, tt := range tests {
		offset, deep := tooDeep([]byte(tt.body), 2)
		require.Equal(t, tt.deep, deep, tt.body)
		require.Equal(t, tt.offset, offset, tt.body)
	}
}

func TestInvalidUTF8(t *testing.T) {
	offset, bad := invalidUTF8([]byte("héllo"))
	require.False(t, bad)
	require.Zero(t, offset)

	offset, bad = invalidUTF8([]byte("hé\xffllo"))
	require.True(t, bad)
	require.Equal(t, 3, offset)
}

func TestKeyedTaskID(t *testing.T) {
	id := keyedTaskID("default", "key-1")

	require.NoError(t, events.ValidateTaskID(id))
	require.Len(t, id, 37)
	require.True(t, strings.HasPrefix(id, "idem_"))
	require.Equal(t, id, keyedTaskID("default", "key-1"), "the id is deterministic")
	require.NotEqual(t, id, keyedTaskID("default", "key-2"))
	require.NotEqual(t, id, keyedTaskID("acme", "key-1"), "tenants do not share keys")
	require.NotEqual(t, keyedTaskID("ab", "c"), keyedTaskID("a", "bc"))
}

func TestIdempotencyKey(t *testing.T) {
	key, p := idempotencyKey(http.Header{})
	require.Nil(t, p)
	require.Empty(t, key)

	valid := []string{"k", "8e03978e-40d5-43e8-bc93-6894a57f9324", `"quoted key"`, strings.Repeat("~", MaxIdempotencyKeyLen)}
	for _, v := range valid {
		key, p := idempotencyKey(http.Header{HeaderIdempotencyKey: {v}})
		require.Nil(t, p, "key %q", v)
		require.Equal(t, v, key)
	}

	invalid := []string{"", strings.Repeat("k", MaxIdempotencyKeyLen+1), "tab\tkey", "del\x7f", "naïve"}
	for _, v := range invalid {
		_, p := idempotencyKey(http.Header{HeaderIdempotencyKey: {v}})
		require.NotNil(t, p, "key %q", v)
		require.Equal(t, ProblemInvalidIdempotencyKey, p.Type)
		require.Equal(t, http.StatusBadRequest, p.Status)
	}
}

func TestETagMatches(t *testing.T) {
	require.True(t, etagMatches([]string{`"7"`}, `"7"`))
	require.True(t, etagMatches([]string{`"1", "7"`}, `"7"`))
	require.True(t, etagMatches([]string{`"1"`, `W/"7"`}, `"7"`))
	require.True(t, etagMatches([]string{`*`}, `"7"`))
	require.False(t, etagMatches(nil, `"7"`))
	require.False(t, etagMatches([]string{`"70"`, `7`}, `"7"`))
}

func TestCheckContentType(t *testing.T) {
	for _, v := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8", "application/vnd.handoff+json"} {
		require.Nil(t, checkContentType([]string{v}), v)
	}
	for _, v := range [][]string{nil, {"text/json"}, {"application/json; charset=utf-16"}, {"json"}, {"application/json", "application/json"}} {
		p := checkContentType(v)
		require.NotNil(t, p, "%q", v)
		require.Equal(t, http.StatusUnsupportedMediaType, p.Status)
	}
}

func TestDuplicateKey(t *testing.T) {
	cases := map[string]string{
		`{"a":1,"b":2}`:                         "",
		`{"a":1,"a":2}`:                         "/a",
		`{"input":{"seconds":"x","seconds":1}}`: "/input/seconds",
		`{"a":[{"k":1},{"k":2,"k":3}]}`:         "/a/1/k",
		`{"a":{"b":{}},"c":{"b":1}}`:            "",
		`{"x/y":{"~":1,"~":2}}`:                 "/x~1y/~0",
		`[{"a":1},{"a":1}]`:                     "",
		`{"a":[1,2,[3,{"z":0,"z":1}]]}`:         "/a/2/1/z",
	}
	for body, want := range cases {
		got, ok := duplicateKey([]byte(body))
		require.Equal(t, want != "", ok, body)
		require.Equal(t, want, got, body)
	}
}
