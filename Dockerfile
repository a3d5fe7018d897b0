# The loyalty image: a static binary (CGO_ENABLED=0) on distroless, run as
# a non-root user, its state in a volume. docs/OPERATIONS.md says how to
# build, run, back up and upgrade it.
#
#   docker build --build-arg VERSION=v1.4.0 --build-arg COMMIT=$(git rev-parse HEAD) -t loyalty:v1.4.0 .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/loyaltyhq/loyalty/internal/version.Version=${VERSION} -X github.com/loyaltyhq/loyalty/internal/version.Commit=${COMMIT}" \
      -o /out/loyalty ./cmd/loyalty \
 && mkdir -p /out/state/backups

# distroless/static: CA certificates (for PostgreSQL over TLS) and a
# nonroot user (65532), no shell, no curl; the binary carries its time zones.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/loyalty /usr/local/bin/loyalty
COPY --from=build --chown=65532:65532 /out/state /var/lib/loyalty
USER 65532:65532
WORKDIR /var/lib/loyalty
# Every flag of serve is also its LOYALTY_ variable: set more with -e. The
# rules file is left to its default, rules.yaml in the working directory
# (the volume), so that the first start writes the example program there.
# The keys file is mounted read-only at /etc/loyalty/keys.yaml; without
# keys serve refuses to listen beyond loopback.
ENV LOYALTY_ADDR=0.0.0.0:8080 \
    LOYALTY_DB=/var/lib/loyalty/loyalty.db \
    LOYALTY_KEYS=/etc/loyalty/keys.yaml \
    LOYALTY_BACKUP_DIR=/var/lib/loyalty/backups \
    LOYALTY_LOG_FORMAT=json
VOLUME ["/var/lib/loyalty"]
EXPOSE 8080
# loyalty health asks the server the variables above describe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/loyalty", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/loyalty"]
CMD ["serve"]
