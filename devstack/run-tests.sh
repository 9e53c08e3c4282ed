#!/usr/bin/env bash
# The project's test command (README.rst "Test it"): sets up on a fresh Debian
# machine everything the tests need (RabbitMQ, Docker, Open vSwitch, a venv with
# the Python OpenStack peers, Glance, the Nova control plane, a local busybox
# image), then runs every test, unit and integration, against the real services.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
mkdir -p "$ND_STATE"

nd_apt_install ca-certificates curl iproute2 iptables procps util-linux gcc pkg-config
nd_ensure_docker
nd_ensure_rabbitmq
nd_ensure_venv
nd_build_test_image "$ND_TEST_IMAGE"
nd_controlplane_up
for extra in "$TOP"/devstack/lib/test-setup-*.sh; do
  [ -e "$extra" ] && source "$extra"
done

export NOVA_DOCKER_TEST_PYTHON="$ND_VENV/bin/python"
export NOVA_DOCKER_TEST_TRANSPORT_URL=${NOVA_DOCKER_TEST_TRANSPORT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
export NOVA_DOCKER_TEST_IMAGE="$ND_TEST_IMAGE"
# the Glance that Nova uses (the image tests may run their own, exported above)
export NOVA_DOCKER_E2E_GLANCE_URL="http://$ND_BIND:$ND_GLANCE_PORT"
export NOVA_DOCKER_E2E_STATE="$ND_STATE" NOVA_DOCKER_E2E_VENV="$ND_VENV" NOVA_DOCKER_E2E_TOKEN="$ND_TOKEN"
export NOVA_DOCKER_E2E_NOVA_URL="http://$ND_BIND:$ND_NOVA_API_PORT/v2.1"
export NOVA_DOCKER_E2E_PLACEMENT_URL="http://$ND_BIND:$ND_PLACEMENT_PORT"
command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain (rustup) first"
cd "$TOP"
nd_log "cargo test (unit and integration)"
# Integration tests are #[ignore]d so a bare `cargo test` needs no services.
cargo test --all-targets -- --include-ignored --test-threads="${ND_TEST_THREADS:-2}" "$@"
