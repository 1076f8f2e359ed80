module github.com/handoff-dev/handoff/services/notifier

go 1.26
