#!/usr/bin/env bash
# The performance budgets of nova-docker-compute, each against a baseline measured in
# the same run; ends with one table (figure | ours | baseline | ratio | goal |
# PASS/MISS) under a header line naming the machine (README.rst "Benchmarks").
#
# Brings up (or reuses) the local control plane, builds our daemon in release, and runs
#   boot      cargo bench --bench boot: our driver's work per boot against raw Docker
#             create+start (Docker only)
#   image_io  cargo bench --bench image_io: image load and snapshot upload against
#             `curl | docker load` and `docker save | curl -T` (the test Glance of
#             devstack/lib/test-setup-image.sh)
#   stack     benches/nova_stack.rs (main): start-up, boot time, 100 at once, RSS and
#             idle CPU, on two computes it starts itself:
#               bench-fake    Python nova-compute, compute_driver = fake.FakeDriverWithoutFakeNodes
#               bench-docker  nova-docker-compute (release), allocation ratios raised
#                             so that 200 small instances fit in placement on a small host
#   net       benches/nova_stack.rs (net): boots on network private. Ports bind only to
#             the OVN chassis' host name, so our daemon runs as the lab's host
#             ($ND_HOST): the lab's own nova-docker-compute is stopped for it and
#             started again, with the same command line, afterwards
#   registry  devstack/files/bench_registry.py: the first boot of a registry image
#             (BENCH_REGISTRY_MIB MiB of new content, from the lab registry) on the
#             lab's host against `docker pull` + `docker run` of it
# and stops every compute it started on exit (the control plane stays up).
#
# Env (counts; the defaults take about 37 minutes on the 2-core lab machine):
#   BENCH_PARTS        parts to run (default "boot image_io stack net registry")
#   BENCH_BOOTS        boots on each host, networks none (10)
#   BENCH_NET_BOOTS    boots on private (10)
#   BENCH_BATCH        servers in one request (100); the hosts then hold twice that
#   BENCH_IDLE_S       the idle window of the CPU figure, seconds (120)
#   BENCH_POLL_MS      poll interval of a server's status (50)
#   BENCH_BOOT_N / BENCH_BOOT_C     boot.rs' sequential / concurrent boots (20 / 50)
#   BENCH_IMAGE_ROUNDS / BENCH_IMAGE_MIB  image_io's rounds / image size (4 / 1024)
#   BENCH_REGISTRY_ROUNDS / BENCH_REGISTRY_MIB  registry's rounds / new content (3 / 200)
# Output and logs: $ND_STATE/bench/<date>/ (table.txt is the table).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
mkdir -p "$ND_STATE"

FAKE_HOST=${BENCH_FAKE_HOST:-bench-fake}
OUR_HOST=${BENCH_HOST:-bench-docker}
PARTS=" ${BENCH_PARTS:-boot image_io stack net registry} "
export BENCH_BOOTS=${BENCH_BOOTS:-10} BENCH_NET_BOOTS=${BENCH_NET_BOOTS:-10}
export BENCH_BATCH=${BENCH_BATCH:-100} BENCH_IDLE_S=${BENCH_IDLE_S:-120}
export BENCH_POLL_MS=${BENCH_POLL_MS:-50}
T0=$SECONDS

nd_ensure_docker
nd_build_test_image "$ND_TEST_IMAGE"
nd_controlplane_up
command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain (rustup) first"
cd "$TOP"

nd_log "building nova-docker-compute (release) and the benches"
cargo build --release --bin nova-docker-compute
cargo bench --no-run --bench nova_stack --bench boot --bench image_io
TARGET=${CARGO_TARGET_DIR:-$TOP/target}

OUT=$ND_STATE/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
: >"$OUT/results.tsv"
printf '%s | kernel %s | %s CPUs (%s) | %s RAM | Docker %s\n' "$(date '+%Y-%m-%d %H:%M %Z')" "$(uname -r)" \
  "$(nproc)" "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
  "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
  "$(docker version --format '{{.Server.Version}}' 2>/dev/null)" >"$OUT/header"
export NOVA_DOCKER_BENCH_RESULTS=$OUT/results.tsv
export NOVA_DOCKER_TEST_IMAGE="$ND_TEST_IMAGE"
nd_export_lab_env

# The computes of this bench: a start script each (it writes its pid, then execs
# the service with the log truncated), started by benches/nova_stack.rs.
BENCH_PIDS=("$ND_RUN/bench-$FAKE_HOST.pid" "$ND_RUN/bench-$OUR_HOST.pid" "$ND_RUN/bench-net.pid")
write_start() { # SCRIPT PIDFILE LOG CMD...
  local script=$1 pidf=$2 log=$3; shift 3
  {
    echo '#!/usr/bin/env bash'
    printf 'echo $$ >%q\n' "$pidf"
    printf 'exec'; printf ' %q' "$@"; printf ' >%q 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-\n' "$log"
  } >"$script"
}
stop_bench_computes() {
  local f p
  for f in "${BENCH_PIDS[@]}"; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    if grep -qa 'nova-compute\|nova-docker-compute' "/proc/$p/cmdline" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 240); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$p" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}
# the lab's own nova-docker-compute, stopped for the net part
LAB_CMD=()
restore_lab() {
  if [ ${#LAB_CMD[@]} -gt 0 ] && ! nd_alive nova-docker-compute; then
    nd_log "starting the lab's nova-docker-compute again: ${LAB_CMD[*]}"
    nd_start nova-docker-compute "${LAB_CMD[@]}"
  fi
  LAB_CMD=()
}
on_exit() {
  stop_bench_computes
  restore_lab
}
trap on_exit EXIT
stop_bench_computes # an interrupted run's

FAILED=()
run_part() { # NAME CMD...: run it, its output also in $OUT/NAME.out; a failure is noted
  local name=$1; shift
  nd_log "bench part $name"
  local t=$SECONDS
  if "$@" 2>&1 | tee "$OUT/$name.out"; then
    nd_log "bench part $name done in $((SECONDS - t)) s"
  else
    nd_log "bench part $name FAILED after $((SECONDS - t)) s (see $OUT/$name.out)"
    FAILED+=("$name")
  fi
}

if [[ $PARTS == *" boot "* ]]; then
  run_part boot env BOOT_N="${BENCH_BOOT_N:-20}" BOOT_C="${BENCH_BOOT_C:-50}" \
    cargo bench --bench boot
fi

if [[ $PARTS == *" image_io "* ]]; then
  # the image tests' Glance (no Keystone), started unless it runs
  source "$TOP/devstack/lib/test-setup-image.sh"
  run_part image_io env ND_BENCH_ROUNDS="${BENCH_IMAGE_ROUNDS:-4}" ND_BENCH_IMAGE_MIB="${BENCH_IMAGE_MIB:-1024}" \
    cargo bench --bench image_io
fi

if [[ $PARTS == *" stack "* ]]; then
  # Python nova-compute with the fake driver: the lab's compute config, driver swapped.
  FAKE_CONF=$ND_ETC/nova/nova-compute-$FAKE_HOST.conf
  nd_compute_conf "$FAKE_HOST" "$FAKE_CONF"
  sed -i -e 's/^compute_driver = .*/compute_driver = fake.FakeDriverWithoutFakeNodes/' \
    -e "/^host = /a instances_path = $ND_DATA/compute-$FAKE_HOST/instances" "$FAKE_CONF"
  mkdir -p "$ND_DATA/compute-$FAKE_HOST/lock"
  printf '%s\n' "[oslo_concurrency]" "lock_path = $ND_DATA/compute-$FAKE_HOST/lock" >>"$FAKE_CONF"
  # Ours: 200 instances of 1 vCPU / 64 MB must fit in placement on a 2-core host.
  OUR_CONF=$ND_ETC/nova/nova-compute-$OUR_HOST.conf
  ND_CPU_ALLOCATION_RATIO=200 nd_compute_conf "$OUR_HOST" "$OUR_CONF"
  sed -i -e '/^host = /a ram_allocation_ratio = 4' "$OUR_CONF"
  export PYTHONPATH="$_ND_FILES${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
  write_start "$OUT/start-$FAKE_HOST.sh" "$ND_RUN/bench-$FAKE_HOST.pid" "$ND_RUN/bench-$FAKE_HOST.log" \
    "$ND_VENV/bin/nova-compute" --config-file "$FAKE_CONF"
  write_start "$OUT/start-$OUR_HOST.sh" "$ND_RUN/bench-$OUR_HOST.pid" "$ND_RUN/bench-$OUR_HOST.log" \
    "$TARGET/release/nova-docker-compute" --config-file "$OUR_CONF"
  run_part stack env NOVA_DOCKER_BENCH_FAKE_HOST="$FAKE_HOST" NOVA_DOCKER_BENCH_HOST="$OUR_HOST" \
    NOVA_DOCKER_BENCH_PY_START="$OUT/start-$FAKE_HOST.sh" NOVA_DOCKER_BENCH_OUR_START="$OUT/start-$OUR_HOST.sh" \
    NOVA_DOCKER_BENCH_OUR_LOG="$ND_RUN/bench-$OUR_HOST.log" \
    cargo bench --bench nova_stack
  cp "$ND_RUN/bench-$FAKE_HOST.log" "$ND_RUN/bench-$OUR_HOST.log" "$OUT/" 2>/dev/null || true
  stop_bench_computes
fi

if [[ $PARTS == *" net "* ]]; then
  NET_CONF=$ND_ETC/nova/nova-compute-bench-net.conf
  nd_compute_conf "$ND_HOST" "$NET_CONF" # the lab host's config: its state_path, its node
  write_start "$OUT/start-net.sh" "$ND_RUN/bench-net.pid" "$ND_RUN/bench-net.log" \
    "$TARGET/release/nova-docker-compute" --config-file "$NET_CONF"
  if nd_alive nova-docker-compute; then
    mapfile -d '' LAB_CMD <"/proc/$(cat "$ND_RUN/nova-docker-compute.pid")/cmdline"
    nd_log "stopping the lab's nova-docker-compute ($ND_HOST) for the boots on private; it is started again afterwards"
    nd_stop nova-docker-compute
  fi
  run_part net env NOVA_DOCKER_BENCH_NET_HOST="$ND_HOST" NOVA_DOCKER_BENCH_NET_START="$OUT/start-net.sh" \
    NOVA_DOCKER_BENCH_NET_LOG="$ND_RUN/bench-net.log" \
    cargo bench --bench nova_stack -- net
  cp "$ND_RUN/bench-net.log" "$OUT/" 2>/dev/null || true
  stop_bench_computes
  restore_lab
fi

if [[ $PARTS == *" registry "* ]]; then
  # the lab's registry, and the lab's compute host with its nova.conf of now (which
  # names the registry; nd_start_with restarts it if that changed)
  nd_registry_up busybox:latest
  nd_export_lab_env
  LAB_CONF=$ND_ETC/nova/nova-compute-$ND_HOST.conf
  nd_compute_conf "$ND_HOST" "$LAB_CONF"
  nd_start_with nova-docker-compute "$LAB_CONF" "$TARGET/release/nova-docker-compute" --config-file "$LAB_CONF"
  run_part registry env NOVA_DOCKER_BENCH_REGISTRY_HOST="$ND_HOST" BENCH_REGISTRY_ROUNDS="${BENCH_REGISTRY_ROUNDS:-3}" \
    BENCH_REGISTRY_MIB="${BENCH_REGISTRY_MIB:-200}" NOVA_DOCKER_TEST_IMAGE=busybox:latest \
    "$ND_VENV/bin/python" "$_ND_FILES/bench_registry.py"
fi

echo "${FAILED[*]}" >"$OUT/failed"
nd_log "bench done in $(((SECONDS - T0) / 60)) min $(((SECONDS - T0) % 60)) s; output in $OUT"
python3 "$TOP/devstack/files/bench_report.py" "$OUT" | tee "$OUT/table.txt"
[ ${#FAILED[@]} -eq 0 ] || nd_die "parts that failed: ${FAILED[*]}"
