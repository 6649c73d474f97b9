# The turnstile binary in a small runtime image. docker-compose.yml builds it for its
# turnstile services; configure it only through the TURNSTILE_* env vars of `turnstile serve`.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# librdkafka is bundled and built with its own configure script: the builder's C toolchain
# is all it needs.
RUN cargo build --release -p turnstile --locked \
    && cp target/release/turnstile /usr/local/bin/turnstile

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/turnstile turnstile
COPY --from=builder /usr/local/bin/turnstile /usr/local/bin/turnstile
USER turnstile
WORKDIR /var/lib/turnstile
ENV TURNSTILE_DATA_DIR=/var/lib/turnstile/data \
    TURNSTILE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["turnstile"]
CMD ["serve"]
