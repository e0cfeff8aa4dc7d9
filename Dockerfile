# syntax=docker/dockerfile:1
# ClawGate container image.
#
#   docker build -t clawgate .
#   docker run --rm -p 127.0.0.1:8090:8090 --env-file .env -v clawgate-data:/data clawgate
#
# Final image: debian:bookworm-slim (glibc, matching the builder) plus curl for HEALTHCHECK.
# A distroless image has no shell and no HTTP client, and the clawgate binary has no
# health-probe command of its own, so a HEALTHCHECK there could not work; curl costs a few MB.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir -p src examples \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && cargo fetch --locked
COPY src ./src
COPY grammar ./grammar
RUN --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin clawgate \
    && install -D -m 0755 target/release/clawgate /out/clawgate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 clawgate \
    && useradd --system --uid 10001 --gid clawgate --home-dir /app --shell /usr/sbin/nologin clawgate \
    && install -d -o clawgate -g clawgate -m 0750 /data
COPY --from=builder /out/clawgate /usr/local/bin/clawgate
# The stock config and rules; mount your own over /app/config.yaml and /app/rules
# (or point --config/--rules, CLAWGATE_CONFIG/CLAWGATE_RULES_DIR elsewhere).
WORKDIR /app
COPY config.yaml ./config.yaml
COPY rules/*.rules ./rules/

ENV CLAWGATE_DB_PATH=/data/clawgate.db \
    CLAWGATE_PORT=8090
VOLUME ["/data"]
EXPOSE 8090
USER 10001:10001

HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD curl -fsS --max-time 4 "http://127.0.0.1:${CLAWGATE_PORT:-8090}/health" >/dev/null || exit 1

# --host 0.0.0.0: inside a container 127.0.0.1 is the container's own loopback, which a
# published port (-p) cannot reach. Publish the port on the host's loopback
# (-p 127.0.0.1:8090:8090) or set CLAWGATE_API_KEY before exposing it further.
ENTRYPOINT ["/usr/local/bin/clawgate"]
CMD ["serve", "--host", "0.0.0.0"]
