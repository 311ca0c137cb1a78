# syntax=docker/dockerfile:1
# Multi-stage build: static Go binaries on a distroless base.
#   docker build --target manager -t <registry>/mtu-operator/manager:<tag> .
#   docker build --target agent -t <registry>/mtu-operator/agent:<tag> .

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out/manager ./cmd/manager && \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out/agent ./cmd/agent

# The manager talks only to the API server: no capabilities, a non-root user, a read-only
# root filesystem (set in config/manager/manager.yaml).
FROM gcr.io/distroless/static-debian12:nonroot AS manager
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

# The node agent changes the host's links and routes over netlink (CAP_NET_ADMIN), sends
# don't-fragment ICMP probes on raw sockets (CAP_NET_RAW) and enters pod network namespaces for
# the pod MTU inventory (CAP_SYS_ADMIN). Capabilities take effect for UID 0, so this image runs
# as root; config/agent/daemonset.yaml drops every other capability, forbids privilege
# escalation and mounts the root filesystem read-only.
FROM gcr.io/distroless/static-debian12 AS agent
COPY --from=build /out/agent /agent
USER 0:0
ENTRYPOINT ["/agent"]
