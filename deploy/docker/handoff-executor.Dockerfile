# syntax=docker/dockerfile:1

# handoff-executor: runs task handlers, by default the example task types
# of examples/handoff.yaml. Build it from the repository root:
#
#   docker build -f deploy/docker/handoff-executor.Dockerfile -t handoff-executor .

# The build stage runs the Makefile's GO_BUILD command in the Go workspace,
# so the image holds the same static binary as `make build`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/handoff-executor ./services/executor/cmd/handoff-executor

# Unlike the other services, the executor runs programs: the exec handler
# of files.manifest is a bash script that needs GNU coreutils (realpath -e,
# stat -c, sha256sum, sort -z), findutils and sed. A distroless image has no
# shell, and Alpine would need bash, coreutils and findutils installed over
# BusyBox, so the runtime image is Debian slim, which ships all of them.
# Only ca-certificates is added, for http handlers that call HTTPS
# endpoints.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 handoff \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /var/lib/handoff --shell /usr/sbin/nologin handoff \
 && install -d -o 65532 -g 65532 /var/lib/handoff
COPY --from=build /src/bin/handoff-executor /usr/local/bin/handoff-executor
COPY --chmod=0644 examples/handoff.yaml /etc/handoff/handoff.yaml
COPY --chmod=0755 examples/files-manifest.sh /etc/handoff/files-manifest.sh
USER 65532:65532
# files.manifest reads the tree under the working directory; mount the
# files it should list here.
WORKDIR /var/lib/handoff
ENV HANDOFF_CONFIG=/etc/handoff/handoff.yaml \
    HANDOFF_HEALTH_ADDR=:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/handoff-executor"]
