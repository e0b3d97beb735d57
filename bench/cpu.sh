#!/usr/bin/env bash
# Usage: bench/cpu.sh memory|redis LOADGEN-ARGS...
# Server and load-generator CPU time for one run (independent of how much of
# the shared machine each got).
set -u
cd "$(dirname "$0")/.."
store=$1
shift
L="${LOADGEN:-target/release/longhouse-loadgen}"
S="${LONGHOUSE:-target/release/longhouse}"
env=(PORT=17600 HOST=127.0.0.1 PRESENCE_TTL=600000 RUST_LOG=warn MAX_CLIENTS_PER_SPACE=0 MAX_CONNECTIONS=0)
if [ $store = redis ]; then
  redis-server --port 17601 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & rpid=$!
  sleep 0.5; env+=(REDIS_URL=redis://127.0.0.1:17601)
fi
env "${env[@]}" "$S" 2>/dev/null & pid=$!
sleep 0.7
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
s0=$(ticks $pid); r0=0; [ -n "${rpid:-}" ] && r0=$(ticks $rpid)
/usr/bin/time -f "loadgen cpu: user %U s, sys %S s, wall %e s" $L --server 127.0.0.1:17600 "$@" 2>&1 | grep -vE '^\{' | grep -E "joins:|rounds|last receiver|loadgen cpu|OK|FAIL"
s1=$(ticks $pid); r1=0; [ -n "${rpid:-}" ] && r1=$(ticks $rpid)
echo "server cpu: $(( (s1-s0) * 10 )) ms; redis-server cpu: $(( (r1-r0) * 10 )) ms (store=$store; $*; load $(cut -d' ' -f1-3 /proc/loadavg))"
kill $pid; [ -n "${rpid:-}" ] && kill $rpid
wait 2>/dev/null
