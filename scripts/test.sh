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

step "build the native server"
cargo build -p longhouse-native --locked

step "end-to-end: native, in-memory store"
LONGHOUSE_TARGET=native-memory cargo test -p longhouse-e2e --locked

# Each Redis deployment starts its own redis-server (installed by setup.sh)
# on a free loopback port without persistence, and stops it afterwards.
step "end-to-end: native, Redis store, one instance"
LONGHOUSE_TARGET=native-redis cargo test -p longhouse-e2e --locked

step "end-to-end: native, Redis store, two instances on one Redis"
LONGHOUSE_TARGET=native-redis-pair cargo test -p longhouse-e2e --locked

step "end-to-end: native, Redis Cluster (three masters), two instances"
LONGHOUSE_TARGET=native-redis-cluster cargo test -p longhouse-e2e --locked

step "build the edge worker"
scripts/build-worker.sh

step "end-to-end: edge worker under wrangler dev"
LONGHOUSE_TARGET=worker cargo test -p longhouse-e2e --locked

step "all green"
