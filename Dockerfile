# syntax=docker/dockerfile:1
#
# Warden: a static binary on distroless, running as an unprivileged user.
#   docker build -t warden .
#   docker run --rm -v $PWD/deploy/examples/warden.yaml:/etc/warden/warden.yaml:ro -p 8480:8480 warden
# The image ships no policy: the configuration is always mounted (ConfigMap, ECS volume), so a missing
# one fails at start instead of running with a default.
# The transparent-mode init container runs this same image (`warden iptables --apply`, as root with
# NET_ADMIN): the redirect is programmed over netlink (nftables), so the image needs no iptables or nft.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/warden ./cmd/warden

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warden /warden
# 65532 is distroless' "nonroot"; numeric so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
# 8480 endpoint listener, 8481 forward proxy, 9480 admin (/healthz, /metrics)
EXPOSE 8480 8481 9480
ENTRYPOINT ["/warden"]
CMD ["serve", "--config", "/etc/warden/warden.yaml"]
