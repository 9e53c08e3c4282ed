# Test stack for the image service (sourced by devstack/run-tests.sh after the
# venv is ready): a real glance-api from the venv, file store, SQLite database,
# no Keystone (devstack/files/noauth.py fills the identity headers), state under
# $ND_STATE/glance. Idempotent: a glance-api of ours that still answers is reused.
# One request at a time (gunicorn gthread, 1 thread): SQLite fails concurrent
# writers with "database is locked"; requests queue instead.
#
# Exports:
#   NOVA_DOCKER_TEST_GLANCE_URL         http://127.0.0.1:<port>
#   NOVA_DOCKER_TEST_GLANCE_ACCESS_LOG  gunicorn access log (tests count data requests)
#   NOVA_DOCKER_TEST_GLANCE_DATADIR     the file store (tests corrupt data at rest)
# Parameters: ND_GLANCE_PORT (default 9292; the next free port is used when it is
# taken by something that is not ours).

_ND_IMAGE_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

nd_image_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

nd_image_glance() {
  local g="$ND_STATE/glance" port=${ND_GLANCE_PORT:-9292}
  mkdir -p "$g"/{etc,images,staging,tasks,run,python}
  local pidf="$g/run/glance-api.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null && [ -f "$g/run/port" ]; then
    port=$(cat "$g/run/port")
    if curl -s -o /dev/null -m 5 "http://127.0.0.1:$port/v2/images"; then
      nd_log "glance-api already running on 127.0.0.1:$port (pid $(cat "$pidf"))"
      nd_image_export "$g" "$port"
      return 0
    fi
  fi
  while nd_image_port_busy "$port"; do port=$((port + 1)); done
  [ -x "$ND_VENV/bin/glance-manage" ] || nd_die "glance is not installed in $ND_VENV (nd_ensure_venv)"
  cp "$_ND_IMAGE_LIB/../files/noauth.py" "$g/python/nd_noauth.py"
  cat >"$g/etc/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
enabled_backends = fs:file
worker_self_reference_url = http://127.0.0.1:$port
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $g/images/
[os_glance_staging_store]
filesystem_store_datadir = $g/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $g/tasks/
[database]
connection = sqlite:///$g/glance.sqlite?timeout=60
[paste_deploy]
flavor =
config_file = $g/etc/glance-api-paste.ini
[oslo_concurrency]
lock_path = $g/run
CONF
  cat >"$g/etc/glance-api-paste.ini" <<'CONF'
[composite:glance-api]
paste.composite_factory = glance.api:root_app_factory
/: api

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
default = versionnegotiation noauth context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:noauth]
paste.filter_factory = nd_noauth:filter_factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
CONF
  nd_log "glance db sync (sqlite)"
  "$ND_VENV/bin/glance-manage" --config-file "$g/etc/glance-api.conf" db_sync >"$g/run/dbsync.log" 2>&1 \
    || { tail -20 "$g/run/dbsync.log" >&2; nd_die "glance db sync failed (see $g/run/dbsync.log)"; }
  nd_log "starting glance-api on 127.0.0.1:$port"
  echo "$port" >"$g/run/port"
  : >"$g/run/access.log"
  OS_GLANCE_CONFIG_DIR="$g/etc" PYTHONPATH="$g/python" setsid "$ND_VENV/bin/gunicorn" \
    -b "127.0.0.1:$port" -w 1 -k gthread --threads 1 --timeout 600 --no-control-socket \
    --access-logfile "$g/run/access.log" --name glance-api glance.wsgi.api:application \
    >>"$g/run/glance-api.log" 2>&1 </dev/null &
  echo $! >"$pidf"
  local end=$((SECONDS + ND_WAIT))
  until curl -s -o /dev/null -m 5 "http://127.0.0.1:$port/v2/images"; do
    kill -0 "$(cat "$pidf")" 2>/dev/null || { tail -30 "$g/run/glance-api.log" >&2; nd_die "glance-api died (see $g/run/glance-api.log)"; }
    [ $SECONDS -lt $end ] || nd_die "glance-api did not answer within ${ND_WAIT}s"
    sleep 0.5
  done
  nd_log "glance-api answers on 127.0.0.1:$port"
  nd_image_export "$g" "$port"
}

nd_image_export() {
  export NOVA_DOCKER_TEST_GLANCE_URL="http://127.0.0.1:$2"
  export NOVA_DOCKER_TEST_GLANCE_ACCESS_LOG="$1/run/access.log"
  export NOVA_DOCKER_TEST_GLANCE_DATADIR="$1/images"
}

nd_apt_install curl
nd_image_glance
