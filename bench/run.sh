#!/usr/bin/env bash
# Runs the measurements of BENCHMARKS.md against release builds of the native
# server, in-memory and on a private Redis, and keeps every raw output under
# bench/results/. Loopback only; every run is bounded in count and time.
#
# Usage: bench/run.sh STORE SCENARIO [RUNS]
#   STORE: memory | redis
#   SCENARIO: join | fanout | growth | churn | idle19000 | close19500 | abort19500
# Env: LONGHOUSE (server binary, default target/release/longhouse),
#      LOADGEN (default target/release/longhouse-loadgen), PORT (default 17003),
#      SERVER_ENV (extra VAR=value words for the server, e.g. MALLOC_ARENA_MAX=1).
set -euo pipefail
cd "$(dirname "$0")/.."
store="$1"
scenario="$2"
runs="${3:-3}"
server_bin="${LONGHOUSE:-target/release/longhouse}"
loadgen_bin="${LOADGEN:-target/release/longhouse-loadgen}"
port="${PORT:-17003}"
redis_port=$((port + 1))
out="${OUT:-bench/results}"
mkdir -p "$out"

server=""
redis=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  [ -n "$redis" ] && kill "$redis" 2>/dev/null && wait "$redis" 2>/dev/null || true
  server=""
  redis=""
}
trap cleanup EXIT

start() {
  # No per-space or per-process cap (servers after 78e5afe default to 1,000
  # per space and 10,000 connections; older ones ignore these variables).
  local env=(PORT="$port" HOST=127.0.0.1 PRESENCE_TTL=600000 KEEPALIVE_MS=30000 RUST_LOG=warn NO_COLOR=1
    MAX_CLIENTS_PER_SPACE=0 MAX_CONNECTIONS=0)
  # shellcheck disable=SC2206 # words on purpose
  [ -n "${SERVER_ENV:-}" ] && env+=(${SERVER_ENV})
  if [ "$store" = redis ]; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    redis=$!
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    env+=(REDIS_URL="redis://127.0.0.1:$redis_port")
  fi
  env "${env[@]}" "$server_bin" 2>>"$out/server-$store.log" &
  server=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not start" >&2
  exit 1
}

lg() {
  local name="$1"
  shift
  local file="$out/$name.txt"
  {
    echo "# $(date -u +%FT%TZ) store=$store load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $loadgen_bin --server 127.0.0.1:$port $*"
  } >"$file"
  "$loadgen_bin" --server "127.0.0.1:$port" "$@" >>"$file" 2>&1 || echo "# exit status $?" >>"$file"
  tail -n 1 "$file"
}

redis_flag=()
[ "$store" = redis ] && redis_flag=(--redis "127.0.0.1:$redis_port")

case "$scenario" in
  join)
    start
    for i in $(seq "$runs"); do
      lg "join-$store-$i" join --spaces 50 --clients 100 --in-flight 100 "${redis_flag[@]}"
    done
    ;;
  fanout)
    start
    for i in $(seq "$runs"); do
      lg "fanout-$store-$i" fanout --clients 1000 --rounds 100
    done
    ;;
  growth)
    for bg in 0 4000 9000 14000; do
      start
      for i in $(seq "$runs"); do
        lg "growth-$store-bg$bg-$i" join --spaces 50 --clients 100 --in-flight 100 \
          --background "$bg" --background-spaces 1000 "${redis_flag[@]}"
      done
      cleanup
    done
    ;;
  churn)
    start
    for i in $(seq "$runs"); do
      lg "churn-$store-$i" churn --rate 400 --secs 30 --spaces 20 --population 400 --seed "$i"
    done
    ;;
  idle19000)
    for i in $(seq "$runs"); do
      start
      sleep 1
      lg "idle19000-$store-$i" idle --connections 19000 --spaces 1000 --ping-ms 20000 \
        --hold-secs 30 --in-flight 200 --server-pid "$server" --close clean
      cleanup
    done
    ;;
  close19500 | abort19500)
    mode=clean
    [ "$scenario" = abort19500 ] && mode=abort
    for i in $(seq "$runs"); do
      start
      sleep 1
      lg "$scenario-$store-$i" idle --connections 19500 --spaces 100 --ping-ms 20000 \
        --hold-secs 10 --in-flight 200 --server-pid "$server" --close "$mode"
      cleanup
    done
    ;;
  *)
    echo "unknown scenario $scenario" >&2
    exit 2
    ;;
esac
