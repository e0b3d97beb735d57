#!/usr/bin/env bash
# Longhouse next to the Yjs awareness server (@y/websocket-server, pinned by
# bench/peers/package-lock.json), driven by the same load generator in the
# same run on the same machine: the state storm at 20, 50 and 100 clients
# (20 Hz, 30 s) and a join storm (50 spaces x 100 clients, 100 in flight,
# each joining with a cursor state), against both, alternating. Prints the
# table of medians with each figure for both and their ratio; raw output
# goes to bench/results/peers-*. Loopback only; every run is bounded.
#
# Usage: bench/peers.sh [RUNS]          (default 3 runs of everything)
# Env: TARGETS ("longhouse yjs"; one of them alone to run one side),
#      SCENARIOS ("state join"; one of them alone to run one),
#      SIZES ("20 50 100"), RATE (20), SECS (30),
#      LONGHOUSE, LOADGEN (binaries; default: release builds, built here),
#      PORT (Longhouse's, default 17700; the peer gets PORT+1), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
targets="${TARGETS:-longhouse yjs}"
scenarios="${SCENARIOS:-state join}"
sizes="${SIZES:-20 50 100}"
rate="${RATE:-20}"
secs="${SECS:-30}"
port="${PORT:-17700}"
yjs_port=$((port + 1))
out="${OUT:-bench/results}"
mkdir -p "$out"

if [ -z "${LONGHOUSE:-}" ] || [ -z "${LOADGEN:-}" ]; then
  cargo build --release --locked -p longhouse-native -p longhouse-loadgen
fi
server_bin="${LONGHOUSE:-target/release/longhouse}"
loadgen_bin="${LOADGEN:-target/release/longhouse-loadgen}"
# Exactly the lockfile's versions, no install scripts (the optional LevelDB
# persistence, off unless YPERSISTENCE is set, is the only one that has any).
(cd bench/peers && npm ci --ignore-scripts --no-audit --no-fund --silent)
peer_js=bench/peers/node_modules/@y/websocket-server/src/server.js
peer_version=$(node -p 'require("./bench/peers/node_modules/@y/websocket-server/package.json").version')
yjs_version=$(node -p 'require("./bench/peers/node_modules/yjs/package.json").version')
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- native crates || echo "+dirty")

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT

wait_http() {
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$1/${2:-}" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "peers: nothing answers on port $1" >&2
  exit 1
}

declare -A pid_of addr_of
for t in $targets; do
  case "$t" in
    longhouse)
      # The defaults a user gets (UPDATE_INTERVAL_MS, MESSAGE_RATE, the
      # keepalive), in memory, on loopback.
      env PORT="$port" HOST=127.0.0.1 RUST_LOG=warn NO_COLOR=1 "$server_bin" 2>>"$out/peers-server-longhouse.log" &
      pid_of[$t]=$!
      addr_of[$t]="127.0.0.1:$port"
      wait_http "$port" health
      ;;
    yjs)
      env HOST=127.0.0.1 PORT="$yjs_port" node "$peer_js" >>"$out/peers-server-yjs.log" 2>&1 &
      pid_of[$t]=$!
      addr_of[$t]="127.0.0.1:$yjs_port"
      wait_http "$yjs_port"
      ;;
    *)
      echo "peers: unknown target $t" >&2
      exit 2
      ;;
  esac
  pids+=("${pid_of[$t]}")
done

lg() {
  local name="$1" t="$2"
  shift 2
  local file="$out/peers-$name-$t-$i.txt"
  local cmd=("$loadgen_bin" --server "${addr_of[$t]}" --protocol "$t" "$@" --server-pid "${pid_of[$t]}")
  {
    echo "# $(date -u +%FT%TZ) target=$t commit=$commit peer=@y/websocket-server@$peer_version yjs@$yjs_version load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# ${cmd[*]}"
  } >"$file"
  "${cmd[@]}" >>"$file" 2>&1 || echo "# exit status $?" >>"$file"
  echo "$(basename "$file"): $(grep -E '^  (OK|FAILED)$' "$file" | tr -d ' ' || echo '?')"
}

# A short pass first, so that neither is measured cold (Node's JIT).
i=warmup
for t in $targets; do
  lg join "$t" join --spaces 10 --clients 20 --in-flight 20 --with-state >/dev/null
  lg state20 "$t" state --clients 20 --rate-hz "$rate" --secs 3 >/dev/null
done

for i in $(seq "$runs"); do
  if [[ " $scenarios " == *" state "* ]]; then
    for n in $sizes; do
      for t in $targets; do
        lg "state$n" "$t" state --clients "$n" --rate-hz "$rate" --secs "$secs"
      done
    done
  fi
  if [[ " $scenarios " == *" join "* ]]; then
    for t in $targets; do
      lg join "$t" join --spaces 50 --clients 100 --in-flight 100 --with-state
    done
  fi
done
cleanup
python3 bench/peers_table.py "$out" | tee "$out/peers-table.md"
