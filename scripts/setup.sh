#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine, skipping what
# is already there. Everything comes from the Rust crate registry, the npm
# registry (with the committed lockfile) and Debian's packages: nothing is
# downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen` pin in crates/worker/Cargo.toml

log() { printf '[setup] %s\n' "$*"; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt_install redis-server
fi
# The packaged service is not ours to run: tests start their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi

# The skewed-clock fault case runs one native instance under libfaketime.
if ! compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null; then
  apt_install faketime
fi

# The browser test drives Debian's Chromium (clients/js/test/browser.test.mjs).
if ! command -v chromium >/dev/null; then
  apt_install chromium
fi

# The container image (scripts/image-smoke.sh): podman builds and runs it;
# curl asks the smoke server for /health; the static binary is musl.
# runc beside podman's crun: crun refuses this machine's hybrid cgroups.
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  apt_install podman runc
fi
if ! command -v curl >/dev/null; then
  apt_install curl
fi
# ring (rustls, under reqwest's webhook client) compiles C for musl.
if ! command -v musl-gcc >/dev/null; then
  apt_install musl-tools
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "rustup target add x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# `worker-build --version` prints the bare version.
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  log "cargo install worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --quiet
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --quiet
fi

CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi

if [ ! -x node_modules/.bin/wrangler ] || ! npm ls --silent >/dev/null 2>&1; then
  log "npm ci (wrangler, esbuild, binaryen)"
  npm ci --no-audit --no-fund --silent
fi

log "ready"
