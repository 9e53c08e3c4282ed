# The control plane of the local all-in-one (sourced): Keystone (lib/keystone.sh),
# Neutron with ML2/OVN (lib/neutron.sh), placement, glance-api, nova-api
# (gunicorn), nova-conductor, nova-scheduler, nova-serialproxy, all behind keystonemiddleware, a
# private MariaDB and RabbitMQ; all state under $ND_STATE, every process group's
# pid in $ND_STATE/run/<name>.pid. Needs devstack/lib/functions.sh sourced first.

ND_BIND=${ND_BIND:-127.0.0.1}
ND_DB_PORT=${ND_DB_PORT:-3306}
ND_PLACEMENT_PORT=${ND_PLACEMENT_PORT:-8778}
ND_GLANCE_PORT=${ND_GLANCE_PORT:-9292}
ND_NOVA_API_PORT=${ND_NOVA_API_PORT:-8774}
ND_SERIALPROXY_PORT=${ND_SERIALPROXY_PORT:-6083}
ND_HOST=${ND_HOST:-$(hostname)}
ND_TRANSPORT_URL=${ND_TRANSPORT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
_ND_FILES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../files" && pwd)
ND_RUN=$ND_STATE/run
ND_ETC=$ND_STATE/etc
ND_DATA=$ND_STATE/data
ND_NOVA_URL=http://$ND_BIND:$ND_NOVA_API_PORT/v2.1
ND_PLACEMENT_URL=http://$ND_BIND:$ND_PLACEMENT_PORT
ND_GLANCE_URL=http://$ND_BIND:$ND_GLANCE_PORT
_ND_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$_ND_LIB/keystone.sh"
source "$_ND_LIB/neutron.sh"
source "$_ND_LIB/heat.sh"
source "$_ND_LIB/horizon.sh"
source "$_ND_LIB/registry.sh"
# what devstack/files/lab.py reads
export ND_AUTH_URL ND_PASSWORDS ND_NOVA_URL ND_PLACEMENT_URL ND_GLANCE_URL ND_NEUTRON_URL ND_WAIT

nd_alive() { [ -f "$ND_RUN/$1.pid" ] && kill -0 "$(cat "$ND_RUN/$1.pid")" 2>/dev/null; }

# nd_start NAME CMD...: start CMD in its own process group unless NAME runs.
nd_start() {
  local name=$1; shift
  nd_alive "$name" && return 0
  mkdir -p "$ND_RUN"
  echo "==== $(date -Is) $*" >>"$ND_RUN/$name.log"
  # what starts it again as it was (the fault tests stop and restart services;
  # their /proc cmdline is rewritten by setproctitle): argv and environment,
  # NUL-separated, readable by root only
  (umask 077; printf '%s\0' "$@" >"$ND_RUN/$name.argv"; env -0 >"$ND_RUN/$name.environ")
  # no descriptor of the caller's but the log (a lock held by the caller, say,
  # would otherwise be held by the service for as long as it runs)
  # run from the state dir, not the checkout: a service must outlive the
  # checkout it was started from (Horizon fails once its cwd is deleted)
  (cd "$ND_RUN" && exec setsid "$@" >>"$ND_RUN/$name.log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-) &
  echo $! >"$ND_RUN/$name.pid"
}

# nd_start_with NAME "CONFIG FILES" CMD...: nd_start, but a running NAME whose
# config files (or command) changed since it was started is restarted first.
nd_start_with() {
  local name=$1 files=$2 sum; shift 2
  # shellcheck disable=SC2086
  sum=$( (cat $files; echo "$*") 2>/dev/null | sha256sum | cut -c1-16)
  if nd_alive "$name" && [ "$(cat "$ND_RUN/$name.confsum" 2>/dev/null)" != "$sum" ]; then
    nd_log "$name: configuration changed, restarting it"
    nd_stop "$name"
  fi
  nd_start "$name" "$@"
  echo "$sum" >"$ND_RUN/$name.confsum"
}

# nd_stop NAME: SIGTERM the process group, SIGKILL after 30 s.
nd_stop() {
  local name=$1 pid
  [ -f "$ND_RUN/$name.pid" ] || return 0
  pid=$(cat "$ND_RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$ND_RUN/$name.pid"
}

nd_wait_http() { # name url
  local end=$((SECONDS + ND_WAIT))
  until curl -s -o /dev/null -m 5 "$2"; do
    [ $SECONDS -lt $end ] || nd_die "$1 did not answer at $2 within ${ND_WAIT}s (see $ND_RUN/$1.log)"
    nd_alive "$1" || nd_die "$1 died (see $ND_RUN/$1.log)"
    sleep 0.3
  done
}

nd_db_url() { echo "mysql+pymysql://nova_docker:nova_docker@127.0.0.1:$ND_DB_PORT/$1?charset=utf8"; }

# A private mariadbd (not the distro's service) with the databases we need.
nd_ensure_mariadb() {
  command -v mariadbd >/dev/null || nd_apt_install mariadb-server
  if [ -d /run/systemd/system ] && systemctl is-active --quiet mariadb 2>/dev/null; then
    systemctl disable --now mariadb >/dev/null 2>&1 || true
  fi
  local datadir=$ND_DATA/mysql sockdir=$ND_DATA/mysqlrun
  mkdir -p "$datadir" "$sockdir"
  chown mysql:mysql "$datadir" "$sockdir"
  if [ ! -d "$datadir/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$datadir" --skip-test-db \
      >"$ND_STATE/mariadb-install.log" 2>&1 || nd_die "mariadb-install-db failed"
  fi
  nd_start mariadb mariadbd --no-defaults --user=mysql --datadir="$datadir" \
    --socket="$sockdir/mysqld.sock" --pid-file="$sockdir/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$ND_DB_PORT" --skip-name-resolve \
    --innodb-buffer-pool-size=64M --max-connections=1000 \
    --character-set-server=utf8mb3 --collation-server=utf8mb3_general_ci
  local end=$((SECONDS + ND_WAIT))
  until mysqladmin --no-defaults --socket="$sockdir/mysqld.sock" ping >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || nd_die "mariadb did not start (see $ND_RUN/mariadb.log)"
    nd_alive mariadb || nd_die "mariadb died (see $ND_RUN/mariadb.log)"
    sleep 0.3
  done
  local sql="CREATE USER IF NOT EXISTS 'nova_docker'@'127.0.0.1' IDENTIFIED BY 'nova_docker';"
  for d in nova_api nova nova_cell0 placement glance keystone neutron; do
    sql+=" CREATE DATABASE IF NOT EXISTS $d CHARACTER SET utf8mb3; GRANT ALL ON $d.* TO 'nova_docker'@'127.0.0.1';"
  done
  mysql --no-defaults --socket="$sockdir/mysqld.sock" -u root -e "$sql" || nd_die "database set-up failed"
}

# The client sections of nova.conf, the same for every Nova service of the lab
# and for a compute host, as devstack writes them (lib/nova, lib/neutron): user
# nova for placement, neutron and the service token; Glance from the catalog.
nd_client_sections() {
  nd_keystoneauth placement nova
  printf '%s\n' "valid_interfaces = public"
  nd_keystoneauth neutron nova
  # a connection Neutron's single worker dropped is tried again (keystoneauth
  # does not retry a ConnectFailure by default: one made a server GET fail)
  printf '%s\n' "valid_interfaces = public" "connect_retries = 3" "connect_retry_delay = 0.5"
  printf '%s\n' "[glance]" "region_name = RegionOne" "valid_interfaces = public"
  nd_keystoneauth service_user nova
  printf '%s\n' "send_service_user_token = True"
  printf '%s\n' "[oslo_messaging_notifications]" "driver = noop" \
    "[vnc]" "enabled = False" "[spice]" "enabled = False"
  # the serial console: nova-serialproxy on the controller; a compute host's
  # consoles listen on proxyclient_address (the management network)
  printf '%s\n' "[serial_console]" "enabled = True" "base_url = ws://$ND_BIND:$ND_SERIALPROXY_PORT/" \
    "serialproxy_host = $ND_BIND" "serialproxy_port = $ND_SERIALPROXY_PORT" \
    "proxyclient_address = $ND_BIND" "port_range = ${ND_CONSOLE_PORTS:-10000:10500}"
}

nd_cp_write_configs() {
  mkdir -p "$ND_ETC"/{nova,placement,glance} "$ND_DATA"/{nova/lock,glance/{images,staging,tasks,cache}}
  {
    printf '%s\n' "[api]" "auth_strategy = keystone" "[placement_database]" \
      "connection = $(nd_db_url placement)"
    nd_authtoken placement
  } >"$ND_ETC/placement/placement.conf"
  {
    printf '%s\n' "[DEFAULT]" "bind_host = $ND_BIND" "bind_port = $ND_GLANCE_PORT" \
      "enabled_backends = fs:file" "worker_self_reference_url = $ND_GLANCE_URL" \
      "image_cache_dir = $ND_DATA/glance/cache" \
      "[glance_store]" "default_backend = fs" \
      "[fs]" "filesystem_store_datadir = $ND_DATA/glance/images/" \
      "[os_glance_staging_store]" "filesystem_store_datadir = $ND_DATA/glance/staging/" \
      "[os_glance_tasks_store]" "filesystem_store_datadir = $ND_DATA/glance/tasks/" \
      "[database]" "connection = $(nd_db_url glance)" \
      "[paste_deploy]" "flavor = keystone" "config_file = $ND_VENV/etc/glance/glance-api-paste.ini" \
      "[oslo_concurrency]" "lock_path = $ND_DATA/glance"
    nd_authtoken glance
  } >"$ND_ETC/glance/glance-api.conf"
  rm -f "$ND_ETC/glance/glance-api-paste.ini" "$ND_ETC/clouds.yaml"
  {
    printf '%s\n' "[DEFAULT]" "host = controller" "my_ip = $ND_BIND" "state_path = $ND_DATA/nova" \
      "transport_url = $ND_TRANSPORT_URL" "service_down_time = ${ND_SERVICE_DOWN_TIME:-20}" \
      "allow_resize_to_same_host = True" \
      "[api]" "auth_strategy = keystone" \
      "[wsgi]" "api_paste_config = $ND_ETC/nova/api-paste.ini" \
      "[api_database]" "connection = $(nd_db_url nova_api)" \
      "[database]" "connection = $(nd_db_url nova)" \
      "[conductor]" "workers = 1" \
      "[scheduler]" "workers = 1" "discover_hosts_in_cells_interval = -1" \
      "[oslo_concurrency]" "lock_path = $ND_DATA/nova/lock"
    nd_authtoken nova
    nd_client_sections
  } >"$ND_ETC/nova/nova.conf"
  cp "$ND_VENV/etc/nova/api-paste.ini" "$ND_ETC/nova/api-paste.ini"
  nd_write_openrc "$ND_STATE/openrc" demo demo
  nd_write_openrc "$ND_STATE/openrc-admin" admin admin
}

# nd_write_openrc FILE USER PROJECT: the openstack CLI's environment (mode 600:
# it holds the password).
nd_write_openrc() {
  (umask 077; printf '%s\n' "# source me: the openstack CLI as user $2 (project $3) of the local all-in-one" \
    "unset OS_CLOUD OS_CLIENT_CONFIG_FILE OS_TOKEN" \
    "export OS_AUTH_TYPE=password OS_AUTH_URL=$ND_AUTH_URL OS_IDENTITY_API_VERSION=3" \
    "export OS_USERNAME=$2 OS_PASSWORD=$(nd_password "$2") OS_PROJECT_NAME=$3" \
    "export OS_USER_DOMAIN_ID=default OS_PROJECT_DOMAIN_ID=default" \
    "export OS_REGION_NAME=RegionOne OS_INTERFACE=public" \
    "export PATH=$ND_VENV/bin:\$PATH" >"$1")
  chmod 600 "$1"
}

# nd_compute_conf HOST FILE: the nova.conf of a compute host of this lab, what an
# operator writes for nova-compute ([docker] and [docker_registry] are ours; no
# [keystone_authtoken]: a compute host serves no API). [docker_registry] (the
# lab registry's credentials and CA) once nd_registry_up has made them. Mode
# 600: it holds the nova user's password.
nd_compute_conf() {
  local host=$1 file=$2
  nd_passwords
  mkdir -p "$ND_DATA/compute-$host" "$(dirname "$file")"
  (umask 077; {
    printf '%s\n' "[DEFAULT]" "host = $host" "my_ip = $ND_BIND" "compute_driver = docker.DockerDriver" \
      "state_path = $ND_DATA/compute-$host" "transport_url = $ND_TRANSPORT_URL" "report_interval = ${ND_REPORT_INTERVAL:-5}" \
      "# containers share the host's CPUs: more instances per core than a VM host" \
      "cpu_allocation_ratio = ${ND_CPU_ALLOCATION_RATIO:-16.0}"
    nd_client_sections
    printf '%s\n' "[docker]" "host_url = unix:///var/run/docker.sock" \
      "ovs_datapath_type = $(nd_ovs_datapath)"
    nd_registry_compute_section
  } >"$file")
}

# nd_export_lab_env: what the tests need to reach the lab (URLs, credentials).
nd_export_lab_env() {
  nd_passwords
  export NOVA_DOCKER_E2E_STATE="$ND_STATE" NOVA_DOCKER_E2E_VENV="$ND_VENV"
  export NOVA_DOCKER_E2E_HOST="$ND_HOST"
  export NOVA_DOCKER_E2E_AUTH_URL="$ND_AUTH_URL" NOVA_DOCKER_E2E_PASSWORDS="$ND_PASSWORDS"
  export NOVA_DOCKER_E2E_NOVA_URL="$ND_NOVA_URL" NOVA_DOCKER_E2E_GLANCE_URL="$ND_GLANCE_URL"
  export NOVA_DOCKER_E2E_PLACEMENT_URL="$ND_PLACEMENT_URL" NOVA_DOCKER_E2E_NEUTRON_URL="$ND_NEUTRON_URL"
  export NOVA_DOCKER_E2E_ADMIN_USER=admin NOVA_DOCKER_E2E_ADMIN_PROJECT=admin
  export NOVA_DOCKER_E2E_ADMIN_PASSWORD="$ND_ADMIN_PASSWORD"
  export NOVA_DOCKER_E2E_DEMO_USER=demo NOVA_DOCKER_E2E_DEMO_PROJECT=demo
  export NOVA_DOCKER_E2E_DEMO_PASSWORD="$ND_DEMO_PASSWORD"
  export NOVA_DOCKER_E2E_OUTSIDE_NETNS="$ND_OUTSIDE_NS" NOVA_DOCKER_E2E_TOKEN_EXPIRATION="$ND_TOKEN_EXPIRATION"
  export NOVA_DOCKER_E2E_HORIZON_URL="$ND_HORIZON_URL" NOVA_DOCKER_E2E_HORIZON_VENV="$ND_HORIZON_VENV"
  # the lab registry (NOVA_DOCKER_E2E_REGISTRY*), once nd_registry_up has run
  nd_registry_export_env
}

nd_nova_manage() { "$ND_VENV/bin/nova-manage" --config-file "$ND_ETC/nova/nova.conf" "$@"; }

# Bring the control plane up (idempotent).
nd_controlplane_up() {
  nd_apt_install curl
  nd_ensure_rabbitmq
  nd_ensure_venv
  nd_ensure_mariadb
  nd_passwords
  nd_cp_write_configs
  export PYTHONPATH="$_ND_FILES${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
  local bin=$ND_VENV/bin
  nd_stop neutron-stub   # the read-only stand-in of earlier labs
  nd_keystone_up
  nd_ovn_up
  nd_neutron_up
  nd_log "database schemas"
  "$bin/placement-manage" --config-file "$ND_ETC/placement/placement.conf" db sync >"$ND_RUN/dbsync-placement.log" 2>&1 \
    || nd_die "placement db sync failed (see $ND_RUN/dbsync-placement.log)"
  "$bin/glance-manage" --config-file "$ND_ETC/glance/glance-api.conf" db_sync >"$ND_RUN/dbsync-glance.log" 2>&1 \
    || nd_die "glance db sync failed (see $ND_RUN/dbsync-glance.log)"
  nd_nova_manage api_db sync >"$ND_RUN/dbsync-nova.log" 2>&1 || nd_die "nova api_db sync failed"
  nd_nova_manage cell_v2 map_cell0 --database_connection "$(nd_db_url nova_cell0)" >>"$ND_RUN/dbsync-nova.log" 2>&1 \
    || nd_die "map_cell0 failed (see $ND_RUN/dbsync-nova.log)"
  local rc=0
  nd_nova_manage cell_v2 create_cell --name cell1 --database_connection "$(nd_db_url nova)" \
    --transport-url "$ND_TRANSPORT_URL" >>"$ND_RUN/dbsync-nova.log" 2>&1 || rc=$?
  [ $rc = 0 ] || [ $rc = 2 ] || nd_die "create_cell failed (see $ND_RUN/dbsync-nova.log)"
  nd_nova_manage db sync >>"$ND_RUN/dbsync-nova.log" 2>&1 || nd_die "nova db sync failed (see $ND_RUN/dbsync-nova.log)"
  # keep-alive 75 s on every API (gunicorn's default is 2 s), as for keystone: a
  # pooled connection closed by the server as a client reused it failed the
  # scheduler's placement query ("Remote end closed connection without
  # response": NoValidHost) 470 cycles into a soak run
  nd_start_with placement "$ND_ETC/placement/placement.conf" env OS_PLACEMENT_CONFIG_DIR="$ND_ETC/placement" "$bin/gunicorn" \
    -b "$ND_BIND:$ND_PLACEMENT_PORT" -w 1 -k gthread --threads 8 --timeout 300 --keep-alive 75 --no-control-socket \
    --name placement-api placement.wsgi.api:application
  nd_start_with glance-api "$ND_ETC/glance/glance-api.conf" env OS_GLANCE_CONFIG_DIR="$ND_ETC/glance" "$bin/gunicorn" \
    -b "$ND_BIND:$ND_GLANCE_PORT" -w 1 -k gthread --threads 8 --timeout 600 --keep-alive 75 --no-control-socket \
    --name glance-api glance.wsgi.api:application
  local novaconf="$ND_ETC/nova/nova.conf $ND_ETC/nova/api-paste.ini"
  nd_start_with nova-api "$novaconf" env OS_NOVA_CONFIG_DIR="$ND_ETC/nova" "$bin/gunicorn" \
    -b "$ND_BIND:$ND_NOVA_API_PORT" -w 1 -k gthread --threads 8 --timeout 300 --keep-alive 75 --no-control-socket \
    --name nova-api nova_api_wsgi:application
  nd_start_with nova-conductor "$novaconf" "$bin/nova-conductor" --config-file "$ND_ETC/nova/nova.conf"
  nd_start_with nova-scheduler "$novaconf" "$bin/nova-scheduler" --config-file "$ND_ETC/nova/nova.conf"
  nd_start_with nova-serialproxy "$novaconf" "$bin/nova-serialproxy" --config-file "$ND_ETC/nova/nova.conf"
  nd_wait_http neutron-api "$ND_NEUTRON_URL/"
  nd_wait_http glance-api "$ND_GLANCE_URL/"
  nd_wait_http placement "$ND_PLACEMENT_URL/"
  nd_wait_http nova-api "$ND_NOVA_URL/"
  "$bin/python" "$_ND_FILES/lab.py" networks >>"$ND_RUN/lab-setup.log" 2>&1 \
    || { tail -5 "$ND_RUN/lab-setup.log" >&2; nd_die "network set-up failed (see $ND_RUN/lab-setup.log)"; }
  nd_heat_up
  nd_log "control plane up (state in $ND_STATE; source $ND_STATE/openrc for the openstack CLI)"
}

# nd_seed DOCKER_REF: flavor m1.tiny and the public Glance image busybox (a
# docker save of DOCKER_REF), unless they exist.
nd_seed() {
  ND_IMAGE_DOCKER_REF=$1 "$ND_VENV/bin/python" "$_ND_FILES/lab.py" seed >>"$ND_RUN/lab-setup.log" 2>&1 \
    || { tail -5 "$ND_RUN/lab-setup.log" >&2; nd_die "flavor/image set-up failed (see $ND_RUN/lab-setup.log)"; }
}

nd_controlplane_down() {
  nd_heat_down
  for s in nova-serialproxy nova-scheduler nova-conductor nova-api glance-api placement \
           neutron-ovn-maintenance-worker neutron-periodic-workers neutron-api neutron-stub keystone; do
    nd_stop "$s"
  done
  if [ -x /usr/share/ovn/scripts/ovn-ctl ]; then nd_ovn_down; fi
  if command -v ip >/dev/null; then nd_outside_down; fi
  nd_stop mariadb
}
