#!/usr/bin/env bash
# Instructions the server executes (user space; the kernel's work is not
# counted) for one fixed load-generator run, counted by valgrind's callgrind:
# counts repeat from run to run, unlike wall-clock figures on a shared
# machine. Two server runs: an empty one (start, /health, SIGTERM) and one
# with the load; the difference is the load's. The summary, the difference
# and the top functions (inclusive) go to OUT/callgrind-NAME.txt; the raw
# profile stays in OUT/callgrind-NAME.out (for callgrind_annotate; not kept
# in the repository).
#
# Usage: bench/callgrind.sh NAME LOADGEN-ARGS...
#   e.g. bench/callgrind.sh join   join --spaces 4 --clients 25 --in-flight 10
#        bench/callgrind.sh fanout fanout --clients 100 --rounds 10
# Env: LONGHOUSE (server binary, default target/release/longhouse), LOADGEN,
#      PORT (default 17650), OUT (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
server_bin="${LONGHOUSE:-target/release/longhouse}"
loadgen_bin="${LOADGEN:-target/release/longhouse-loadgen}"
port="${PORT:-17650}"
out="${OUT:-bench/results}"
mkdir -p "$out"
report="$out/callgrind-$name.txt"

pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

# One server under callgrind; runs "$@" (nothing for the empty run) against
# it, stops it with SIGTERM and prints its total instruction count.
counted() {
  local raw=$1
  shift
  env PORT="$port" HOST=127.0.0.1 PRESENCE_TTL=600000 KEEPALIVE_MS=30000 RUST_LOG=warn NO_COLOR=1 \
    MAX_CLIENTS_PER_SPACE=0 MAX_CONNECTIONS=0 \
    valgrind --tool=callgrind --callgrind-out-file="$raw" "$server_bin" 2>"$raw.log" &
  pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
  done
  if [ $# -gt 0 ]; then
    "$loadgen_bin" --server "127.0.0.1:$port" "$@" >>"$report" 2>&1 || echo "# exit status $?" >>"$report"
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  awk '/^(summary|totals):/ {print $2; exit}' "$raw"
}

{
  echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) server: $server_bin ($(git rev-parse --short HEAD))"
  echo "# $loadgen_bin --server 127.0.0.1:$port $*"
} >"$report"
empty=$(counted "$out/callgrind-$name-empty.out")
loaded=$(counted "$out/callgrind-$name.out" "$@")
{
  echo "# instructions: empty run $empty, with the load $loaded, the load's: $((loaded - empty))"
  # (Through a file: head closing the pipe would end this script.)
  callgrind_annotate --inclusive=yes "$out/callgrind-$name.out" >"$out/callgrind-$name.annotated" 2>/dev/null || true
  head -70 "$out/callgrind-$name.annotated"
} >>"$report"
echo "$name: empty $empty, loaded $loaded, load $((loaded - empty)) instructions"
rm -f "$out/callgrind-$name-empty.out" "$out/callgrind-$name-empty.out.log" "$out/callgrind-$name.annotated"
