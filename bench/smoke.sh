#!/usr/bin/env bash
# Smoke run of the load generator for the test command: a few hundred
# connections against the native server with the in-memory store, on
# loopback. Fails (non-zero exit) if any event is lost or doubled, any view
# diverges, or any socket fails. Not a benchmark: no figure is asserted.
#
# Usage: bench/smoke.sh [path/to/longhouse] [path/to/longhouse-loadgen]
# (defaults: the debug builds under ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${CARGO_TARGET_DIR:-target}/debug"
server_bin="${1:-$dir/longhouse}"
loadgen_bin="${2:-$dir/longhouse-loadgen}"

log="$(mktemp)"
PORT=0 HOST=127.0.0.1 NO_COLOR=1 RUST_LOG=warn,longhouse=info "$server_bin" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

addr=""
for _ in $(seq 100); do
  addr="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -i listening | grep -oE '127\.0\.0\.1:[0-9]+' | head -n1 || true)"
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "smoke: the server did not start" >&2
  cat "$log" >&2
  exit 1
fi

run() {
  echo "--- loadgen $*"
  timeout 60 "$loadgen_bin" --server "$addr" "$@"
}
run join --spaces 4 --clients 50 --in-flight 50
run fanout --clients 200 --rounds 10
run churn --rate 100 --secs 3 --spaces 5 --population 100
# The state storm, small: every receiver must end with every sender's
# final state (the run exits 1 on any lost final state, leave or drop).
run state --clients 20 --rate-hz 20 --secs 2
run idle --connections 300 --spaces 30 --ping-ms 500 --hold-secs 2 --server-pid "$server" --close abort
run state --clients 20 --rate-hz 20 --secs 2
kill -0 "$server"
echo "smoke: OK"
