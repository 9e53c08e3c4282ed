# Shared shell functions of the nova-docker scripts (sourced, not run).
# Everything here is idempotent: it installs what a fresh Debian machine lacks and
# starts what is not running, and reuses what is already there.

ND_VENV=${ND_VENV:-/opt/nova-docker-venv}
ND_STATE=${ND_STATE:-/tmp/nova-docker-stack}
ND_TEST_IMAGE=${ND_TEST_IMAGE:-nova-docker-test/busybox:latest}
ND_WAIT=${ND_WAIT:-120}
# Python peers, pinned to the releases the project is tested with. neutron
# 29.0.0's wheel forgets pyroute2; uWSGI comes from PyPI (Debian's plugin is built
# for Debian's Python, not the one the venv may be made from).
ND_PIP_PINS=(oslo.messaging==18.3.1 nova==34.0.0 glance==33.0.0 openstack-placement==16.0.0
             keystone==30.0.0 neutron==29.0.0 keystonemiddleware==13.0.1 pyroute2==0.9.7
             uwsgi==2.0.31 python-openstackclient==10.5.0 gunicorn==27.0.1 PyMySQL==1.2.4)

_ND_T0=${EPOCHREALTIME:-0}
nd_log() { printf '[nova-docker %6.1fs] %s\n' "$(awk "BEGIN{print ${EPOCHREALTIME:-0} - $_ND_T0}")" "$*" >&2; }
nd_die() { nd_log "FATAL: $*"; exit 1; }

_ND_APT_UPDATED=0
# apt_install PKG...: install the Debian packages that are missing.
nd_apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  mkdir -p "$ND_STATE"
  if [ "$_ND_APT_UPDATED" = 0 ]; then
    nd_log "apt-get update"
    apt-get update -q >>"$ND_STATE/apt.log" 2>&1 || nd_die "apt-get update failed (see $ND_STATE/apt.log)"
    _ND_APT_UPDATED=1
  fi
  nd_log "apt-get install ${missing[*]}"
  # services are started by these scripts, not by the package's maintainer scripts
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >>"$ND_STATE/apt.log" 2>&1 || nd_die "apt-get install ${missing[*]} failed (see $ND_STATE/apt.log)"
}

# A running RabbitMQ on 127.0.0.1:5672 with the guest user.
nd_ensure_rabbitmq() {
  if rabbitmqctl -q status >/dev/null 2>&1; then return 0; fi
  nd_apt_install rabbitmq-server
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    nd_log "starting rabbitmq-server"
    (rabbitmq-server -detached >/dev/null 2>&1 || true)
    local end=$((SECONDS + ND_WAIT))
    until rabbitmqctl -q await_startup >/dev/null 2>&1; do
      [ $SECONDS -lt $end ] || nd_die "rabbitmq did not start within ${ND_WAIT}s"
      sleep 1
    done
  fi
  nd_log "rabbitmq is up"
}

# A Docker engine that answers; reuses a running one, else installs docker.io.
nd_ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  nd_apt_install docker.io
  if ! docker info >/dev/null 2>&1; then
    nd_log "starting dockerd"
    if command -v systemctl >/dev/null 2>&1 && systemctl start docker >/dev/null 2>&1; then :; else
      mkdir -p "$ND_STATE"
      setsid dockerd >>"$ND_STATE/dockerd.log" 2>&1 </dev/null &
    fi
    local end=$((SECONDS + ND_WAIT))
    until docker info >/dev/null 2>&1; do
      [ $SECONDS -lt $end ] || nd_die "dockerd did not answer within ${ND_WAIT}s"
      sleep 1
    done
  fi
  nd_log "docker engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
}

# The Python venv with the OpenStack peers.
nd_ensure_venv() {
  # the stamp names the pins last installed: a changed pin list installs again
  if [ -x "$ND_VENV/bin/python" ] && [ "$(cat "$ND_VENV/.nd-pins" 2>/dev/null)" = "${ND_PIP_PINS[*]}" ] \
     && "$ND_VENV/bin/python" -c 'import oslo_messaging, nova, glance, placement, keystone, neutron, keystonemiddleware, pyroute2' 2>/dev/null; then
    return 0
  fi
  nd_apt_install python3-venv python3-dev gcc libffi-dev curl
  local py=python3
  command -v python3 >/dev/null || nd_die "python3 not found"
  nd_log "creating venv $ND_VENV with ${ND_PIP_PINS[*]}"
  [ -x "$ND_VENV/bin/python" ] || "$py" -m venv "$ND_VENV" || nd_die "python3 -m venv failed"
  "$ND_VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  "$ND_VENV/bin/pip" install -q "${ND_PIP_PINS[@]}" >>"$ND_STATE/pip.log" 2>&1 \
    || { tail -20 "$ND_STATE/pip.log" >&2; nd_die "pip install failed (see $ND_STATE/pip.log)"; }
  echo "${ND_PIP_PINS[*]}" >"$ND_VENV/.nd-pins"
}

# nd_build_test_image [TAG]: a busybox image from Debian's busybox-static (no registry).
# Its default command prints a line and stays running until SIGTERM.
nd_build_test_image() {
  local tag=${1:-$ND_TEST_IMAGE}
  if docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
  nd_apt_install busybox-static
  local bb=/bin/busybox root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/proc" "$root/sys" "$root/dev"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/bin/sh", "-c", "echo started on $(hostname); trap \"exit 0\" TERM; while true; do sleep 1; done"]' \
    - "$tag" >/dev/null || nd_die "docker import of the test image failed"
  rm -rf "$root"
  nd_log "built test image $tag"
}

# A running Open vSwitch (ovsdb-server, ovs-vswitchd), reused when it answers.
nd_ensure_ovs() {
  if ovs-vsctl --timeout=5 show >/dev/null 2>&1; then return 0; fi
  nd_apt_install openvswitch-switch
  nd_log "starting Open vSwitch (ovsdb-server, ovs-vswitchd)"
  mkdir -p "$ND_STATE"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >>"$ND_STATE/ovs.log" 2>&1 \
    || { tail -20 "$ND_STATE/ovs.log" >&2; nd_die "ovs-ctl start failed (see $ND_STATE/ovs.log)"; }
  local end=$((SECONDS + ND_WAIT))
  until ovs-vsctl --timeout=5 show >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || nd_die "Open vSwitch did not answer within ${ND_WAIT}s"
    sleep 1
  done
}

# The OVS datapath type this kernel can run: `system` with the openvswitch
# module, else the userspace `netdev` datapath (containers, some CI kernels).
nd_ovs_datapath() {
  if [ -n "${ND_OVS_DATAPATH:-}" ]; then echo "$ND_OVS_DATAPATH"; return; fi
  if [ -d /sys/module/openvswitch ] || modprobe openvswitch >/dev/null 2>&1; then
    echo system
  else
    echo netdev
  fi
}
