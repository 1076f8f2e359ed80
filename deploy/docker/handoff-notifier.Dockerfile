# syntax=docker/dockerfile:1

# handoff-notifier: delivers task events to webhooks. Build it from the
# repository root:
#
#   docker build -f deploy/docker/handoff-notifier.Dockerfile -t handoff-notifier .

# The build stage runs the Makefile's GO_BUILD command in the Go workspace,
# so the image holds the same static binary as `make build`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/handoff-notifier ./services/notifier/cmd/handoff-notifier

# The binary is static, so the runtime image needs no libc or shell:
# distroless static has CA certificates for HTTPS webhooks, time zones and
# the nonroot user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/handoff-notifier /usr/local/bin/handoff-notifier
USER 65532:65532
# /healthz and /readyz for container probes; the binary serves none by
# default.
ENV HANDOFF_HEALTH_ADDR=:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/handoff-notifier"]
