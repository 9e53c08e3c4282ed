#!/usr/bin/env bash
# The local all-in-one (README.rst "Run it"): on a fresh Debian machine, as root,
# brings up a small cloud - RabbitMQ, MariaDB, Keystone, Neutron with ML2/OVN,
# placement, glance, nova-api/conductor/scheduler, Heat - builds and starts
# nova-docker-compute as the compute host, uploads a busybox Docker image to
# Glance, runs the lab's container registry (TLS, basic auth; devstack/lib/registry.sh)
# with that image pushed as lab/busybox and registered in Glance as image
# busybox-registry, makes flavor m1.tiny, boots a demo server as user demo,
# and starts Horizon (its URL is the last line it logs).
#   ND_HOST              compute host name (default: this machine's hostname)
#   ND_STATE             state directory (default /tmp/nova-docker-stack)
#   ND_NO_DEMO=1         skip the demo server
#   ND_DEMO_NETWORK      the demo server's network (default private; none: no network)
#   ND_TOKEN_EXPIRATION  Keystone's token lifetime in seconds (default 3600)
#   ND_REGISTRY_PORT     the registry's port on ND_BIND (default 5443)
# Stop it all with devstack/unstack.sh.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
mkdir -p "$ND_STATE"

nd_ensure_docker
nd_controlplane_up
nd_build_test_image busybox:latest
# before the compute host's nova.conf: it names the registry's credentials and CA
nd_registry_up busybox:latest

ND_BIN=${CARGO_TARGET_DIR:-$TOP/target}/release/nova-docker-compute
if [ ! -x "$ND_BIN" ] || [ -n "$(find "$TOP/src" "$TOP/Cargo.toml" -newer "$ND_BIN" -print -quit)" ]; then
  command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain first"
  nd_log "cargo build --release"
  (cd "$TOP" && cargo build --release --bin nova-docker-compute >"$ND_STATE/build.log" 2>&1) \
    || { tail -20 "$ND_STATE/build.log" >&2; nd_die "build failed"; }
  nd_stop nova-docker-compute   # a new binary: restart it
fi
conf=$ND_ETC/nova/nova-compute-$ND_HOST.conf
nd_compute_conf "$ND_HOST" "$conf"
nd_start_with nova-docker-compute "$conf" "$ND_BIN" --config-file "$conf"
nd_log "waiting for nova-docker-compute on host $ND_HOST to report"
token=$(nd_token admin)
end=$((SECONDS + ND_WAIT))
until curl -s -H "X-Auth-Token: $token" "$ND_NOVA_URL/os-services?binary=nova-compute&host=$ND_HOST" \
      | grep -q '"state": "up"'; do
  [ $SECONDS -lt $end ] || nd_die "nova-docker-compute did not come up (see $ND_RUN/nova-docker-compute.log)"
  nd_alive nova-docker-compute || nd_die "nova-docker-compute died (see $ND_RUN/nova-docker-compute.log)"
  sleep 1
done
until curl -s -H "X-Auth-Token: $token" "$ND_PLACEMENT_URL/resource_providers?name=$ND_HOST" | grep -q '"uuid"'; do
  [ $SECONDS -lt $end ] || nd_die "no resource provider for $ND_HOST in placement"
  sleep 1
done
nd_nova_manage cell_v2 discover_hosts >>"$ND_RUN/discover-hosts.log" 2>&1 || nd_die "discover_hosts failed"

nd_seed busybox:latest
nd_registry_seed
if [ "${ND_NO_DEMO:-0}" != 1 ]; then
  demo=$("$ND_VENV/bin/python" "$_ND_FILES/lab.py" demo demo "${ND_DEMO_NETWORK:-private}" 2>>"$ND_RUN/lab-setup.log") \
    || nd_die "demo server: $demo (see $ND_RUN/lab-setup.log)"
  sid=$(echo "$demo" | "$ND_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  nd_log "server demo: $(echo "$demo" | "$ND_VENV/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(d["status"] + ", " + d["addresses"])')"
  nd_log "container: $(docker ps --filter "name=nova-$sid" --format '{{.Names}} {{.Status}}')"
fi
nd_horizon_up
nd_log "ready. The openstack CLI as user demo: source $ND_STATE/openrc (as admin: source $ND_STATE/openrc-admin)"
nd_horizon_banner
echo "$ND_STATE/openrc"
