# syntax=docker/dockerfile:1
# Build: docker build -t livekit-recorder .
# Run:   docker run -p 8080:8080 -v recordings:/recordings livekit-recorder
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# gcc/g++ come with the image; no cmake, protoc or OpenSSL headers are needed.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin livekit-recorder \
    && strip target/release/livekit-recorder

FROM debian:bookworm-slim
# ca-certificates for TLS to LiveKit and S3; nothing else at run time (no ffmpeg).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin recorder \
    && mkdir -p /recordings && chown recorder:recorder /recordings
COPY --from=build /src/target/release/livekit-recorder /usr/local/bin/livekit-recorder
ENV APP_PORT=8080 \
    RECORDINGS_DIR=/recordings \
    LOG_FORMAT=json
VOLUME ["/recordings"]
USER recorder
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["livekit-recorder", "healthcheck"]
ENTRYPOINT ["livekit-recorder"]
CMD ["serve"]
