# A Go service on Alpine, built by shipit: a static binary on a minimal
# runtime. Module and build caches live in cache mounts, so a change to one
# package rebuilds only what depends on it, warm or from a registry cache.
#
# MAIN is the package to build (default: the module's root package).

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.20

FROM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOFLAGS=-trimpath
COPY go.* ./
RUN --mount=type=cache,id=gomod,target=/go/pkg/mod \
    go mod download
COPY . .
ARG MAIN=.
RUN --mount=type=cache,id=gomod,target=/go/pkg/mod \
    --mount=type=cache,id=gobuild,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/app "${MAIN}"

FROM alpine:${ALPINE_VERSION} AS runtime
RUN --mount=type=cache,id=apk,target=/etc/apk/cache,sharing=locked \
    apk add --update-cache ca-certificates tzdata && \
    adduser -S -D -H -u 10001 app
COPY --from=build /out/app /usr/local/bin/app
USER 10001
ENTRYPOINT ["/usr/local/bin/app"]
