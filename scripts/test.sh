#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs
# every check and every test suite against every target. `.ci/run` calls
# exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "core and worker build for wasm32-unknown-unknown"
cargo build -p longhouse-core --target wasm32-unknown-unknown --locked
cargo clippy -p longhouse-worker --target wasm32-unknown-unknown --locked -- -D warnings

step "unit and property tests"
cargo test --workspace --locked --exclude longhouse-e2e

# A short run of each fuzz target (nightly, its own target dir so the
# build is reused); scripts/fuzz.sh SECONDS runs longer.
step "fuzz: join parser, token verifier, message decoder (20 s each)"
scripts/fuzz.sh 20

step "build the native server"
cargo build -p longhouse-native --locked

# The native binary embeds clients/js/dist/index.js (the demo page loads it),
# so the build is committed: a fresh build (esbuild bundles, tsc
# declarations: clients/js/build.mjs) must equal it. `npm ci` and
# test/cache-react.mjs also fill npm's cache with React (tarballs and
# registry metadata), which the hooks' tests install from it offline.
step "client library (clients/js): npm ci, the build equals the committed dist"
(cd clients/js && npm ci --no-audit --no-fund --silent && node test/cache-react.mjs)
js_build=$(mktemp -d)
(cd clients/js && node build.mjs "$js_build")
if ! diff -r "$js_build" clients/js/dist; then
  rm -rf "$js_build"
  echo "clients/js/dist is stale: run (cd clients/js && npm run build) and commit it" >&2
  exit 1
fi
rm -rf "$js_build"

# Every one imports the packaged client: `npm pack` of clients/js, installed
# offline from the tarball (with React for the hooks) into a scratch
# project in a temp dir (test/packaged.mjs); package.test.mjs also checks
# what the tarball holds, imports it by name there and type-checks a
# program against its .d.ts. unit: the hooks' store and setState's checks;
# state: presence state, members, broadcast, 4003; react: server rendering;
# readme: the README's webhook signature checks (Node, Python) on a real webhook.
step "client library, as packaged, against real native servers (node --test)"
(cd clients/js && node --experimental-websocket --test test/unit.test.mjs test/client.test.mjs \
  test/state.test.mjs test/package.test.mjs test/react.test.mjs test/readme.test.mjs)

step "demo page and React hooks in headless Chromium (screenshots: test-artifacts/)"
(cd clients/js && node --experimental-websocket --test test/browser.test.mjs test/react-browser.test.mjs)

step "end-to-end: native, in-memory store"
LONGHOUSE_TARGET=native-memory cargo test -p longhouse-e2e --locked -- --skip hostile::

# A few hundred connections through the load generator: fails on any lost
# or doubled event (exit status). Figures live in BENCHMARKS.md, not here.
step "load generator smoke run (native, in-memory store)"
cargo build -p longhouse-loadgen --locked
bench/smoke.sh

# Each Redis deployment starts its own redis-server (installed by setup.sh)
# on a free loopback port without persistence, and stops it afterwards.
step "end-to-end: native, Redis store, one instance"
LONGHOUSE_TARGET=native-redis cargo test -p longhouse-e2e --locked -- --skip hostile::

step "end-to-end: native, Redis store, two instances on one Redis"
LONGHOUSE_TARGET=native-redis-pair cargo test -p longhouse-e2e --locked -- --skip hostile::

step "end-to-end: native, Redis Cluster (three masters), two instances"
LONGHOUSE_TARGET=native-redis-cluster cargo test -p longhouse-e2e --locked -- --skip hostile::

# The hostile-client suite runs alone (it loads the machine on purpose, and
# measures the server's memory), once per native target; it prints the
# server's RSS before and after and the observer's lost events, also kept in
# target/e2e-logs/hostile-report-<target>.txt.
# (In memory, and two instances on one Redis: the two shapes a deployment takes.)
for target in native-memory native-redis-pair; do
  step "hostile clients: $target"
  LONGHOUSE_TARGET=$target cargo test -p longhouse-e2e --locked -- hostile::
done

# The Dockerfile's image, built with podman from the static musl binary and
# run: /health, its HEALTHCHECK, a welcomed join. Where containers cannot
# run here the script says why and smoke-tests the static binary instead.
step "container image: static binary, podman build and run, smoke test"
scripts/image-smoke.sh

step "build the edge worker"
scripts/build-worker.sh

step "end-to-end: edge worker under wrangler dev"
LONGHOUSE_TARGET=worker cargo test -p longhouse-e2e --locked

step "all green"
