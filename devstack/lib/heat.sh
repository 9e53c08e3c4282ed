# Heat of the local all-in-one (sourced by controlplane.sh, after keystone.sh):
# openstack-heat 27.0.1 in a venv of its own ($ND_HEAT_VENV, pinned by
# devstack/files/heat/requirements.txt: the versions an unconstrained install
# resolved to; OpenStack's requirements-master constraints do not fit heat
# 27.0.1), heat-api and heat-api-cfn under gunicorn (one worker each),
# heat-engine (num_engine_workers = 1), on the lab's MariaDB and RabbitMQ,
# trusts for deferred auth and the stack user domain `heat`. Keystone's side
# (user heat, domain heat with heat_domain_admin, roles heat_stack_owner and
# heat_stack_user, the orchestration and cloudformation endpoints, demo as
# heat_stack_owner) is made by devstack/files/lab.py register. The openstack
# CLI of $ND_VENV gets python-heatclient, so `openstack stack ...` works from
# $ND_STATE/openrc.
#   ND_HEAT_VENV       default /opt/nova-docker-heat-venv
#   ND_HEAT_PORT       heat-api, default 8004
#   ND_HEAT_CFN_PORT   heat-api-cfn, default 8000

ND_HEAT_VENV=${ND_HEAT_VENV:-/opt/nova-docker-heat-venv}
ND_HEAT_PORT=${ND_HEAT_PORT:-8004}
ND_HEAT_CFN_PORT=${ND_HEAT_CFN_PORT:-8000}
# Keystone substitutes the project of the token for %(tenant_id)s
ND_HEAT_URL="http://$ND_BIND:$ND_HEAT_PORT/v1/%(tenant_id)s"
ND_HEAT_CFN_URL="http://$ND_BIND:$ND_HEAT_CFN_PORT/v1"
# the heat CLI plugin in the lab's venv: these two add nothing else and change
# no pinned package there (pip install --dry-run)
ND_HEAT_CLIENT_PINS=(python-heatclient==5.3.0 python-swiftclient==4.11.0)
# what lab.py register reads
export ND_HEAT_URL ND_HEAT_CFN_URL
# heat's service user and the admin of its stack user domain get lab passwords
ND_LAB_USERS+=(heat heat_domain_admin)

_ND_HEAT_REQS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../files/heat" && pwd)/requirements.txt

nd_heat_venv() {
  local stamp
  stamp=$(sha256sum "$_ND_HEAT_REQS" | cut -c1-16)
  if [ -x "$ND_HEAT_VENV/bin/heat-engine" ] && [ "$(cat "$ND_HEAT_VENV/.nd-reqs" 2>/dev/null)" = "$stamp" ] \
     && "$ND_HEAT_VENV/bin/python" -c 'import heat.version, gunicorn, pymysql' 2>/dev/null; then
    :
  else
    nd_apt_install python3-venv python3-dev gcc libffi-dev
    nd_log "creating venv $ND_HEAT_VENV with openstack-heat (devstack/files/heat/requirements.txt)"
    [ -x "$ND_HEAT_VENV/bin/python" ] || python3 -m venv "$ND_HEAT_VENV" || nd_die "python3 -m venv $ND_HEAT_VENV failed"
    "$ND_HEAT_VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
    "$ND_HEAT_VENV/bin/pip" install -q -r "$_ND_HEAT_REQS" >>"$ND_STATE/pip-heat.log" 2>&1 \
      || { tail -20 "$ND_STATE/pip-heat.log" >&2; nd_die "pip install of heat failed (see $ND_STATE/pip-heat.log)"; }
    echo "$stamp" >"$ND_HEAT_VENV/.nd-reqs"
  fi
  if [ "$(cat "$ND_VENV/.nd-heat-client" 2>/dev/null)" != "${ND_HEAT_CLIENT_PINS[*]}" ] \
     || ! "$ND_VENV/bin/python" -c 'import heatclient' 2>/dev/null; then
    nd_log "python-heatclient into $ND_VENV (openstack stack ...)"
    "$ND_VENV/bin/pip" install -q "${ND_HEAT_CLIENT_PINS[@]}" >>"$ND_STATE/pip.log" 2>&1 \
      || { tail -20 "$ND_STATE/pip.log" >&2; nd_die "pip install python-heatclient failed (see $ND_STATE/pip.log)"; }
    echo "${ND_HEAT_CLIENT_PINS[*]}" >"$ND_VENV/.nd-heat-client"
  fi
}

nd_heat_write_config() {
  local etc=$ND_ETC/heat
  mkdir -p "$etc" "$ND_DATA/heat/lock"
  # the key heat encrypts stored credentials with: 32 characters, made once
  grep -q '^ND_HEAT_AUTH_KEY=' "$ND_PASSWORDS" \
    || echo "ND_HEAT_AUTH_KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >>"$ND_PASSWORDS"
  # shellcheck disable=SC1090
  source "$ND_PASSWORDS"
  cp "$ND_HEAT_VENV/etc/heat/api-paste.ini" "$etc/api-paste.ini"
  (umask 077; {
    printf '%s\n' "[DEFAULT]" "host = controller" "transport_url = $ND_TRANSPORT_URL" \
      "auth_encryption_key = $ND_HEAT_AUTH_KEY" "num_engine_workers = 1" \
      "region_name_for_services = RegionOne" \
      "heat_metadata_server_url = http://$ND_BIND:$ND_HEAT_CFN_PORT" \
      "heat_waitcondition_server_url = http://$ND_BIND:$ND_HEAT_CFN_PORT/v1/waitcondition" \
      "deferred_auth_method = trusts" \
      "stack_user_domain_name = heat" "stack_domain_admin = heat_domain_admin" \
      "stack_domain_admin_password = $(nd_password heat_domain_admin)" \
      "environment_dir = $ND_HEAT_VENV/etc/heat/environment.d" \
      "template_dir = $ND_HEAT_VENV/etc/heat/templates" \
      "[database]" "connection = $(nd_db_url heat)" \
      "[paste_deploy]" "api_paste_config = $etc/api-paste.ini" \
      "[heat_api]" "workers = 1" "[heat_api_cfn]" "workers = 1" \
      "[oslo_messaging_notifications]" "driver = noop" \
      "[oslo_concurrency]" "lock_path = $ND_DATA/heat/lock"
    nd_authtoken heat
    printf '%s\n' "[trustee]" "auth_type = password" "auth_url = $ND_AUTH_URL" \
      "username = heat" "password = $(nd_password heat)" "user_domain_name = Default" \
      "[clients_keystone]" "auth_uri = ${ND_AUTH_URL%/v3}" \
      "[ec2authtoken]" "auth_uri = $ND_AUTH_URL"
  } >"$etc/heat.conf")
}

# Bring Heat up (idempotent); needs the control plane's MariaDB, RabbitMQ and Keystone.
nd_heat_up() {
  nd_heat_venv
  nd_passwords
  nd_heat_write_config
  local conf=$ND_ETC/heat/heat.conf bin=$ND_HEAT_VENV/bin
  mysql --no-defaults --socket="$ND_DATA/mysqlrun/mysqld.sock" -u root -e \
    "CREATE DATABASE IF NOT EXISTS heat CHARACTER SET utf8mb3; GRANT ALL ON heat.* TO 'nova_docker'@'127.0.0.1';" \
    || nd_die "heat database set-up failed"
  "$bin/heat-manage" --config-file "$conf" db_sync >"$ND_RUN/dbsync-heat.log" 2>&1 \
    || nd_die "heat db_sync failed (see $ND_RUN/dbsync-heat.log)"
  local files="$conf $ND_ETC/heat/api-paste.ini"
  # heat's WSGI apps parse sys.argv: devstack/files/heat_wsgi.py hides gunicorn's
  nd_start_with heat-api "$files" env ND_HEAT_CONF="$conf" ND_HEAT_APP=api PYTHONPATH="$_ND_FILES" \
    "$bin/gunicorn" -b "$ND_BIND:$ND_HEAT_PORT" -w 1 -k gthread --threads 4 --timeout 120 --keep-alive 75 \
    --no-control-socket --name heat-api heat_wsgi:application
  nd_start_with heat-api-cfn "$files" env ND_HEAT_CONF="$conf" ND_HEAT_APP=cfn PYTHONPATH="$_ND_FILES" \
    "$bin/gunicorn" -b "$ND_BIND:$ND_HEAT_CFN_PORT" -w 1 -k gthread --threads 2 --timeout 120 --keep-alive 75 \
    --no-control-socket --name heat-api-cfn heat_wsgi:application
  nd_start_with heat-engine "$files" "$bin/heat-engine" --config-file "$conf"
  nd_wait_http heat-api "http://$ND_BIND:$ND_HEAT_PORT/"
  nd_wait_http heat-api-cfn "http://$ND_BIND:$ND_HEAT_CFN_PORT/"
  # the engine has registered (heat-manage reads the service table)
  local end=$((SECONDS + ND_WAIT))
  until "$bin/heat-manage" --config-file "$conf" service list 2>/dev/null | grep -q ' engine .* up '; do
    [ $SECONDS -lt $end ] || nd_die "heat-engine did not report within ${ND_WAIT}s (see $ND_RUN/heat-engine.log)"
    nd_alive heat-engine || nd_die "heat-engine died (see $ND_RUN/heat-engine.log)"
    sleep 1
  done
  nd_log "heat up at ${ND_HEAT_URL%/*} (heat-api), :$ND_HEAT_CFN_PORT (heat-api-cfn), heat-engine"
}

nd_heat_down() {
  for s in heat-engine heat-api-cfn heat-api; do nd_stop "$s"; done
}
