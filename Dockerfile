# The native server as a container image: a static (musl) binary on an empty
# base, run as a non-root user, configured only by environment variables
# (README, "Configuration"), with a health check that the binary answers
# itself (`longhouse --health-check`: the image has no shell and no curl).
#
#   docker build -t longhouse .
#   docker run -p 5003:5003 longhouse                       # in memory
#   docker run -p 5003:5003 -e REDIS_URL=redis://redis:6379 longhouse
#
# With podman or buildah, pass --format docker (the OCI format has no
# HEALTHCHECK). --build-arg BINARY=prebuilt ships a binary built beforehand
# on the host instead (cargo build --release --locked --target
# x86_64-unknown-linux-musl -p longhouse-native), with no base image to pull:
# what scripts/test.sh does.
ARG BINARY=build

FROM docker.io/library/rust:1-bookworm AS build
# musl-tools: ring (rustls, under the webhook client) compiles C for musl.
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p longhouse-native \
 && cp target/x86_64-unknown-linux-musl/release/longhouse /longhouse

FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-musl/release/longhouse /longhouse

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /longhouse /longhouse
# No passwd file in scratch: a numeric user, not root.
USER 65532:65532
ENV HOST=0.0.0.0 PORT=5003
EXPOSE 5003
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/longhouse", "--health-check"]
# SIGTERM closes every socket with 1012 and keeps the leases (README).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/longhouse"]
