# syntax=docker/dockerfile:1
# seckill images, one multi-stage build:
#   docker build --target gateway -t seckill-gateway .
#   docker build --target worker  -t seckill-worker .     (also holds the `seckill` CLI)
#   docker build --target redis   -t seckill-redis .      (redis-server 7 + the module)
# docker-compose.yml builds all three. The build stage compiles the whole workspace once.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm
ARG REDIS_VERSION=7.0

# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN} AS build
# libclang: bindgen in the redis-module crate; protoc: etcd-client's gRPC stubs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev clang protobuf-compiler libprotobuf-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target directory between builds (BuildKit); the
# binaries are copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace \
 && mkdir -p /out \
 && cp target/release/seckill target/release/seckill-gateway target/release/seckill-worker \
       target/release/libseckill_module.so /out/

# ---------------------------------------------------------------------------------------
# Shared runtime base: glibc of the build stage, CA roots (TLS to managed MySQL/etcd),
# curl for health checks, and an unprivileged user.
FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin seckill
WORKDIR /app
# Defaults only; every key is overridden by SECKILL_<SECTION>__<KEY> (see the file).
COPY configs/config.yaml /app/configs/config.yaml
COPY --from=build /out/seckill /usr/local/bin/seckill
USER seckill
ENV RUST_LOG=info

# ---------------------------------------------------------------------------------------
FROM runtime AS gateway
COPY --from=build /out/seckill-gateway /usr/local/bin/seckill-gateway
ENV SECKILL_GATEWAY__LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# tini forwards SIGTERM so the gateway drains in-flight requests on `docker stop`.
ENTRYPOINT ["tini", "--", "seckill-gateway"]

# ---------------------------------------------------------------------------------------
FROM runtime AS worker
COPY --from=build /out/seckill-worker /usr/local/bin/seckill-worker
ENV SECKILL_WORKER__METRICS_ADDR=0.0.0.0:9101
EXPOSE 9101
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9101/health || exit 1
ENTRYPOINT ["tini", "--", "seckill-worker"]

# ---------------------------------------------------------------------------------------
# The official Redis image is Debian bookworm too, so the module's glibc matches.
FROM redis:${REDIS_VERSION}-${DEBIAN} AS redis
COPY --from=build /out/libseckill_module.so /usr/local/lib/redis/modules/libseckill_module.so
COPY redis.conf /usr/local/etc/redis/redis.conf
# The ACL users (no passwords inside) and the script that renders them with the passwords
# of SECKILL_REDIS_<USER>_PASSWORD at start (hashes only, mode 600, owned by redis).
COPY redis-users.conf /usr/local/etc/redis/users.conf
COPY scripts/redis-users.sh /usr/local/bin/seckill-redis-users
EXPOSE 6379
# Alive when it answers, logged in or not (the `default` user is off outside dev mode).
HEALTHCHECK --interval=5s --timeout=3s --retries=5 CMD redis-cli ping | grep -qE 'PONG|NOAUTH'
# redis.conf binds 127.0.0.1 for the local stack; in a container the network is the
# boundary, so listen on all interfaces. SECKILL_REDIS_MODE=dev (docker-compose.yml) leaves
# the `default` user open; the default, prod, turns it off and requires every password.
CMD ["sh", "-c", "seckill-redis-users /usr/local/etc/redis/users.conf /tmp/users.conf \"${SECKILL_REDIS_MODE:-prod}\" && if [ \"$(id -u)\" = 0 ]; then chown redis:redis /tmp/users.conf; fi && exec docker-entrypoint.sh redis-server /usr/local/etc/redis/redis.conf --bind 0.0.0.0 --protected-mode no --dir /data --include /tmp/users.conf --loadmodule /usr/local/lib/redis/modules/libseckill_module.so"]
