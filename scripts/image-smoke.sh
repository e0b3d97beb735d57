#!/usr/bin/env bash
# The container image (Dockerfile), smoke-tested: builds the static musl
# binary, builds the image from it with podman (--format docker, so the
# HEALTHCHECK is kept), runs it, and checks that GET /health answers `ok`,
# that the image's own health check passes, that it runs as a non-root user,
# and that a WebSocket join is welcomed. Where this machine cannot build or
# run containers, it says so, with podman's error, and runs the same smoke
# test against the static binary itself (as the image's non-root user).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
BIN=target/$TARGET/release/longhouse
IMAGE=localhost/longhouse:smoke
USER_ID=65532

log() { printf '[image] %s\n' "$*"; }
die() {
  log "error: $*"
  exit 1
}

log "static binary: cargo build --release --target $TARGET"
cargo build --release --locked --target "$TARGET" -p longhouse-native
# A static executable has no interpreter and no shared libraries to find.
linkage=$(ldd "$BIN" 2>&1 || true)
case $linkage in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) die "$BIN is dynamically linked: $linkage" ;;
esac
log "$BIN: static, $(stat -c %s "$BIN") bytes"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The smoke test proper, against a server on 127.0.0.1:$1: /health is
# `ok`, and a join on a WebSocket is welcomed with the joiner in the roster.
smoke() {
  local port=$1 what=$2 i
  for i in $(seq 1 100); do
    if [ "$(curl -fsS --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null)" = ok ]; then
      break
    fi
    [ "$i" = 100 ] && die "$what: GET /health never answered ok"
    sleep 0.1
  done
  log "$what: GET /health answered ok"
  node --experimental-websocket --no-warnings --input-type=module -e '
    const url = `ws://127.0.0.1:${process.argv[1]}/image-smoke?identity=smoke`;
    const ws = new WebSocket(url);
    const timer = setTimeout(() => { console.error("no welcome within 5 s"); process.exit(1); }, 5000);
    ws.onerror = () => { console.error("WebSocket error"); process.exit(1); };
    ws.onmessage = (m) => {
      const welcome = JSON.parse(m.data);
      const me = (welcome.clients ?? []).find((c) => c.id === welcome.id);
      if (!me || me.identity !== "smoke") { console.error("not a welcome:", m.data); process.exit(1); }
      clearTimeout(timer);
      ws.close();
      console.log(`welcomed as ${welcome.id}`);
    };
  ' "$port" | sed "s/^/[image] $what: /"
}

container_error=""
if ! command -v podman >/dev/null; then
  container_error="podman is not installed"
fi

if [ -z "$container_error" ]; then
  log "podman build --format docker --build-arg BINARY=prebuilt -t $IMAGE ."
  if ! out=$(podman build --format docker --build-arg BINARY=prebuilt -t "$IMAGE" . 2>&1); then
    container_error="podman build failed: $(printf '%s' "$out" | tail -3)"
  fi
fi

if [ -z "$container_error" ]; then
  user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
  [ "$user" = "$USER_ID:$USER_ID" ] || die "the image runs as '$user', not $USER_ID:$USER_ID"
  health=$(podman image inspect --format '{{.Config.Healthcheck.Test}}' "$IMAGE")
  case $health in *--health-check*) ;; *) die "the image has no health check: '$health'" ;; esac
  log "image: user $user, health check $health"
  port=$(free_port)
  name=longhouse-smoke-$$
  # What this sandbox needs (seen 2026-12-01, podman 4.3.1 on Debian 12):
  # - runc, not crun: crun refuses the machine's hybrid cgroup layout
  #   ("cgroups in hybrid mode not supported, drop all controllers from
  #   cgroupv2");
  # - rlimits within the session's own hard limits: root here may not raise
  #   them, and podman's defaults (nofile 1048576) fail with "setrlimit
  #   RLIMIT_NOFILE: Operation not permitted"; RLIMIT_NPROC is refused even
  #   at the host's value, so a lower one;
  # - no periodic health-check timer (podman schedules it with systemd,
  #   which is not running): `podman healthcheck run` below runs it once;
  # - host networking: no bridge or port forwarding to set up, and the
  #   server listens on loopback only (configured by environment).
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  run_flags=(--runtime runc --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096
    --health-interval disable --network host)
  if ! out=$(podman "${run_flags[@]:0:2}" run -d --name "$name" "${run_flags[@]:2}" \
    -e HOST=127.0.0.1 -e PORT="$port" "$IMAGE" 2>&1); then
    container_error="podman run failed: $(printf '%s' "$out" | tail -3)"
    podman rm -f "$name" >/dev/null 2>&1 || true
  else
    trap 'podman rm -f "$name" >/dev/null 2>&1 || true; podman rmi -f "$IMAGE" >/dev/null 2>&1 || true' EXIT
    smoke "$port" container
    [ "$(podman top "$name" user 2>/dev/null | tail -n 1 | tr -d ' ')" = "$USER_ID" ] ||
      die "the container's process does not run as user $USER_ID"
    log "container: its process runs as user $USER_ID"
    # (podman logs an error about the systemd timer it cannot remove: noise)
    podman --runtime runc healthcheck run "$name" >/dev/null 2>&1 || die "the image's health check failed"
    log "container: the image's health check passed"
    podman --runtime runc stop -t 10 "$name" >/dev/null 2>&1
    code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
    [ "$code" = 0 ] || die "the container exited with $code on SIGTERM"
    log "container: stopped on SIGTERM, exit 0"
    exit 0
  fi
fi

log "containers cannot be built or run on this machine: $container_error"
log "running the same smoke test against the static binary instead (as user $USER_ID)"
port=$(free_port)
setpriv --reuid="$USER_ID" --regid="$USER_ID" --clear-groups \
  env -i HOST=127.0.0.1 PORT="$port" "$BIN" 2>target/image-smoke-binary.log &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
smoke "$port" binary
env -i HOST=127.0.0.1 PORT="$port" "$BIN" --health-check || die "--health-check failed against a healthy server"
log "binary: --health-check passed"
kill -TERM "$pid"
wait "$pid" || die "the server did not exit cleanly on SIGTERM"
trap - EXIT
log "binary: stopped on SIGTERM"
