# syntax=docker/dockerfile:1

# handoff: the command line. Deployments run `handoff provision` from this
# image, once before the services start, to create or update the streams.
# Build it from the repository root:
#
#   docker build -f deploy/docker/handoff.Dockerfile -t handoff .

# The build stage runs the Makefile's GO_BUILD command in the Go workspace,
# so the image holds the same static binary as `make build`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/handoff ./cmd/handoff

# The binary is static, so the runtime image needs no libc or shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/handoff /usr/local/bin/handoff
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/handoff"]
CMD ["--help"]
