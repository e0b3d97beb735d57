#!/usr/bin/env bash
# The floor of the join and fan-out rows on this machine: CPU per join and
# per delivered frame (server and load generator, each measured from /proc
# over the measured phase, so the figures hold whatever else the machine
# does), the rates and latencies seen in the same runs, and what the two
# cores can reach at best (bench/floor.py prints the calculation).
#
# Usage: bench/floor.sh [RUNS]       (default 3 of each; memory and Redis)
# Env: STORES ("memory redis"), LONGHOUSE, LOADGEN (release builds by
#      default, built here), PORT (default 17800; Redis gets PORT+1), OUT
#      (default bench/results/floor), PERF=1 (also a cpu-clock profile of
#      one join run and one fan-out run with `perf record`, kept as text).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
stores="${STORES:-memory redis}"
port="${PORT:-17800}"
redis_port=$((port + 1))
out="${OUT:-bench/results/floor}"
mkdir -p "$out"
if [ -z "${LONGHOUSE:-}" ] || [ -z "${LOADGEN:-}" ]; then
  cargo build --release --locked -p longhouse-native -p longhouse-loadgen
fi
server_bin="${LONGHOUSE:-target/release/longhouse}"
loadgen_bin="${LOADGEN:-target/release/longhouse-loadgen}"

server=""
redis=""
stop() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  [ -n "$redis" ] && kill "$redis" 2>/dev/null && wait "$redis" 2>/dev/null || true
  server=""
  redis=""
}
trap stop EXIT

start() {
  local env=(PORT="$port" HOST=127.0.0.1 PRESENCE_TTL=600000 KEEPALIVE_MS=30000 RUST_LOG=warn NO_COLOR=1
    MAX_CLIENTS_PER_SPACE=0 MAX_CONNECTIONS=0)
  if [ "$1" = redis ]; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    redis=$!
    until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
      kill -0 "$redis" 2>/dev/null || { echo "redis-server did not start" >&2; exit 1; }
      sleep 0.05
    done
    env+=(REDIS_URL="redis://127.0.0.1:$redis_port")
  fi
  env "${env[@]}" "$server_bin" 2>>"$out/server-$1.log" &
  server=$!
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { echo "the server did not start" >&2; exit 1; }
    sleep 0.05
  done
}

# One run of the load generator, its output kept; with PERF=1 and a profile
# name, under `perf record` of the server.
run() {
  local file="$out/$1.txt"
  local profile="$2"
  shift 2
  echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) commit $(git rev-parse --short HEAD)" >"$file"
  local perf=""
  if [ "${PERF:-0}" = 1 ] && [ -n "$profile" ]; then
    perf record -F 999 -g -p "$server" -o "$out/$profile.data" 2>/dev/null &
    perf=$!
  fi
  "$loadgen_bin" --server "127.0.0.1:$port" "$@" --server-pid "$server" >>"$file" 2>&1 || true
  if [ -n "$perf" ]; then
    kill -INT "$perf"
    wait "$perf" 2>/dev/null || true
    perf report -i "$out/$profile.data" --no-children --sort dso,symbol --stdio >"$out/$profile.full" 2>/dev/null || true
    head -80 "$out/$profile.full" >"$out/$profile.txt"
    rm -f "$out/$profile.data" "$out/$profile.full"
  fi
  grep -v '^{' "$file" | grep -E "joins:|connect to|cpu|OK|FAILED" || true
}

for store in $stores; do
  start "$store"
  # A short warm-up, not kept.
  "$loadgen_bin" --server "127.0.0.1:$port" join --spaces 5 --clients 20 --in-flight 20 >/dev/null 2>&1 || true
  for i in $(seq "$runs"); do
    p=""; [ "$i" = 1 ] && p="profile-join-$store"
    run "join-$store-$i" "$p" join --spaces 50 --clients 100 --in-flight 100
  done
  for i in $(seq "$runs"); do
    p=""; [ "$i" = 1 ] && p="profile-fanout-$store"
    run "fanout-$store-$i" "$p" fanout --clients 1000 --rounds 100
  done
  stop
done
python3 bench/floor.py "$out"
