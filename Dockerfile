# syntax=docker/dockerfile:1
# The canary-controller image: a static binary on distroless, as non-root.
#   docker build -t ghcr.io/canary-io/canary-controller:latest .
# make image builds the same binary (the same flags: hack/image checks it)
# into an image without Docker: a multi-arch OCI index, reproducible.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a source change reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o /out/canary-controller ./cmd/canary-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/canary-controller /canary-controller
# 65532 is distroless' nonroot user (manifests/base/deployment.yaml runs as it).
USER 65532:65532
EXPOSE 9443 8080 8081
ENTRYPOINT ["/canary-controller"]
