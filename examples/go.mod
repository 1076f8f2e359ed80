module github.com/handoff-dev/handoff/examples

go 1.26
