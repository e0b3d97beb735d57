#!/usr/bin/env bash
# Usage: bench/edge-messages.sh CLIENTS MESSAGES [PORT]
# One sender's messages/s in a space of CLIENTS held clients on the edge
# target under `wrangler dev` (release build in crates/worker/build), and the
# CPU time of the Worker's workerd (the one with the inspector, not
# wrangler's proxy) while the messages are handled (sampled when the load
# generator reports the space full, and again when it reports the end).
set -u
cd "$(dirname "$0")/.."
clients=$1 messages=$2 port=${3:-8790}
L="${LOADGEN:-target/release/longhouse-loadgen}"
pidfile=$(mktemp)
scripts/wrangler-dev.sh --background "$pidfile" --port "$port" --persist-to "$(mktemp -d)" \
  --var MAX_CLIENTS_PER_SPACE:0 --var MESSAGE_RATE:0 --var PRESENCE_TTL:600000 >/dev/null
read -r pgid _ <"$pidfile"
worker=$(pgrep -g "$pgid" -f 'workerd serve.*--inspector-addr' | head -n1)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
t0= t1=
while IFS= read -r line; do
  case $line in
    '{'*) continue ;;
    messages:*) t0=$(ticks "$worker"); w0=$(date +%s%N) ;;
    *"handled in"*) t1=$(ticks "$worker"); w1=$(date +%s%N) ;;
  esac
  printf '%s\n' "$line"
done < <("$L" --server "127.0.0.1:$port" messages --clients "$clients" --messages "$messages")
[ -n "$t0" ] && [ -n "$t1" ] &&
  echo "worker workerd cpu while the $messages messages were handled: $(( (t1 - t0) * 10 )) ms, $(( (t1 - t0) * 10000 / messages )) µs a message, over $(( (w1 - w0) / 1000000 )) ms of wall time (load $(cut -d' ' -f1-3 /proc/loadavg))"
scripts/wrangler-dev.sh --stop "$pidfile" 2>/dev/null
