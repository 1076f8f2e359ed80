package metrics

import "github.com/prometheus/client_golang/prometheus"

// NewTasksFinished returns the counter of tasks that ended,
// handoff_tasks_finished_total, by task_type and outcome, the terminal
// status. Ingest and the executor both count the terminal events they
// write into it. It is defined here so that their definitions match, which
// a registry they share requires.
func NewTasksFinished() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "tasks_finished_total",
		Help:      "Tasks that ended, by task type and terminal status, counted by the service that wrote the terminal event.",
	}, []string{"task_type", "outcome"})
}
