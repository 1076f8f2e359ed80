module github.com/handoff-dev/handoff/services/executor

go 1.26
