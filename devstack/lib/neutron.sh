# Neutron of the local all-in-one (sourced by controlplane.sh): neutron 29 from
# the venv with ML2/OVN on Debian's OVN (ovn-central, ovn-host) and the host's
# Open vSwitch, with the kernel datapath where the openvswitch module exists and
# the userspace (netdev) one elsewhere. neutron-api runs under uWSGI (one
# process), beside neutron-periodic-workers and neutron-ovn-maintenance-worker.
# The OVN chassis is this compute host: OVS external_ids:hostname = $ND_HOST,
# the binding:host_id Neutron binds ports for.
#
# The provider network "public" is flat on physnet public -> br-ex; the network
# namespace nd-outside holds its gateway 172.24.4.1/24 on a veth into br-ex, so
# floating IPs answer `ip netns exec nd-outside ping` and no lab traffic leaves
# loopback or namespaces.
# See /work/shared/docs/NEUTRON-LAB.md for the recipe this follows.

ND_NEUTRON_PORT=${ND_NEUTRON_PORT:-9696}
ND_NEUTRON_URL=http://$ND_BIND:$ND_NEUTRON_PORT
ND_OUTSIDE_NS=nd-outside
ND_PUBLIC_GATEWAY=172.24.4.1/24

nd_ovn_env() {
  export OVN_RUNDIR=$ND_STATE/ovn/run OVN_LOGDIR=$ND_STATE/ovn/log OVN_DBDIR=$ND_DATA/ovn
  mkdir -p "$OVN_RUNDIR" "$OVN_LOGDIR" "$OVN_DBDIR"
}
_ND_OVN_CTL=/usr/share/ovn/scripts/ovn-ctl

nd_ovn_up() {
  nd_apt_install ovn-central ovn-host ethtool iproute2 iputils-ping
  nd_ensure_ovs
  nd_ovn_env
  local dp
  dp=$(nd_ovs_datapath)
  if ! ovn-nbctl --db="unix:$OVN_RUNDIR/ovnnb_db.sock" --timeout=5 show >/dev/null 2>&1 \
     || ! ovn-sbctl --db="unix:$OVN_RUNDIR/ovnsb_db.sock" --timeout=5 show >/dev/null 2>&1; then
    nd_log "starting OVN northd and its databases"
    "$_ND_OVN_CTL" --db-nb-addr=127.0.0.1 --db-sb-addr=127.0.0.1 \
      --db-nb-create-insecure-remote=yes --db-sb-create-insecure-remote=yes \
      --ovn-northd-priority=0 start_northd >>"$ND_RUN/ovn.log" 2>&1 \
      || { tail -20 "$ND_RUN/ovn.log" >&2; nd_die "ovn-ctl start_northd failed (see $ND_RUN/ovn.log)"; }
  fi
  ovs-vsctl set open_vswitch . external_ids:system-id="$ND_HOST" external_ids:hostname="$ND_HOST" \
    external_ids:ovn-remote=tcp:127.0.0.1:6642 external_ids:ovn-encap-type=geneve \
    external_ids:ovn-encap-ip=127.0.0.1 external_ids:ovn-bridge=br-int \
    external_ids:ovn-bridge-datapath-type="$dp" external_ids:ovn-bridge-mappings=public:br-ex \
    external_ids:ovn-cms-options=enable-chassis-as-gw
  ovs-vsctl --may-exist add-br br-ex -- set bridge br-ex datapath_type="$dp"
  if ! "$_ND_OVN_CTL" status_controller >/dev/null 2>&1; then
    nd_log "starting ovn-controller (chassis $ND_HOST, datapath $dp)"
    "$_ND_OVN_CTL" --ovn-controller-priority=0 start_controller >>"$ND_RUN/ovn.log" 2>&1 \
      || { tail -20 "$ND_RUN/ovn.log" >&2; nd_die "ovn-ctl start_controller failed (see $ND_RUN/ovn.log)"; }
  fi
  local end=$((SECONDS + ND_WAIT))
  until ovs-vsctl --timeout=5 br-exists br-int && \
        ovn-sbctl --db="unix:$OVN_RUNDIR/ovnsb_db.sock" --timeout=5 --bare --columns=hostname find chassis \
          | grep -qx "$ND_HOST"; do
    [ $SECONDS -lt $end ] || nd_die "ovn-controller did not register chassis $ND_HOST (see $OVN_LOGDIR)"
    sleep 0.5
  done
  nd_outside_up
}

# The namespace nd-outside: the far side of the provider network public.
nd_outside_up() {
  local ns=$ND_OUTSIDE_NS
  ip netns list | grep -qw "^$ns" || ip netns add "$ns"
  if ! ip link show nd-out-br >/dev/null 2>&1; then
    ip netns exec "$ns" ip link del nd-out-ns >/dev/null 2>&1 || true
    ip link add nd-out-br type veth peer name nd-out-ns
    ip link set nd-out-ns netns "$ns"
  fi
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip addr replace "$ND_PUBLIC_GATEWAY" dev nd-out-ns
  ip netns exec "$ns" ip link set nd-out-ns up
  ip link set nd-out-br up
  ovs-vsctl --may-exist add-port br-ex nd-out-br
  # checksum offload off on both ends of a veth of the userspace datapath, or TCP
  # through it hangs (NEUTRON-LAB.md 6.6)
  if command -v ethtool >/dev/null; then
    ethtool -K nd-out-br rx off tx off >/dev/null 2>&1 || true
    ip netns exec "$ns" ethtool -K nd-out-ns rx off tx off >/dev/null 2>&1 || true
  fi
}

nd_outside_down() {
  ovs-vsctl --timeout=5 --if-exists del-port br-ex nd-out-br >/dev/null 2>&1 || true
  ip link del nd-out-br >/dev/null 2>&1 || true
  ip netns del "$ND_OUTSIDE_NS" >/dev/null 2>&1 || true
}

nd_ovn_down() {
  nd_ovn_env
  "$_ND_OVN_CTL" stop_controller >>"$ND_RUN/ovn.log" 2>&1 || true
  "$_ND_OVN_CTL" stop_northd >>"$ND_RUN/ovn.log" 2>&1 || true
}

nd_neutron_write_configs() {
  local etc=$ND_ETC/neutron
  mkdir -p "$etc/plugins/ml2" "$ND_DATA/neutron/lock"
  cp "$ND_VENV/etc/neutron/api-paste.ini" "$etc/api-paste.ini"
  {
    printf '%s\n' "[DEFAULT]" "core_plugin = ml2" "service_plugins = ovn-router" \
      "auth_strategy = keystone" "state_path = $ND_DATA/neutron" \
      "transport_url = $ND_TRANSPORT_URL" "api_workers = 1" "rpc_workers = 0" \
      "rpc_state_report_workers = 0" "dhcp_agent_notification = False" \
      "notify_nova_on_port_status_changes = True" "notify_nova_on_port_data_changes = True" \
      "[database]" "connection = $(nd_db_url neutron)" \
      "[oslo_concurrency]" "lock_path = $ND_DATA/neutron/lock" \
      "[oslo_messaging_notifications]" "driver = noop"
    nd_authtoken neutron
    # network-vif-plugged and friends go to nova as user nova (devstack's choice)
    nd_keystoneauth nova nova
    printf '%s\n' "interface = public"
    nd_keystoneauth placement placement
    printf '%s\n' "interface = public"
  } >"$etc/neutron.conf"
  printf '%s\n' "[ml2]" "type_drivers = geneve,flat" "tenant_network_types = geneve" \
    "mechanism_drivers = ovn" "extension_drivers = port_security" "overlay_ip_version = 4" \
    "[ml2_type_geneve]" "vni_ranges = 1:65536" "max_header_size = 38" \
    "[ml2_type_flat]" "flat_networks = public" \
    "[securitygroup]" "enable_security_group = True" \
    "[ovn]" "ovn_nb_connection = tcp:127.0.0.1:6641" "ovn_sb_connection = tcp:127.0.0.1:6642" \
    "ovn_l3_scheduler = leastloaded" "ovn_metadata_enabled = False" >"$etc/plugins/ml2/ml2_conf.ini"
  printf '%s\n' "[uwsgi]" "virtualenv = $ND_VENV" "module = neutron.wsgi.api:application" \
    "env = OS_NEUTRON_CONFIG_DIR=$etc" "env = OS_NEUTRON_CONFIG_FILES=neutron.conf;plugins/ml2/ml2_conf.ini" \
    "http-socket = $ND_BIND:$ND_NEUTRON_PORT" "master = true" "processes = 1" \
    "enable-threads = true" "lazy-apps = true" "thunder-lock = true" "die-on-term = true" \
    "exit-on-reload = false" "worker-reload-mercy = 10" "buffer-size = 65535" \
    "add-header = Connection: close" "start-time = %t" \
    "hook-master-start = unix_signal:15 gracefully_kill_them_all" \
    "procname-prefix = neutron-" >"$etc/neutron-api-uwsgi.ini"
}

nd_neutron_up() {
  local etc=$ND_ETC/neutron bin=$ND_VENV/bin
  nd_neutron_write_configs
  local cf=(--config-file "$etc/neutron.conf" --config-file "$etc/plugins/ml2/ml2_conf.ini")
  local files="$etc/neutron.conf $etc/plugins/ml2/ml2_conf.ini $etc/neutron-api-uwsgi.ini"
  "$bin/neutron-db-manage" "${cf[@]}" upgrade heads >"$ND_RUN/dbsync-neutron.log" 2>&1 \
    || { tail -20 "$ND_RUN/dbsync-neutron.log" >&2; nd_die "neutron-db-manage failed (see $ND_RUN/dbsync-neutron.log)"; }
  nd_start_with neutron-api "$files" "$bin/uwsgi" --ini "$etc/neutron-api-uwsgi.ini"
  nd_start_with neutron-periodic-workers "$files" "$bin/neutron-periodic-workers" "${cf[@]}"
  nd_start_with neutron-ovn-maintenance-worker "$files" "$bin/neutron-ovn-maintenance-worker" "${cf[@]}"
}
