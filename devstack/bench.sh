#!/usr/bin/env bash
# The performance budgets of nova-docker-compute, against baselines measured in the
# same run (benches/nova_stack.rs): boot time against Python nova-compute with the fake
# driver, RSS idle and with 200 instances, 100 at once against raw Docker.
#
# Brings up (or reuses) the local control plane, builds our daemon in release, starts
#   bench-fake    Python nova-compute, compute_driver = fake.FakeDriverWithoutFakeNodes
#   bench-docker  nova-docker-compute (release), allocation ratios raised so that 200
#                 small instances fit in placement on a small host
# runs the bench, and stops both computes on exit (the control plane stays up).
# Env: BENCH_BOOTS (10), BENCH_BATCH (100), BENCH_POLL_MS (50).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
mkdir -p "$ND_STATE"

FAKE_HOST=${BENCH_FAKE_HOST:-bench-fake}
OUR_HOST=${BENCH_HOST:-bench-docker}

nd_ensure_docker
nd_build_test_image "$ND_TEST_IMAGE"
nd_controlplane_up
command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain (rustup) first"
cd "$TOP"

nd_log "building nova-docker-compute (release) and the bench"
cargo build --release --bin nova-docker-compute
cargo bench --bench nova_stack --no-run
TARGET=${CARGO_TARGET_DIR:-$TOP/target}

# Python nova-compute with the fake driver: the lab's compute config, driver swapped.
FAKE_CONF=$ND_ETC/nova/nova-compute-$FAKE_HOST.conf
nd_compute_conf "$FAKE_HOST" "$FAKE_CONF"
sed -i -e 's/^compute_driver = .*/compute_driver = fake.FakeDriverWithoutFakeNodes/' \
  -e "/^host = /a instances_path = $ND_DATA/compute-$FAKE_HOST/instances" "$FAKE_CONF"
mkdir -p "$ND_DATA/compute-$FAKE_HOST/lock"
printf '%s\n' "[oslo_concurrency]" "lock_path = $ND_DATA/compute-$FAKE_HOST/lock" >>"$FAKE_CONF"

# Ours: 200 instances of 1 vCPU / 64 MB must fit in placement on a 2-core host.
OUR_CONF=$ND_ETC/nova/nova-compute-$OUR_HOST.conf
nd_compute_conf "$OUR_HOST" "$OUR_CONF"
sed -i -e '/^host = /a cpu_allocation_ratio = 200\nram_allocation_ratio = 4' "$OUR_CONF"

PY_PID= OUR_PID=
stop_computes() {
  local p
  for p in $OUR_PID $PY_PID; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in $OUR_PID $PY_PID; do
    for _ in $(seq 1 120); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap stop_computes EXIT

export PYTHONPATH="$_ND_FILES${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
"$ND_VENV/bin/nova-compute" --config-file "$FAKE_CONF" >"$ND_RUN/bench-$FAKE_HOST.log" 2>&1 </dev/null &
PY_PID=$!
"$TARGET/release/nova-docker-compute" --config-file "$OUR_CONF" >"$ND_RUN/bench-$OUR_HOST.log" 2>&1 </dev/null &
OUR_PID=$!

# up in os-services and a resource provider in placement, for both
registered() { # host
  local s r token
  token=$(nd_token admin)
  s=$(curl -s -m 10 -H "X-Auth-Token: $token" \
    "http://$ND_BIND:$ND_NOVA_API_PORT/v2.1/os-services?binary=nova-compute&host=$1")
  r=$(curl -s -m 10 -H "X-Auth-Token: $token" -H "OpenStack-API-Version: placement 1.39" \
    "http://$ND_BIND:$ND_PLACEMENT_PORT/resource_providers?name=$1")
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); r=json.loads(sys.argv[2]);
sys.exit(0 if s["services"] and s["services"][0]["state"]=="up" and r["resource_providers"] else 1)' "$s" "$r" 2>/dev/null
}
end=$((SECONDS + 180))
for h in "$FAKE_HOST" "$OUR_HOST"; do
  until registered "$h"; do
    kill -0 "$PY_PID" 2>/dev/null || nd_die "nova-compute ($FAKE_HOST) died; see $ND_RUN/bench-$FAKE_HOST.log"
    kill -0 "$OUR_PID" 2>/dev/null || nd_die "nova-docker-compute ($OUR_HOST) died; see $ND_RUN/bench-$OUR_HOST.log"
    [ $SECONDS -lt $end ] || nd_die "$h did not register within 180 s"
    sleep 0.5
  done
done
nd_nova_manage cell_v2 discover_hosts >/dev/null 2>&1 || nd_die "discover_hosts failed"
nd_log "both computes up (python pid $PY_PID, ours pid $OUR_PID); running the bench"
sleep 5 # let the first periodic tasks settle before the idle RSS

export NOVA_DOCKER_TEST_IMAGE="$ND_TEST_IMAGE"
nd_export_lab_env
export NOVA_DOCKER_BENCH_PID=$OUR_PID NOVA_DOCKER_BENCH_PYTHON_PID=$PY_PID
export NOVA_DOCKER_BENCH_FAKE_HOST=$FAKE_HOST NOVA_DOCKER_BENCH_HOST=$OUR_HOST
cargo bench --bench nova_stack
