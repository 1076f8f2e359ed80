package executor

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

func TestBuiltins(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{
		"sleep": {Handler: HandlerSleep},
		"echo":  {Handler: HandlerEcho},
	}), nil)

	t.Run("sleep reports progress", func(t *testing.T) {
		id := submit(t, tb.bus, "sleep", input(`{"seconds": 2.5}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusSucceeded, task.Status)
		require.JSONEq(t, `{"slept_seconds": 2.5}`, string(task.Result))

		progress := eventsOf(history(t, tb.bus, id), events.KindProgress)
		require.Len(t, progress, 2)
		var p events.Progress
		require.NoError(t, progress[0].DecodeData(&p))
		// The first report comes a second in: 40 percent, later under load.
		require.GreaterOrEqual(t, p.Percent, 40.0)
		require.Less(t, p.Percent, 100.0)
		require.Regexp(t, `^slept \d of 2\.5 seconds$`, p.Message)
	})

	t.Run("echo returns its input", func(t *testing.T) {
		id := submit(t, tb.bus, "echo", input(`{"b":[1,2],"a":"x"}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusSucceeded, task.Status)
		require.JSONEq(t, `{"b":[1,2],"a":"x"}`, string(task.Result))
	})

	t.Run("echo keeps markup characters as they are", func(t *testing.T) {
		const in = `{"html":"<a href=\"x\">&amp;</a>"}`
		id := submit(t, tb.bus, "echo", input(in))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusSucceeded, task.Status)
		require.Equal(t, in, string(task.Result))
	})

	t.Run("sleep input is checked", func(t *testing.T) {
		id := submit(t, tb.bus, "sleep", input(`{"seconds": "long"}`))
		task := waitTerminal(t, tb.bus, id)
		require.Equal(t, events.StatusRejected, task.Status)
		require.Equal(t, events.CodeInvalidInput, task.Error.Code)
		require.Equal(t, "/seconds", task.Error.Details[0].Location)
	})
}
