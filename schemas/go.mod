module github.com/handoff-dev/handoff/schemas

go 1.26
