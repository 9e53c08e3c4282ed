#!/usr/bin/env bash
# The project's test command (README.rst "Test it"): sets up on a fresh Debian
# machine everything the tests need (RabbitMQ, Docker, Open vSwitch, a venv with
# the Python OpenStack peers, Glance, the Nova control plane, a local busybox
# image), then runs every test, unit and integration, against the real services.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
mkdir -p "$ND_STATE"

nd_apt_install ca-certificates curl iproute2 iptables gcc pkg-config
nd_ensure_docker
nd_ensure_rabbitmq
nd_ensure_venv
nd_build_test_image "$ND_TEST_IMAGE"
for extra in "$TOP"/devstack/lib/test-setup-*.sh; do
  [ -e "$extra" ] && source "$extra"
done

export NOVA_DOCKER_TEST_PYTHON="$ND_VENV/bin/python"
export NOVA_DOCKER_TEST_TRANSPORT_URL=${NOVA_DOCKER_TEST_TRANSPORT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
export NOVA_DOCKER_TEST_IMAGE="$ND_TEST_IMAGE"
command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain (rustup) first"
cd "$TOP"
nd_log "cargo test (unit and integration)"
# Integration tests are #[ignore]d so a bare `cargo test` needs no services.
cargo test --all-targets -- --include-ignored --test-threads="${ND_TEST_THREADS:-2}" "$@"
