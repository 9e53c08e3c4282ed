#!/usr/bin/env bash
# The local all-in-one (README.rst "Run it"): on a fresh Debian machine, as root,
# brings up RabbitMQ, MariaDB, placement, glance, nova-api/conductor/scheduler
# (no Keystone), builds and starts nova-docker-compute as the compute host,
# uploads a busybox Docker image to Glance and boots a demo server.
#   ND_HOST        compute host name (default: this machine's hostname)
#   ND_STATE       state directory (default /tmp/nova-docker-stack)
#   ND_NO_DEMO=1   skip the demo server
# Stop it all with devstack/unstack.sh.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
ND_HOST=${ND_HOST:-$(hostname)}
mkdir -p "$ND_STATE"

nd_ensure_docker
nd_controlplane_up
nd_build_test_image busybox:latest

ND_BIN=${CARGO_TARGET_DIR:-$TOP/target}/release/nova-docker-compute
if [ ! -x "$ND_BIN" ] || [ -n "$(find "$TOP/src" "$TOP/Cargo.toml" -newer "$ND_BIN" -print -quit)" ]; then
  command -v cargo >/dev/null || nd_die "cargo not found: install a Rust toolchain first"
  nd_log "cargo build --release"
  (cd "$TOP" && cargo build --release --bin nova-docker-compute >"$ND_STATE/build.log" 2>&1) \
    || { tail -20 "$ND_STATE/build.log" >&2; nd_die "build failed"; }
fi
conf=$ND_ETC/nova/nova-compute-$ND_HOST.conf
nd_compute_conf "$ND_HOST" "$conf"
nd_start nova-docker-compute "$ND_BIN" --config-file "$conf"
nd_log "waiting for nova-docker-compute on host $ND_HOST to report"
end=$((SECONDS + ND_WAIT))
until curl -s -H "X-Auth-Token: $ND_TOKEN" "http://$ND_BIND:$ND_NOVA_API_PORT/v2.1/os-services?binary=nova-compute&host=$ND_HOST" \
      | grep -q '"state": "up"'; do
  [ $SECONDS -lt $end ] || nd_die "nova-docker-compute did not come up (see $ND_RUN/nova-docker-compute.log)"
  nd_alive nova-docker-compute || nd_die "nova-docker-compute died (see $ND_RUN/nova-docker-compute.log)"
  sleep 1
done
until curl -s -H "X-Auth-Token: $ND_TOKEN" "http://$ND_BIND:$ND_PLACEMENT_PORT/resource_providers?name=$ND_HOST" | grep -q '"uuid"'; do
  [ $SECONDS -lt $end ] || nd_die "no resource provider for $ND_HOST in placement"
  sleep 1
done
nd_nova_manage cell_v2 discover_hosts >>"$ND_RUN/discover-hosts.log" 2>&1 || nd_die "discover_hosts failed"

api() { # METHOD URL [curl args...]: an authenticated JSON call
  local m=$1 u=$2; shift 2
  curl -sf -X "$m" -H "X-Auth-Token: $ND_TOKEN" -H 'Content-Type: application/json' \
    -H 'OpenStack-API-Version: compute 2.95' "$u" "$@"
}
NOVA=http://$ND_BIND:$ND_NOVA_API_PORT/v2.1 GLANCE=http://$ND_BIND:$ND_GLANCE_PORT
image_id=$(api GET "$GLANCE/v2/images?name=busybox" | "$ND_VENV/bin/python" -c 'import json,sys; i=json.load(sys.stdin)["images"]; print(i[0]["id"] if i else "")')
if [ -z "$image_id" ]; then
  nd_log "uploading busybox to Glance (docker save, container_format docker)"
  image_id=$(api POST "$GLANCE/v2/images" -d '{"name": "busybox", "container_format": "docker", "disk_format": "raw", "visibility": "public"}' \
    | "$ND_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  docker save busybox:latest | curl -sf -X PUT -H "X-Auth-Token: $ND_TOKEN" \
    -H 'Content-Type: application/octet-stream' -T - "$GLANCE/v2/images/$image_id/file" \
    || nd_die "image upload failed"
fi
api GET "$NOVA/flavors/nd.tiny" >/dev/null 2>&1 || \
  api POST "$NOVA/flavors" -d '{"flavor": {"name": "nd.tiny", "id": "nd.tiny", "ram": 128, "vcpus": 1, "disk": 1}}' >/dev/null \
  || nd_die "flavor create failed"
if [ "${ND_NO_DEMO:-0}" != 1 ]; then
  sid=$(api GET "$NOVA/servers?name=^demo$" | "$ND_VENV/bin/python" -c 'import json,sys; s=json.load(sys.stdin)["servers"]; print(s[0]["id"] if s else "")')
  if [ -z "$sid" ]; then
    nd_log "booting server 'demo'"
    sid=$(api POST "$NOVA/servers" -d "{\"server\": {\"name\": \"demo\", \"imageRef\": \"$image_id\", \"flavorRef\": \"nd.tiny\", \"networks\": \"none\", \"availability_zone\": \"nova:$ND_HOST\"}}" \
      | "$ND_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["server"]["id"])')
  fi
  end=$((SECONDS + ND_WAIT)) st=
  while [ $SECONDS -lt $end ]; do
    st=$(api GET "$NOVA/servers/$sid" | "$ND_VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["server"]["status"])')
    [ "$st" = ACTIVE ] || [ "$st" = ERROR ] && break
    sleep 1
  done
  nd_log "server demo ($sid): $st; container: $(docker ps --filter name=nova-$sid --format '{{.Names}} {{.Status}}')"
  [ "$st" = ACTIVE ] || nd_die "demo server is $st"
fi
nd_log "ready: source $ND_STATE/openrc for the openstack CLI (compute service/hypervisor/flavor commands), or use the REST API"
