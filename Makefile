# Handoff's tasks. Every target loops over the workspace modules, because the
# repository root is not a module.

GO ?= go
MODULES := events pkg schemas services/ingest services/executor services/notifier cmd/handoff examples tests/faults tests/observability deploy
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: run test vet lint fmt fuzz build bench bench-short bench-go

## run: start the whole stack on an embedded NATS server
run:
	$(GO) run ./cmd/handoff dev

## test: vet, then run every module's tests with the race detector
test: vet
	@set -e; for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test $(TEST_FLAGS) ./...); \
	done

## vet: go vet every module
vet:
	@set -e; for m in $(MODULES); do \
		(cd $$m && $(GO) vet ./...); \
	done

## lint: gofmt, go vet and staticcheck on every module
lint: vet
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
		echo "== staticcheck $$m"; \
		(cd $$m && $(GO) run $(STATICCHECK) ./...); \
	done

## fmt: rewrite every Go file with gofmt
fmt:
	gofmt -w $(MODULES)

## fuzz: run each fuzz test for FUZZTIME (default 20s)
FUZZTIME ?= 20s
fuzz:
	@set -e; for m in $(MODULES); do \
		for pkg in $$(cd $$m && $(GO) list ./...); do \
			for f in $$(cd $$m && $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
				echo "== $$pkg $$f"; \
				(cd $$m && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg); \
			done; \
		done; \
	done

# GO_BUILD builds one static binary without cgo and with file paths trimmed.
# The build stage of each Dockerfile in deploy/docker runs this same command,
# and the deploy module's tests check that they match.
GO_BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w'

## build: build the handoff CLI and the three service binaries into bin/
build:
	$(GO_BUILD) -o bin/handoff ./cmd/handoff
	$(GO_BUILD) -o bin/handoff-ingest ./services/ingest/cmd/handoff-ingest
	$(GO_BUILD) -o bin/handoff-executor ./services/executor/cmd/handoff-executor
	$(GO_BUILD) -o bin/handoff-notifier ./services/notifier/cmd/handoff-notifier

## bench: run the benchmark table of docs/performance.md (about 12 minutes)
BENCH_FLAGS ?=
bench:
	$(GO) run ./cmd/handoff bench $(BENCH_FLAGS)

## bench-short: the benchmark at small sizes, in under a minute; CI runs it
## to catch a change that breaks it, and does not check the targets
BENCH_SHORT_FLAGS := --rounds 1 --duration 1s --warmup 200ms --sleep-tasks 1000 --sleep-for 5s --retained-small 1000 --retained-large 10000 --timeout 5m
bench-short:
	$(GO) run ./cmd/handoff bench $(BENCH_SHORT_FLAGS)

## bench-go: the go test benchmarks of the hot functions, with allocations
bench-go:
	cd events && $(GO) test -run '^$$' -bench . -benchmem .
	cd pkg && $(GO) test -run '^$$' -bench . -benchmem ./bus
