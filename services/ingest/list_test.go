package ingest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

// taskPage is the body of GET /v1/tasks.
type taskPage struct {
	Tasks      []events.View `json:"tasks"`
	NextCursor string        `json:"next_cursor"`
}

// listTasks sends GET /v1/tasks?query and returns the page.
func (b *bundle) listTasks(t testing.TB, query string, header ...string) taskPage {
	t.Helper()
	resp := b.get(t, "/v1/tasks?"+query, header...)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.Equal(t, "no-store", resp.header.Get("Cache-Control"))
	var page taskPage
	require.NoError(t, json.Unmarshal(resp.body, &page))
	return page
}

// listAll follows the cursors of GET /v1/tasks?query and returns the ids of
// every page.
func (b *bundle) listAll(t testing.TB, query string) [][]string {
	t.Helper()
	var pages [][]string
	cursor := ""
	for range 100 {
		q, err := url.ParseQuery(query)
		require.NoError(t, err)
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		page := b.listTasks(t, q.Encode())
		pages = append(pages, ids(page.Tasks))
		if page.NextCursor == "" {
			return pages
		}
		cursor = page.NextCursor
	}
	t.Fatal("more than 100 pages")
	return nil
}

func ids(views []events.View) []string {
	out := make([]string, len(views))
	for i, v := range views {
		out[i] = v.ID
	}
	return out
}

// submitN submits n tasks of taskType and returns their ids, oldest first.
func (b *bundle) submitN(t testing.TB, n int, body string) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		resp := b.submit(t, body)
		require.Equal(t, http.StatusAccepted, resp.status, "body: %s", resp.body)
		out[i] = resp.view(t).ID
	}
	return out
}

func TestListNewestFirst(t *testing.T) {
	b := setup(t)
	require.Empty(t, b.listTasks(t, "").Tasks, "an empty stream lists nothing")

	created := b.submitN(t, 7, `{"type": "echo"}`)
	b.appendEvent(t, created[2], events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	page := b.listTasks(t, "")
	require.Equal(t, reversed(created), ids(page.Tasks))
	require.Empty(t, page.NextCursor, "one page holds all")
	require.Equal(t, events.StatusRunning, page.Tasks[4].Status, "each task is folded for its view")
	require.Equal(t, events.StatusQueued, page.Tasks[0].Status)
}

func TestListPagesStable(t *testing.T) {
	b := setup(t)
	created := b.submitN(t, 7, `{"type": "echo"}`)

	first := b.listTasks(t, "limit=3")
	require.Equal(t, reversed(created)[:3], ids(first.Tasks))
	require.NotEmpty(t, first.NextCursor)

	// New tasks and new events of listed tasks do not shift later pages.
	newer := b.submitN(t, 2, `{"type": "echo"}`)
	b.appendEvent(t, created[0], events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	second := b.listTasks(t, "limit=3&cursor="+url.QueryEscape(first.NextCursor))
	require.Equal(t, reversed(created)[3:6], ids(second.Tasks))
	third := b.listTasks(t, "limit=3&cursor="+url.QueryEscape(second.NextCursor))
	require.Equal(t, reversed(created)[6:], ids(third.Tasks))
	require.Empty(t, third.NextCursor)
	require.Equal(t, events.StatusRunning, third.Tasks[0].Status)

	// A new first page starts with the new tasks.
	require.Equal(t, reversed(newer), ids(b.listTasks(t, "limit=2").Tasks))
}

func TestListFilters(t *testing.T) {
	b := setup(t)
	echo := b.submitN(t, 3, `{"type": "echo"}`)
	manifest := b.submitN(t, 2, `{"type": "files.manifest", "input": {"dir": "/srv"}}`)
	b.appendEvent(t, echo[1], events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	b.appendEvent(t, echo[1], events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{}`)})
	b.appendEvent(t, manifest[0], events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	require.Equal(t, reversed(echo), ids(b.listTasks(t, "type=echo").Tasks))
	require.Equal(t, reversed(manifest), ids(b.listTasks(t, "type=files.manifest").Tasks))
	require.Equal(t, reversed(manifest), ids(b.listTasks(t, "type="+url.QueryEscape("files.>")).Tasks), "a family")
	require.Empty(t, b.listTasks(t, "type=files").Tasks, "a type is matched whole")
	require.Equal(t, []string{echo[1]}, ids(b.listTasks(t, "status=succeeded").Tasks))
	require.Equal(t, []string{manifest[0], echo[1]}, ids(b.listTasks(t, "status=running,succeeded").Tasks))
	require.Equal(t, []string{echo[2], echo[0]}, ids(b.listTasks(t, "type=echo&status=queued").Tasks))

	// Creation time bounds, exclusive.
	all := b.listTasks(t, "").Tasks
	middle := all[2].Created
	after := b.listTasks(t, "created_after="+url.QueryEscape(middle.Format(time.RFC3339Nano))).Tasks
	require.Equal(t, ids(all[:2]), ids(after))
	before := b.listTasks(t, "created_before="+url.QueryEscape(middle.Format(time.RFC3339Nano))).Tasks
	require.Equal(t, ids(all[3:]), ids(before))
	require.Empty(t, b.listTasks(t, "created_after="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))).Tasks)

	// Filters and pages together.
	pages := b.listAll(t, "type=echo&limit=1")
	require.Equal(t, [][]string{{echo[2]}, {echo[1]}, {echo[0]}}, pages)
}

func TestListScheduledTaskOnce(t *testing.T) {
	b := setup(t)
	before := b.submitN(t, 1, `{"type": "echo"}`)
	runAt := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	scheduled := b.submit(t, `{"type": "echo", "run_at": "`+runAt+`"}`).view(t).ID
	after := b.submitN(t, 1, `{"type": "echo"}`)

	require.Equal(t, [][]string{after, {scheduled}, before}, b.listAll(t, "limit=1"))

	// A cancel stores a submitted copy of the scheduled event and removes
	// the scheduled event with its schedule, so the copy is the task's
	// first event now: the task moves to the copy's place, once.
	require.Equal(t, http.StatusOK, b.do(t, b.request(t, http.MethodPost, "/v1/tasks/"+scheduled+"/cancel", nil)).status)
	require.Equal(t, [][]string{{scheduled}, after, before}, b.listAll(t, "limit=1"))
	require.Equal(t, []string{scheduled}, ids(b.listTasks(t, "status=cancelled").Tasks))
}

func TestListWideWindows(t *testing.T) {
	b := setup(t)
	mine := b.submitN(t, 2, `{"type": "files.manifest", "input": {"dir": "/srv"}}`)
	// Enough other events that the tasks lie beyond the first scan range.
	for range 3 {
		others := b.submitN(t, 400, `{"type": "echo"}`)
		require.Len(t, others, 400)
	}
	page := b.listTasks(t, "type=files.manifest")
	require.Equal(t, reversed(mine), ids(page.Tasks))
	require.Empty(t, page.NextCursor)
}

func TestListInvalidQuery(t *testing.T) {
	b := setup(t)
	cursor := b.listAfterOne(t)

	tests := map[string][]string{
		"type=Echo":                      {"type"},
		"type=files.":                    {"type"},
		"status=done":                    {"status"},
		"status=queued,":                 {"status"},
		"created_after=yesterday":        {"created_after"},
		"created_before=2030-01-02":      {"created_before"},
		"limit=0":                        {"limit"},
		"limit=501":                      {"limit"},
		"limit=ten":                      {"limit"},
		"limit=1&limit=2":                {"limit"},
		"cursor=abc":                     {"cursor"},
		"colour=red":                     {"colour"},
		"status=done&limit=0&colour=red": {"colour", "status", "limit"},
		"created_after=2030-01-02T00:00:00Z&created_before=2030-01-01T00:00:00Z": {"created_before"},
		"type=files.manifest&cursor=" + url.QueryEscape(cursor):                  {"cursor"},
	}
	for query, want := range tests {
		resp := b.get(t, "/v1/tasks?"+query)
		require.Equal(t, http.StatusBadRequest, resp.status, query)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidQuery, p.Type, query)
		require.Equal(t, want, fields(p), query)
	}
}

// listAfterOne submits two tasks and returns the cursor after the first
// page of one, listed without filters.
func (b *bundle) listAfterOne(t testing.TB) string {
	t.Helper()
	b.submitN(t, 2, `{"type": "echo"}`)
	page := b.listTasks(t, "limit=1")
	require.NotEmpty(t, page.NextCursor)
	return page.NextCursor
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func TestListTaskWithManyEvents(t *testing.T) {
	b := setup(t)
	id := b.submitN(t, 1, `{"type": "echo"}`)[0]
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})
	for i := range 40 {
		b.appendEvent(t, id, events.KindProgress, 1, events.Progress{Percent: float64(i)})
	}
	want := b.get(t, "/v1/tasks/"+id).view(t)

	listed := b.listTasks(t, "").Tasks
	require.Len(t, listed, 1)
	require.Equal(t, want.Sequence, listed[0].Sequence, "every event is folded")
	require.Equal(t, want.Progress, listed[0].Progress)
	require.Equal(t, want, listed[0])
}
