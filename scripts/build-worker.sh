#!/usr/bin/env bash
# Builds the edge target (crates/worker) once, in release mode, into
# crates/worker/build/ (index.js, index_bg.wasm; worker/shim.mjs is an alias),
# which is what wrangler.toml's `main` points at.
#
# Offline with respect to GitHub: worker-build downloads wasm-bindgen,
# wasm-opt and esbuild from GitHub unless *_BIN overrides are set, so this
# script sets them to the tools installed by scripts/setup.sh (cargo install
# and npm ci) and refuses to run if one is missing or has the wrong version.
#
# Usage: scripts/build-worker.sh [--force]
#   --force  rebuild even if the sources have not changed since the last build
#
# Environment:
#   LONGHOUSE_WORKER_TARGET_DIR  cargo target dir for the wasm build
#                                (default: target/edge, kept apart from the
#                                host builds so that a `cargo test` holding
#                                target/'s lock cannot block it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen` pin in crates/worker/Cargo.toml
WASM_OPT_VERSION=132

crate_dir=$root/crates/worker
out_dir=$crate_dir/build
stamp=$out_dir/.longhouse-stamp

log() { printf '[build-worker] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

force=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg" ;;
  esac
done

# --- tools -----------------------------------------------------------------
version_of() { "$@" --version 2>/dev/null | head -n1 || true; }

command -v worker-build >/dev/null || die "worker-build not found: run scripts/setup.sh"
[ "$(version_of worker-build)" = "$WORKER_BUILD_VERSION" ] ||
  die "worker-build $WORKER_BUILD_VERSION required, found '$(version_of worker-build)'"

WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen || true)}
[ -n "$WASM_BINDGEN_BIN" ] || die "wasm-bindgen not found: run scripts/setup.sh"
case $(version_of "$WASM_BINDGEN_BIN") in
  "wasm-bindgen $WASM_BINDGEN_VERSION") ;;
  *) die "wasm-bindgen $WASM_BINDGEN_VERSION required, found '$(version_of "$WASM_BINDGEN_BIN")'" ;;
esac

WASM_OPT_BIN=${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}
ESBUILD_BIN=${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}
[ -x "$WASM_OPT_BIN" ] || die "$WASM_OPT_BIN missing: run scripts/setup.sh (npm ci)"
[ -x "$ESBUILD_BIN" ] || die "$ESBUILD_BIN missing: run scripts/setup.sh (npm ci)"
case $(version_of "$WASM_OPT_BIN") in
  "wasm-opt version $WASM_OPT_VERSION "*) ;;
  *) die "wasm-opt $WASM_OPT_VERSION required, found '$(version_of "$WASM_OPT_BIN")'" ;;
esac
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
  die "the wasm32-unknown-unknown target is missing: run scripts/setup.sh"

export WASM_BINDGEN_BIN WASM_OPT_BIN ESBUILD_BIN
export CARGO_TARGET_DIR=${LONGHOUSE_WORKER_TARGET_DIR:-$root/target/edge}

# --- skip when nothing changed ----------------------------------------------
# Everything that can change the output: the two crates' sources and
# manifests, the lockfile, the workspace manifest, this script, the tools and
# cargo's profile/flag environment.
fingerprint() {
  {
    find crates/worker crates/core -path crates/worker/build -prune -o -type f -print |
      LC_ALL=C sort | xargs sha256sum
    sha256sum Cargo.toml Cargo.lock scripts/build-worker.sh
    rustc --version
    printf '%s\n' "$WORKER_BUILD_VERSION" "$WASM_BINDGEN_VERSION" "$WASM_OPT_VERSION"
    "$ESBUILD_BIN" --version
    env | grep -E '^(CARGO_PROFILE_|CARGO_BUILD_|RUSTFLAGS|CARGO_ENCODED_RUSTFLAGS|CARGO_TARGET_DIR)' | LC_ALL=C sort
  } 2>/dev/null | sha256sum | cut -d' ' -f1
}

report() {
  local wasm=$out_dir/index_bg.wasm js=$out_dir/index.js
  [ -f "$wasm" ] && [ -f "$js" ] || die "build output missing in $out_dir"
  local raw gz js_raw
  raw=$(wc -c <"$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  js_raw=$(wc -c <"$js")
  log "index_bg.wasm: $raw bytes raw, $gz bytes gzip -9"
  log "index.js:      $js_raw bytes"
}

before=$(fingerprint)
if [ "$force" = 0 ] && [ -f "$stamp" ] && [ -f Cargo.lock ] &&
  [ -f "$out_dir/index.js" ] && [ -f "$out_dir/index_bg.wasm" ] &&
  [ "$(cat "$stamp")" = "$before" ]; then
  log "up to date ($out_dir)"
  report
  exit 0
fi

# --- build -------------------------------------------------------------------
rm -f "$stamp"
start=$(date +%s)
log "worker-build --release (target dir $CARGO_TARGET_DIR)"
(cd "$crate_dir" && worker-build --release)
log "built in $(($(date +%s) - start)) s"
# Stamp what was built: if a source changed during the build, the next run
# sees a different fingerprint and builds again.
printf '%s\n' "$before" >"$stamp"
report
