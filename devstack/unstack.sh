#!/usr/bin/env bash
# Stops what devstack/stack.sh started: nova-docker-compute, Horizon, the
# container registry, Heat, the Nova services,
# glance, placement, Neutron, OVN (northd, its databases, ovn-controller),
# Keystone, MariaDB, and the nd-outside namespace. RabbitMQ, Docker and Open
# vSwitch keep running (its bridges br-int and br-ex stay); the instances'
# containers too, as VMs outlive a stopped nova-compute.
#   ND_PURGE=1   also delete the state directory (databases, OVN databases,
#                Glance images, the registry's storage and CA, passwords)
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"
nd_stop nova-docker-compute
nd_horizon_down
nd_registry_down
nd_controlplane_down
if [ "${ND_PURGE:-0}" = 1 ]; then
  rm -rf "$ND_STATE"
  nd_log "removed $ND_STATE"
fi
nd_log "stopped"
