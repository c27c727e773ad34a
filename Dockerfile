# Builds the `woodpecker` binary and runs `woodpecker serve` on a slim
# Debian base. Point it at etcd and the object store with the
# environment (WOODPECKER_ETCD_ENDPOINTS, WOODPECKER_STORE=s3,
# WOODPECKER_S3_*) or a configuration file (WOODPECKER_CONFIG); without a
# store it keeps logs under /var/lib/woodpecker.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin woodpecker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/woodpecker /usr/local/bin/woodpecker
ENV WOODPECKER_LISTEN=0.0.0.0:9600
ENV WOODPECKER_LOCAL_DIR=/var/lib/woodpecker
VOLUME /var/lib/woodpecker
EXPOSE 9600
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9600/healthz || exit 1
ENTRYPOINT ["woodpecker"]
CMD ["serve"]
