# Builds the `woodpecker` binary and runs it on a slim Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin woodpecker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/woodpecker /usr/local/bin/woodpecker
ENTRYPOINT ["woodpecker"]
CMD ["--help"]
