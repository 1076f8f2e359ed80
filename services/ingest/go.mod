module github.com/handoff-dev/handoff/services/ingest

go 1.26
