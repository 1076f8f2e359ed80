module github.com/handoff-dev/handoff/pkg

go 1.26
