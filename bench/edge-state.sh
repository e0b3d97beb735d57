#!/usr/bin/env bash
# Usage: bench/edge-state.sh CLIENTS SENDERS RATE_HZ SECS [PORT]
# Presence-state updates in one space of CLIENTS sockets on the edge target
# under `wrangler dev` (release build in crates/worker/build): SENDERS of
# them send RATE_HZ updates a second each for SECS seconds (the loadgen
# `state` scenario; every other socket receives each update). Reports the
# loadgen's figures (updates delivered per second, latency to the last
# receiver, final states lost) and the CPU time of the Worker's workerd (the
# one with the inspector, not wrangler's local proxy) over the storm, per
# update and per delivered frame: an update's cost is proportional to its
# recipients when the per-frame figure does not change with CLIENTS. The
# CPU time of the rest of `wrangler dev` (its proxy, which production does
# not have) is reported beside it.
set -u
cd "$(dirname "$0")/.."
clients=$1 senders=$2 rate=$3 secs=$4 port=${5:-8791}
L="${LOADGEN:-target/release/longhouse-loadgen}"
pidfile=$(mktemp)
scripts/wrangler-dev.sh --background "$pidfile" --port "$port" --persist-to "$(mktemp -d)" \
  --var MAX_CLIENTS_PER_SPACE:0 --var PRESENCE_TTL:600000 >/dev/null
read -r pgid _ <"$pidfile"
worker=$(pgrep -g "$pgid" -f 'workerd serve.*--inspector-addr' | head -n1)
echo "edge-state: $clients sockets, $senders senders x $rate Hz x $secs s; commit $(git rev-parse --short HEAD); $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"
report=$(mktemp)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
others() { pgrep -g "$pgid" | grep -vx "$worker"; }
group_ticks() { local t=0 p; for p in $(others); do t=$((t + $(ticks "$p"))); done; echo "$t"; }
t0= t1=
while IFS= read -r line; do
  case $line in
    state:*) t0=$(group_ticks) ;;
    *"cpu: server"*) t1=$(group_ticks) ;;
  esac
  printf '%s\n' "$line" | tee -a "$report"
done < <("$L" --server "127.0.0.1:$port" state --clients "$clients" --senders "$senders" \
  --rate-hz "$rate" --secs "$secs" --server-pid "$worker"; echo "exit $?")
status=$(sed -n 's/^exit //p' "$report")
[ -n "$t0" ] && [ -n "$t1" ] &&
  echo "the rest of wrangler dev (its local proxy workerd, node) over the storm: $(( (t1 - t0) * 10 )) ms of cpu"
python3 - "$report" "$clients" <<'EOF'
import json, sys
# The load generator's report is its last line.
r = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])
clients = int(sys.argv[2])
cpu = r["cpu"]["server_cpu_ms"]
sent, delivered = r["sent"], r["delivered"]
if cpu is not None and sent and delivered:
    print(f"worker workerd cpu over the storm: {cpu} ms; {cpu * 1000 / sent:.0f} µs an update "
          f"({clients - 1} recipients each), {cpu * 1000 / delivered:.1f} µs a delivered frame; "
          f"{r['delivered_per_sec'] / max(clients - 1, 1):.0f} updates/s handled")
EOF
scripts/wrangler-dev.sh --stop "$pidfile" 2>/dev/null
rm -f "$report" "$pidfile"
exit $status
