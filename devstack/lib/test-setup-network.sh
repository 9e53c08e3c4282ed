# Test set-up of the networking tests (tests/network_*.rs), sourced by
# devstack/run-tests.sh: iproute2 (ip, bridge), Open vSwitch running, and the
# datapath type the OVS tests must use on this kernel.

nd_apt_install iproute2 openvswitch-switch
nd_ensure_ovs

# Without the openvswitch kernel module (containers, some CI kernels) only the
# userspace datapath works.
NOVA_DOCKER_TEST_OVS_DATAPATH=${NOVA_DOCKER_TEST_OVS_DATAPATH:-$(nd_ovs_datapath)}
export NOVA_DOCKER_TEST_OVS_DATAPATH
nd_log "Open vSwitch $(ovs-vsctl --version | head -1 | awk '{print $NF}'), datapath type for the tests: $NOVA_DOCKER_TEST_OVS_DATAPATH"

# The tests' Linux bridges are named nd*. With br_netfilter loaded, bridged frames
# go through iptables FORWARD, whose policy Docker sets to DROP: let frames that
# stay on one of these test bridges through (what a Neutron L2 agent's firewall
# driver does for its bridges). The tests add the same rule when run by hand.
for ipt in iptables ip6tables; do
  command -v $ipt >/dev/null || continue
  $ipt -w -C FORWARD -i 'nd+' -o 'nd+' -j ACCEPT 2>/dev/null \
    || $ipt -w -I FORWARD -i 'nd+' -o 'nd+' -j ACCEPT 2>/dev/null || true
done
