# syntax=docker/dockerfile:1
#
# Warden: a static binary on distroless, running as an unprivileged user.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t warden .
#   docker run --rm --network host \
#     -v "$PWD/deploy/examples/warden.yaml:/etc/warden/warden.yaml:ro" \
#     -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN \
#     warden
#   AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:8480 aws bedrock-runtime converse …
#
# --network host: the example config binds the endpoint to 127.0.0.1 (a sidecar's address; Warden refuses a
# non-loopback endpoint without TLS), which a published port (-p) never reaches. The audit spool lands in a new
# volume at /var/lib/warden/audit that the image's VOLUME creates owned by 65532; to keep it across runs, name it
# (-v warden-spool:/var/lib/warden/audit), never a root-owned host directory.
#
# The image ships no policy: the configuration is always mounted (ConfigMap, ECS volume) or passed in
# WARDEN_CONFIG (`serve --config-env WARDEN_CONFIG`), so a missing one fails at start instead of running with
# a default.
# The transparent-mode init container runs this same image (`warden iptables --apply`, as root with
# NET_ADMIN): the redirect is programmed over netlink (nftables), so the image needs no iptables or nft.
#
# cmd/warden's TestImageBuild runs this file's `go build` line as written (flags, ldflags, CGO_ENABLED=0) and
# the quickstart above, in its own network and mount namespaces.

FROM golang:1.26 AS build
# The release name `warden version` prints; without it the binary says (devel).
ARG VERSION=""
WORKDIR /src
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/warden ./cmd/warden
# The mount points of Warden's state, owned by its user: the audit spool and the signed-bundle cache. A new volume
# there (docker run, an ECS task volume with this containerPath) starts as a copy, ownership included, so uid 65532
# can write it even under readonlyRootFilesystem.
RUN mkdir -p /out/state && chmod 0700 /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warden /warden
COPY --from=build --chown=65532:65532 /out/state /var/lib/warden/audit
COPY --from=build --chown=65532:65532 /out/state /var/lib/warden/bundle
# 65532 is distroless' "nonroot"; numeric so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
VOLUME ["/var/lib/warden/audit", "/var/lib/warden/bundle"]
# 8480 endpoint listener, 8481 forward proxy, 9480 admin (/healthz, /metrics)
EXPOSE 8480 8481 9480
ENTRYPOINT ["/warden"]
CMD ["serve", "--config", "/etc/warden/warden.yaml"]
