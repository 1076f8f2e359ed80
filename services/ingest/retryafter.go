package ingest

import (
	"time"

	"github.com/handoff-dev/handoff/events"
)

// Bounds of the Retry-After hint for an unfinished task.
const (
	minPollInterval = time.Second
	maxPollInterval = 30 * time.Second

	// recentProgress is how long after a progress event the task counts as
	// moving, which keeps the hint short.
	recentProgress     = 30 * time.Second
	movingPollInterval = 2 * time.Second
)

// pollSteps maps a task's age to the polling interval from that age on.
// Most tasks end soon after they start, and those that do not tend to run
// for long, so the hint grows with age.
var pollSteps = []struct {
	age      time.Duration
	interval time.Duration
}{
	{0, time.Second},
	{10 * time.Second, 2 * time.Second},
	{time.Minute, 5 * time.Second},
	{10 * time.Minute, 15 * time.Second},
	{time.Hour, maxPollInterval},
}

// retryAfterSeconds returns how many seconds a client should wait before it
// polls an unfinished task again. The hint is 1 s while the task is under
// 10 s old and grows to 30 s after an hour. It is at most 2 s while progress
// events arrive, and points no earlier than the next attempt of a retrying
// task or the run_at of a scheduled one, within the 30 s cap.
func retryAfterSeconds(task *events.Task, now time.Time) int {
	age := now.Sub(task.Created)
	interval := minPollInterval
	for _, step := range pollSteps {
		if age >= step.age {
			interval = step.interval
		}
	}

	if task.Progress != nil && now.Sub(task.ProgressAt) < recentProgress {
		interval = min(interval, movingPollInterval)
	}
	if task.Status == events.StatusRetrying && task.NextAttemptAt.After(now) {
		interval = max(interval, task.NextAttemptAt.Sub(now))
	}
	if runAt := task.Submission.RunAt; task.Status == events.StatusScheduled && runAt != nil && runAt.After(now) {
		interval = max(interval, runAt.Sub(now))
	}
	interval = min(max(interval, minPollInterval), maxPollInterval)

	// Round up, so a client never polls before the interval passed.
	return int((interval + time.Second - 1) / time.Second)
}
