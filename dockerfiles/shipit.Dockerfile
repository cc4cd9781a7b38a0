# shipit's own image, built by shipit (see shipit.yaml at the repository
# root): the static binary, with git and ssh for the GitOps write-back.

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.20

FROM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,id=gomod,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,id=gomod,target=/go/pkg/mod \
    --mount=type=cache,id=gobuild,target=/root/.cache/go-build \
    go build -ldflags="-s -w -X github.com/shipit-dev/shipit/internal/cli.version=${VERSION}" -o /out/shipit ./cmd/shipit

FROM alpine:${ALPINE_VERSION} AS runtime
RUN --mount=type=cache,id=apk,target=/etc/apk/cache,sharing=locked \
    apk add --update-cache ca-certificates git openssh-client && \
    adduser -S -D -u 65532 shipit
COPY --from=build /out/shipit /usr/local/bin/shipit
USER 65532
WORKDIR /work
ENTRYPOINT ["shipit"]
