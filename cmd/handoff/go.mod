module github.com/handoff-dev/handoff/cmd/handoff

go 1.26
