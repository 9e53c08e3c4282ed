#!/usr/bin/env bash
# The project's test command (README.rst "Test it"): sets up on a fresh Debian
# machine everything the tests need (RabbitMQ, Docker, Open vSwitch, a venv with
# the Python OpenStack peers, the lab's cloud - Keystone, Neutron with ML2/OVN,
# Glance, placement, the Nova control plane - and a local busybox image), then
# runs every test, unit and integration, against the real services.
# Extra arguments go to cargo test, before its `--`: e.g. `--test e2e_nova`, or
# `--test e2e_nova -- boot` (what follows a `--` goes to the test binaries).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
# short-lived tokens, so that the tests see the daemon (and themselves)
# re-authenticate; set before the lab starts (keystone restarts on a change).
# 240 s, not less: keystoneauth renews a token that has less than 120 s left, so
# with a shorter life every request of the Python services authenticates again
# (with 90 s, e2e_registry took 445 s instead of 55)
# (the soak, ND_SOAK=1, runs with Keystone's usual hour: with 90 s tokens
# Keystone's password hashing took a whole core and set a soak cycle's pace at
# 8.9 s instead of 2.6 s)
if [ "${ND_SOAK:-0}" = 1 ]; then
  export ND_TOKEN_EXPIRATION=${ND_TOKEN_EXPIRATION:-3600}
fi
export ND_TOKEN_EXPIRATION=${ND_TOKEN_EXPIRATION:-240}
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
mkdir -p "$ND_STATE"

nd_apt_install ca-certificates curl iproute2 iptables procps util-linux gcc pkg-config
command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain (rustup) first"
# Integration tests are #[ignore]d so a bare `cargo test` needs no services.
cargo_args=() test_args=()
# the fuzz step runs with the whole suite (no arguments), or with ND_FUZZ=1; ND_FUZZ=0 skips it
fuzz=${ND_FUZZ:-$([ $# -eq 0 ] && echo 1 || echo 0)}
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; test_args=("$@"); break; fi
  cargo_args+=("$1"); shift
done
[ ${#cargo_args[@]} -gt 0 ] || cargo_args=(--all-targets)
# The build (the crate and its test binaries; then the fuzz targets, a release
# build with the sanitizer, at niceness 19) runs in the background while the
# services are installed and started, which mostly wait on the network and on
# Python, instead of after them.
if [ "$fuzz" = 1 ]; then
  nd_apt_install g++ # libfuzzer-sys builds libFuzzer's C++ runtime
fi
rm -f "$ND_STATE/build.rc" "$ND_STATE/fuzz-build.rc"
nd_log "building the tests in the background ($ND_STATE/test-build.log)"
(
  cd "$TOP"
  rc=0
  cargo test --no-run "${cargo_args[@]}" >"$ND_STATE/test-build.log" 2>&1 || rc=$?
  echo $rc >"$ND_STATE/build.rc"
  if [ "$fuzz" = 1 ]; then
    rc=0
    FUZZ_BUILD_ONLY=1 "$TOP/devstack/fuzz.sh" >"$ND_STATE/fuzz-build.log" 2>&1 || rc=$?
    echo $rc >"$ND_STATE/fuzz-build.rc"
  fi
) &
builds=$!
nd_ensure_docker
nd_ensure_rabbitmq
nd_ensure_venv
nd_build_test_image "$ND_TEST_IMAGE"
nd_controlplane_up
# the tests start their own daemons (host names derived from ND_HOST): stop the
# one stack.sh started
nd_stop nova-docker-compute
# what a user of the lab finds: flavor m1.tiny, image busybox (the test image)
nd_seed "$ND_TEST_IMAGE"
for extra in "$TOP"/devstack/lib/test-setup-*.sh; do
  [ -e "$extra" ] && source "$extra"
done

export NOVA_DOCKER_TEST_PYTHON="$ND_VENV/bin/python"
export NOVA_DOCKER_TEST_TRANSPORT_URL=${NOVA_DOCKER_TEST_TRANSPORT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
export NOVA_DOCKER_TEST_IMAGE="$ND_TEST_IMAGE"
# the lab's URLs and credentials (NOVA_DOCKER_E2E_*; the image tests' own Glance
# is NOVA_DOCKER_TEST_GLANCE_URL, exported above)
nd_export_lab_env
cd "$TOP"
while [ ! -e "$ND_STATE/build.rc" ] && kill -0 "$builds" 2>/dev/null; do sleep 2; done
nd_log "tests built (exit $(cat "$ND_STATE/build.rc" 2>/dev/null || echo '?'); a failed build shows again below)"
nd_log "cargo test (unit and integration)"
# the soak test (tests/e2e_soak.rs, an hour or more) runs only when asked: ND_SOAK=1
[ "${ND_SOAK:-0}" = 1 ] || test_args+=(--skip soak_)
# every test target runs, so one failure does not hide the rest (the exit code still fails)
rc=0
cargo test --no-fail-fast "${cargo_args[@]}" -- --include-ignored --test-threads="${ND_TEST_THREADS:-2}" "${test_args[@]}" || rc=$?
# a short run of every fuzz target (devstack/fuzz.sh; the long runs are FUZZ_RUNS=10000000,
# its default): the decoders of hostile input must not crash on the seeds and what
# 20000 mutations of them reach (a crash fails the run)
if [ "$fuzz" = 1 ]; then
  wait "$builds" || true
  if [ "$(cat "$ND_STATE/fuzz-build.rc" 2>/dev/null)" != 0 ]; then
    tail -40 "$ND_STATE/fuzz-build.log" >&2
    nd_log "building the fuzz targets failed"
    rc=1
  fi
  nd_log "fuzzing (devstack/fuzz.sh, FUZZ_RUNS=${ND_FUZZ_RUNS:-20000} per target)"
  FUZZ_RUNS=${ND_FUZZ_RUNS:-20000} FUZZ_MAX_TIME=${ND_FUZZ_MAX_TIME:-60} "$TOP/devstack/fuzz.sh" || rc=1
fi
# no password, transport URL credential or Keystone token in any log of the run
nd_log "looking for secrets in the logs of the run"
"$ND_VENV/bin/python" "$TOP/devstack/files/check_secrets.py" "$ND_PASSWORDS" "$NOVA_DOCKER_TEST_TRANSPORT_URL" "$ND_STATE" || rc=1
exit $rc
