# The scim-operator image:  make docker-build IMG=REPOSITORY:TAG
#
# Stage 1 compiles a static binary. CGO is off: the SQLite driver
# (modernc.org/sqlite) is pure Go, and so are the PostgreSQL and MySQL ones.
# Stage 2 is an empty image holding that binary, the CA bundle (to verify a
# database's TLS certificate) and a passwd entry for the unprivileged user.
FROM golang:1.26 AS build

WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
# TARGETOS and TARGETARCH are set by `docker buildx build --platform ...`.
ARG TARGETOS=linux
ARG TARGETARCH
# timetzdata embeds the time zone database: users' time zones are checked
# without /usr/share/zoneinfo, which the final image does not have.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags timetzdata -ldflags="-s -w" -o /out/scim-operator ./cmd

# The files the final image needs besides the binary: an owner for the
# nonroot user, and the folders the Deployment mounts volumes on (and that
# work without volumes when the image runs on its own).
RUN mkdir -p /rootfs/etc /rootfs/tmp /rootfs/var/lib/scim-operator \
 && echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'nonroot:x:65532:' > /rootfs/etc/group \
 && chmod 1777 /rootfs/tmp

FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/var/lib/scim-operator /var/lib/scim-operator
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/scim-operator /scim-operator
# The default helpdesk database is a SQLite file in the working directory;
# in Kubernetes a volume is mounted here.
WORKDIR /var/lib/scim-operator
# Numeric, so that runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
EXPOSE 8443 8080 8081
ENTRYPOINT ["/scim-operator"]
