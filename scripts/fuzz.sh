#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each (default 60):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain and cargo-fuzz (scripts/setup.sh installs it).
# Builds go to target/fuzz (kept between runs, so only changes rebuild).
# A crash leaves its input under fuzz/artifacts/<target>/: add it as a
# regression test in crates/core and fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(join_parser token_verifier message_decoder)
fi

export CARGO_TARGET_DIR="$PWD/target/fuzz"
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  printf '[fuzz] %s for %ss\n' "$t" "$seconds"
  log="$CARGO_TARGET_DIR/$t.log"
  mkdir -p "$CARGO_TARGET_DIR"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len=8192 >"$log" 2>&1; then
    tail -40 "$log" >&2
    if compgen -G "fuzz/artifacts/$t/*" >/dev/null; then
      echo "[fuzz] $t FAILED: the crashing input is under fuzz/artifacts/$t/" >&2
    else
      echo "[fuzz] $t FAILED without a crashing input (a build error?): the log above" >&2
    fi
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || tail -3 "$log"
done
echo "[fuzz] all targets ran ${seconds}s without a crash"
