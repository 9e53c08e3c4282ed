#!/usr/bin/env bash
# Fuzz the decoders of hostile input with cargo-fuzz (libFuzzer), README.rst
# "Fuzzing":
#   rpc_envelope  the oslo.messaging envelope: requests and reply frames
#   userdata      user_data (MIME, JSON, YAML, both vocabularies) and the policy
#                 check under the default and a permissive policy
#   tarfilter     the tag stripper on docker-save tarballs
#   network_info  network_info (the info cache's JSON) and the VIF accessors
# The targets are in fuzz/fuzz_targets/, a package of its own (fuzz/Cargo.toml,
# its own workspace: the main crate's build and clippy never see it), their seed
# corpora in fuzz/corpus/<target>/.
#
#   ./devstack/fuzz.sh                  every target, FUZZ_RUNS executions each
#   ./devstack/fuzz.sh tarfilter        only the targets named
#   FUZZ_RUNS=20000 ./devstack/fuzz.sh  a short run (devstack/run-tests.sh's)
#
# Environment:
#   FUZZ_RUNS       executions per target (default 10000000)
#   FUZZ_MAX_TIME   seconds per target at most (libFuzzer -max_total_time; 0 = no limit)
#   FUZZ_SANITIZER  address (default) or none (faster, catches panics only)
#   FUZZ_NICE       niceness of the runs (default 19: the machine is shared)
#   FUZZ_BUILD_ONLY 1: install cargo-fuzz and build the targets, run nothing
#                   (devstack/run-tests.sh builds them so while the tests run)
# Installs cargo-fuzz (crates.io, --locked) when it is missing. cargo-fuzz passes
# nightly -Z flags to rustc; RUSTC_BOOTSTRAP=1 lets a stable toolchain take them.
# New inputs found go to a scratch corpus (fuzz/target/corpus/<target>/), not to
# the committed seeds; a crash leaves its input in fuzz/artifacts/<target>/ and
# fails the script (reproduce with `cargo fuzz run <target> <that file>`).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
FUZZ_RUNS=${FUZZ_RUNS:-10000000}
FUZZ_MAX_TIME=${FUZZ_MAX_TIME:-0}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
FUZZ_NICE=${FUZZ_NICE:-19}
export RUSTC_BOOTSTRAP=1
log() { printf '[fuzz %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

command -v cargo >/dev/null || { log "cargo not found: install a Rust toolchain (rustup) first"; exit 1; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (cargo install --locked cargo-fuzz)"
  start=$SECONDS
  cargo install --locked cargo-fuzz
  log "cargo-fuzz installed in $((SECONDS - start))s"
fi
# libFuzzer's C++ runtime is built by libfuzzer-sys
command -v c++ >/dev/null || { log "c++ not found: apt-get install g++"; exit 1; }

cd "$TOP/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
log "building ${targets[*]} (sanitizer $FUZZ_SANITIZER, debug assertions and overflow checks on)"
start=$SECONDS
# -a: debug assertions and overflow checks, as the unit tests have them
build=(--sanitizer "$FUZZ_SANITIZER" -a)
if [ $# -eq 0 ]; then
  nice -n "$FUZZ_NICE" cargo fuzz build "${build[@]}"
else
  for t in "${targets[@]}"; do nice -n "$FUZZ_NICE" cargo fuzz build "${build[@]}" "$t"; done
fi
log "built in $((SECONDS - start))s"
[ "${FUZZ_BUILD_ONLY:-0}" != 1 ] || exit 0

rc=0
for t in "${targets[@]}"; do
  scratch="target/corpus/$t"
  mkdir -p "$scratch" "artifacts/$t"
  log "$t: $FUZZ_RUNS runs"
  start=$SECONDS
  # first corpus directory: where new inputs go; the seeds are read only
  if nice -n "$FUZZ_NICE" cargo fuzz run "${build[@]}" "$t" "$scratch" "corpus/$t" -- \
      -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_MAX_TIME" -jobs=1 -workers=1 \
      -print_final_stats=1 2>"target/$t.log"; then
    log "$t: ok in $((SECONDS - start))s: $(grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "target/$t.log" | tr '\n' ' ')"
  else
    rc=1
    log "$t: FAILED after $((SECONDS - start))s (fuzz/target/$t.log, input in fuzz/artifacts/$t/)"
    grep -E -A20 '^thread .* panicked|^==[0-9]+==ERROR' "target/$t.log" | head -40 >&2 || tail -40 "target/$t.log" >&2
  fi
done
exit $rc
