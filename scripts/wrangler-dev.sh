#!/usr/bin/env bash
# Runs the prebuilt edge target (scripts/build-worker.sh) under `wrangler dev`
# on loopback, locally, without building, prompting or phoning home.
#
# Usage:
#   scripts/wrangler-dev.sh [options] [-- extra wrangler dev args]
#       Runs in the foreground (exec). Whoever starts it should put it in its
#       own process group and stop the whole group: wrangler's workerd child
#       keeps the port if only the node process dies.
#   scripts/wrangler-dev.sh --background PIDFILE [options]
#       Starts it in a new session (process group), waits until GET /health
#       answers, writes "PGID PORT" to PIDFILE, prints the URL and exits.
#   scripts/wrangler-dev.sh --stop PIDFILE
#       Stops the process group recorded in PIDFILE and waits for the port to
#       be free again.
#
# Options:
#   --port N          port on 127.0.0.1 (default 8787; 0 picks a free one,
#                     reported in PIDFILE in --background mode)
#   --ip ADDR         listen address (default 127.0.0.1)
#   --inspector-port N  devtools port (default 0: a free one; wrangler's own
#                     default probes from 9229 and races with parallel runs)
#   --persist-to DIR  Durable Object storage directory; reuse it across
#                     restarts to keep storage (default .wrangler/state)
#   --var KEY:VALUE   override a [vars] entry, e.g. --var PRESENCE_TTL:3000
#                     (repeatable)
#   --log FILE        wrangler's output in --background mode
#                     (default: PIDFILE.log)
#   --build           run scripts/build-worker.sh first
#   --timeout S       --background: seconds to wait for readiness (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[wrangler-dev] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Stops process group $1, politely first; returns once it has gone.
stop_group() {
  local pgid=$1 i
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for i in $(seq 1 50); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.2
  done
  log "process group $pgid ignored SIGTERM; sending SIGKILL"
  kill -KILL -- "-$pgid" 2>/dev/null || true
  for i in $(seq 1 25); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.2
  done
  die "process group $pgid is still alive"
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ip=127.0.0.1
port=8787
inspector_port=0
persist_to=
log_file=
background=
timeout=60
build=0
vars=()
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --ip) ip=${2:?--ip needs a value}; shift 2 ;;
    --inspector-port) inspector_port=${2:?--inspector-port needs a value}; shift 2 ;;
    --persist-to) persist_to=${2:?--persist-to needs a value}; shift 2 ;;
    --var) vars+=(--var "${2:?--var needs KEY:VALUE}"); shift 2 ;;
    --log) log_file=${2:?--log needs a value}; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
    --build) build=1; shift ;;
    --background) background=${2:?--background needs a PIDFILE}; shift 2 ;;
    --stop)
      pidfile=${2:?--stop needs a PIDFILE}
      [ -f "$pidfile" ] || die "no such pidfile: $pidfile"
      read -r pgid stop_port <"$pidfile" || true
      [ -n "${pgid:-}" ] || die "empty pidfile: $pidfile"
      stop_group "$pgid"
      rm -f "$pidfile"
      if [ -n "${stop_port:-}" ]; then
        for _ in $(seq 1 25); do port_busy "$stop_port" || break; sleep 0.2; done
        ! port_busy "$stop_port" || die "port $stop_port is still in use"
      fi
      log "stopped process group $pgid"
      exit 0
      ;;
    --) shift; extra+=("$@"); break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (wrangler's own flags go after --)" ;;
  esac
done

[ "$build" = 0 ] || scripts/build-worker.sh
[ -f crates/worker/build/index.js ] && [ -f crates/worker/build/index_bg.wasm ] ||
  die "crates/worker/build is empty: run scripts/build-worker.sh first"
[ -x node_modules/.bin/wrangler ] || die "wrangler missing: run scripts/setup.sh"

# No telemetry, error reports, update check (it rides on the banner),
# Request.cf download or interactive prompts.
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export WRANGLER_HIDE_BANNER=true
export CLOUDFLARE_CF_FETCH_ENABLED=false
export NO_COLOR=1
export FORCE_COLOR=0

args=(dev --local --ip "$ip" --port "$port" --inspector-port "$inspector_port"
  --show-interactive-dev-session=false)
[ -z "$persist_to" ] || args+=(--persist-to "$persist_to")
args+=("${vars[@]}" "${extra[@]}")

if [ -z "$background" ]; then
  exec node_modules/.bin/wrangler "${args[@]}" </dev/null
fi

# --- background ----------------------------------------------------------
[ "$port" = 0 ] || ! port_busy "$port" || die "port $port is already in use"
log_file=${log_file:-$background.log}
mkdir -p "$(dirname "$background")" "$(dirname "$log_file")"
: >"$log_file"
start_ms=$(date +%s%3N)
setsid node_modules/.bin/wrangler "${args[@]}" </dev/null >"$log_file" 2>&1 &
pgid=$!

case $ip in 0.0.0.0 | "::") probe_ip=127.0.0.1 ;; *) probe_ip=$ip ;; esac
ready_port=
deadline=$(($(date +%s) + timeout))
while :; do
  if ! kill -0 "$pgid" 2>/dev/null; then
    tail -n 40 "$log_file" >&2
    die "wrangler dev exited before it was ready"
  fi
  if [ -z "$ready_port" ]; then
    ready_port=$(sed -n 's#.*Ready on http://[^ ]*:\([0-9][0-9]*\).*#\1#p' "$log_file" | head -n1 || true)
  fi
  if [ -n "$ready_port" ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$probe_ip:$ready_port/health" || true)" = 200 ]; then
    break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    tail -n 40 "$log_file" >&2
    stop_group "$pgid"
    die "not ready after ${timeout}s"
  fi
  sleep 0.1
done
printf '%s %s\n' "$pgid" "$ready_port" >"$background"
log "ready on http://$probe_ip:$ready_port in $(($(date +%s%3N) - start_ms)) ms (process group $pgid, log $log_file)"
printf 'http://%s:%s\n' "$probe_ip" "$ready_port"
