# syntax=docker/dockerfile:1

# handoff-ingest: Handoff's HTTP API. Build it from the repository root:
#
#   docker build -f deploy/docker/handoff-ingest.Dockerfile -t handoff-ingest .

# The build stage runs the Makefile's GO_BUILD command in the Go workspace,
# so the image holds the same static binary as `make build`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/handoff-ingest ./services/ingest/cmd/handoff-ingest

# The binary is static, so the runtime image needs no libc or shell:
# distroless static has CA certificates, time zones and the nonroot user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/handoff-ingest /usr/local/bin/handoff-ingest
USER 65532:65532
# 127.0.0.1, the binary's default, is unreachable from outside a container.
ENV HANDOFF_HTTP_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/handoff-ingest"]
