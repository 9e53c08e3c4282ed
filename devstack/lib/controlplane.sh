# The Keystone-less Nova control plane of the local all-in-one (sourced).
# placement, glance-api, nova-api (gunicorn), nova-conductor, nova-scheduler, a
# read-only Neutron stand-in, a private MariaDB and RabbitMQ; all state under
# $ND_STATE, every process group's pid in $ND_STATE/run/<name>.pid.
# Needs devstack/lib/functions.sh sourced first.

ND_BIND=${ND_BIND:-127.0.0.1}
ND_DB_PORT=${ND_DB_PORT:-3306}
ND_PLACEMENT_PORT=${ND_PLACEMENT_PORT:-8778}
ND_GLANCE_PORT=${ND_GLANCE_PORT:-9292}
ND_NOVA_API_PORT=${ND_NOVA_API_PORT:-8774}
ND_NEUTRON_PORT=${ND_NEUTRON_PORT:-9696}
ND_TOKEN=${ND_TOKEN:-admin:admin}
ND_TRANSPORT_URL=${ND_TRANSPORT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
_ND_FILES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../files" && pwd)
ND_RUN=$ND_STATE/run
ND_ETC=$ND_STATE/etc
ND_DATA=$ND_STATE/data

nd_alive() { [ -f "$ND_RUN/$1.pid" ] && kill -0 "$(cat "$ND_RUN/$1.pid")" 2>/dev/null; }

# nd_start NAME CMD...: start CMD in its own process group unless NAME runs.
nd_start() {
  local name=$1; shift
  nd_alive "$name" && return 0
  mkdir -p "$ND_RUN"
  echo "==== $(date -Is) $*" >>"$ND_RUN/$name.log"
  setsid "$@" >>"$ND_RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$ND_RUN/$name.pid"
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
  until curl -s -o /dev/null -m 5 -H "X-Auth-Token: $ND_TOKEN" "$2"; do
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
  for d in nova_api nova nova_cell0 placement glance; do
    sql+=" CREATE DATABASE IF NOT EXISTS $d CHARACTER SET utf8mb3; GRANT ALL ON $d.* TO 'nova_docker'@'127.0.0.1';"
  done
  mysql --no-defaults --socket="$sockdir/mysqld.sock" -u root -e "$sql" || nd_die "database set-up failed"
}

# The [placement] [glance] [neutron] sections every Nova service of the lab uses.
nd_service_sections() {
  printf '%s\n' \
    "[placement]" "auth_type = admin_token" "endpoint = http://$ND_BIND:$ND_PLACEMENT_PORT" \
    "token = $ND_TOKEN" "endpoint_override = http://$ND_BIND:$ND_PLACEMENT_PORT" \
    "[glance]" "endpoint_override = http://$ND_BIND:$ND_GLANCE_PORT" \
    "[neutron]" "auth_type = admin_token" "endpoint = http://$ND_BIND:$ND_NEUTRON_PORT" \
    "token = $ND_TOKEN" "endpoint_override = http://$ND_BIND:$ND_NEUTRON_PORT" \
    "[oslo_messaging_notifications]" "driver = noop" \
    "[vnc]" "enabled = False" "[spice]" "enabled = False"
}

nd_cp_write_configs() {
  mkdir -p "$ND_ETC"/{nova,placement,glance} "$ND_DATA"/{nova/lock,glance/{images,staging,tasks,cache}}
  printf '%s\n' "[api]" "auth_strategy = noauth2" "[placement_database]" \
    "connection = $(nd_db_url placement)" >"$ND_ETC/placement/placement.conf"
  printf '%s\n' "[DEFAULT]" "bind_host = $ND_BIND" "bind_port = $ND_GLANCE_PORT" \
    "enabled_backends = fs:file" "worker_self_reference_url = http://$ND_BIND:$ND_GLANCE_PORT" \
    "image_cache_dir = $ND_DATA/glance/cache" \
    "[glance_store]" "default_backend = fs" \
    "[fs]" "filesystem_store_datadir = $ND_DATA/glance/images/" \
    "[os_glance_staging_store]" "filesystem_store_datadir = $ND_DATA/glance/staging/" \
    "[os_glance_tasks_store]" "filesystem_store_datadir = $ND_DATA/glance/tasks/" \
    "[database]" "connection = $(nd_db_url glance)" \
    "[paste_deploy]" "flavor =" "config_file = $ND_ETC/glance/glance-api-paste.ini" \
    "[oslo_concurrency]" "lock_path = $ND_DATA/glance" >"$ND_ETC/glance/glance-api.conf"
  cp "$_ND_FILES/glance-api-paste.ini" "$ND_ETC/glance/glance-api-paste.ini"
  {
    printf '%s\n' "[DEFAULT]" "host = controller" "my_ip = $ND_BIND" "state_path = $ND_DATA/nova" \
      "transport_url = $ND_TRANSPORT_URL" "service_down_time = ${ND_SERVICE_DOWN_TIME:-20}" \
      "[wsgi]" "api_paste_config = $ND_ETC/nova/api-paste.ini" \
      "[api_database]" "connection = $(nd_db_url nova_api)" \
      "[database]" "connection = $(nd_db_url nova)" \
      "[conductor]" "workers = 1" \
      "[scheduler]" "workers = 1" "discover_hosts_in_cells_interval = -1" \
      "[oslo_concurrency]" "lock_path = $ND_DATA/nova/lock"
    nd_service_sections
  } >"$ND_ETC/nova/nova.conf"
  sed -e 's/ authtoken keystonecontext/ noauth keystonecontext/' \
    "$ND_VENV/etc/nova/api-paste.ini" >"$ND_ETC/nova/api-paste.ini"
  printf '\n[filter:noauth]\npaste.filter_factory = noauth:filter_factory\n' >>"$ND_ETC/nova/api-paste.ini"
  grep -q ' noauth keystonecontext' "$ND_ETC/nova/api-paste.ini" || nd_die "nova api-paste rewrite failed"
  printf '%s\n' "clouds:" "  nova-docker:" "    auth_type: none" \
    "    compute_endpoint_override: http://$ND_BIND:$ND_NOVA_API_PORT/v2.1/" \
    "    image_endpoint_override: http://$ND_BIND:$ND_GLANCE_PORT/" \
    "    placement_endpoint_override: http://$ND_BIND:$ND_PLACEMENT_PORT/" \
    "    network_endpoint_override: http://$ND_BIND:$ND_NEUTRON_PORT/" \
    "    compute_api_version: '2.95'" "    identity_api_version: '3'" >"$ND_ETC/clouds.yaml"
  printf '%s\n' "# source me: the openstack CLI against the local all-in-one" \
    "export OS_CLIENT_CONFIG_FILE=$ND_ETC/clouds.yaml OS_CLOUD=nova-docker" \
    "export PATH=$ND_VENV/bin:\$PATH" >"$ND_STATE/openrc"
}

# nd_compute_conf HOST FILE: the nova.conf of a compute host of this lab (the
# same file would configure Python nova-compute; [docker] is ours).
nd_compute_conf() {
  local host=$1 file=$2
  mkdir -p "$ND_DATA/compute-$host"
  {
    printf '%s\n' "[DEFAULT]" "host = $host" "my_ip = $ND_BIND" "compute_driver = docker.DockerDriver" \
      "state_path = $ND_DATA/compute-$host" "transport_url = $ND_TRANSPORT_URL" "report_interval = ${ND_REPORT_INTERVAL:-5}"
    nd_service_sections
    printf '%s\n' "[docker]" "host_url = unix:///var/run/docker.sock"
  } >"$file"
}

nd_nova_manage() { "$ND_VENV/bin/nova-manage" --config-file "$ND_ETC/nova/nova.conf" "$@"; }

# Bring the control plane up (idempotent).
nd_controlplane_up() {
  nd_apt_install curl
  nd_ensure_rabbitmq
  nd_ensure_venv
  nd_ensure_mariadb
  nd_cp_write_configs
  export PYTHONPATH="$_ND_FILES${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
  local bin=$ND_VENV/bin
  nd_start neutron-stub "$bin/python" -u "$_ND_FILES/neutron_stub.py" "$ND_BIND:$ND_NEUTRON_PORT"
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
  nd_start placement env OS_PLACEMENT_CONFIG_DIR="$ND_ETC/placement" "$bin/gunicorn" \
    -b "$ND_BIND:$ND_PLACEMENT_PORT" -w 1 -k gthread --threads 8 --timeout 300 --no-control-socket \
    --name placement-api placement.wsgi.api:application
  if ! curl -s -o /dev/null -m 3 "http://$ND_BIND:$ND_GLANCE_PORT/v2/images"; then
    nd_start glance-api env OS_GLANCE_CONFIG_DIR="$ND_ETC/glance" "$bin/gunicorn" \
      -b "$ND_BIND:$ND_GLANCE_PORT" -w 1 -k gthread --threads 8 --timeout 600 --no-control-socket \
      --name glance-api glance.wsgi.api:application
    nd_wait_http glance-api "http://$ND_BIND:$ND_GLANCE_PORT/v2/images"
  fi
  nd_start nova-api env OS_NOVA_CONFIG_DIR="$ND_ETC/nova" "$bin/gunicorn" \
    -b "$ND_BIND:$ND_NOVA_API_PORT" -w 1 -k gthread --threads 8 --timeout 300 --no-control-socket \
    --name nova-api nova_api_wsgi:application
  nd_start nova-conductor "$bin/nova-conductor" --config-file "$ND_ETC/nova/nova.conf"
  nd_start nova-scheduler "$bin/nova-scheduler" --config-file "$ND_ETC/nova/nova.conf"
  nd_wait_http placement "http://$ND_BIND:$ND_PLACEMENT_PORT/"
  nd_wait_http nova-api "http://$ND_BIND:$ND_NOVA_API_PORT/v2.1/"
  nd_log "control plane up (state in $ND_STATE; source $ND_STATE/openrc for the openstack CLI)"
}

nd_controlplane_down() {
  for s in nova-scheduler nova-conductor nova-api glance-api placement neutron-stub mariadb; do
    nd_stop "$s"
  done
}
