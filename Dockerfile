# syntax=docker/dockerfile:1
# threadql's image: build with the official Rust image, run on distroless (glibc, CA
# certificates, uid 65532, no shell). Build from the repository root:
#   docker build -t threadql:dev .
# CI cannot build it (no Docker engine there); it lints it with hadolint.

ARG RUST_VERSION=1.95

# cargo-chef turns the manifests into a recipe, so that dependencies build in their own layer
# and are rebuilt only when Cargo.toml/Cargo.lock change (a single crate or a workspace alike).
FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin threadql
COPY . .
RUN cargo build --release --locked --bin threadql \
    && install -D -m 0755 target/release/threadql /out/threadql \
    && install -d -m 0755 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /out/threadql /usr/local/bin/threadql
# /data: the embedded defaults' files (state store and generated demo data set). Mount a
# volume here; the directory belongs to the non-root user so an empty volume is writable.
COPY --from=builder --chown=65532:65532 /out/data /data
ENV THREADQL_LISTEN=0.0.0.0:3000 \
    DATABASE_URL=sqlite:///data/threadql.db \
    THREADQL_DEMO_WAREHOUSE=/data/threadql-demo.db \
    THREADQL_LOG_FORMAT=json
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
# distroless has no curl: threadql probes its own /healthz (exit 0 on a 200, 1 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["threadql", "healthcheck"]
ENTRYPOINT ["threadql"]
CMD ["serve"]
