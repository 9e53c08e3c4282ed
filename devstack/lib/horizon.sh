# Horizon of the local all-in-one (sourced by controlplane.sh; started by
# stack.sh and by the tests' set-up, stopped by unstack.sh): horizon 27.0.0 and
# heat-dashboard 16.0.0 from PyPI in a venv of their own, pinned by
# devstack/files/horizon-constraints.txt, under gunicorn with one worker
# (sessions live in that worker's memory), Django's static handler in front
# (devstack/files/horizon_wsgi.py), settings from
# devstack/files/horizon_local_settings.py. State (static files, the session
# secret) in $ND_STATE/horizon.
#   ND_HORIZON_VENV   default /opt/nova-docker-horizon-venv
#   ND_HORIZON_PORT   default 8080 (on ND_BIND)

ND_HORIZON_VENV=${ND_HORIZON_VENV:-/opt/nova-docker-horizon-venv}
ND_HORIZON_PORT=${ND_HORIZON_PORT:-8080}
ND_HORIZON_URL=http://$ND_BIND:$ND_HORIZON_PORT/
ND_HORIZON_DIR=$ND_STATE/horizon
ND_HORIZON_PINS=(horizon==27.0.0 heat-dashboard==16.0.0 gunicorn==27.0.1)
_ND_HORIZON_CONSTRAINTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../files" && pwd)/horizon-constraints.txt

# nd_horizon_pip PIP-ARGS...: pip install into Horizon's venv under the pins.
nd_horizon_pip() {
  "$ND_HORIZON_VENV/bin/pip" install -q -c "$_ND_HORIZON_CONSTRAINTS" "$@" >>"$ND_STATE/pip-horizon.log" 2>&1 \
    || { tail -20 "$ND_STATE/pip-horizon.log" >&2; nd_die "pip install $* failed (see $ND_STATE/pip-horizon.log)"; }
}

# The venv; the stamp names the pins and the constraints last installed.
nd_horizon_venv() {
  local stamp
  stamp="${ND_HORIZON_PINS[*]} $(sha256sum <"$_ND_HORIZON_CONSTRAINTS" | cut -c1-16)"
  if [ -x "$ND_HORIZON_VENV/bin/python" ] && [ "$(cat "$ND_HORIZON_VENV/.nd-pins" 2>/dev/null)" = "$stamp" ] \
     && "$ND_HORIZON_VENV/bin/python" -c 'import openstack_dashboard, heat_dashboard' 2>/dev/null; then
    return 0
  fi
  nd_apt_install python3-venv
  nd_log "creating venv $ND_HORIZON_VENV with ${ND_HORIZON_PINS[*]}"
  [ -x "$ND_HORIZON_VENV/bin/python" ] || python3 -m venv "$ND_HORIZON_VENV" || nd_die "python3 -m venv failed"
  "$ND_HORIZON_VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  nd_horizon_pip "${ND_HORIZON_PINS[@]}"
  echo "$stamp" >"$ND_HORIZON_VENV/.nd-pins"
}

# _nd_horizon_install SRC DST: copy unless DST has the same content.
_nd_horizon_install() { cmp -s "$1" "$2" || install -m 0644 "$1" "$2"; }

nd_horizon_up() {
  nd_horizon_venv
  local py=$ND_HORIZON_VENV/bin/python dash files
  dash=$("$py" -c 'import os, openstack_dashboard; print(os.path.dirname(openstack_dashboard.__file__))') \
    || nd_die "openstack_dashboard not importable in $ND_HORIZON_VENV"
  _nd_horizon_install "$_ND_FILES/horizon_local_settings.py" "$dash/local/local_settings.py"
  # the Stacks panel (Project > Orchestration); it shows once the catalog has Heat
  local f heat
  heat=$("$py" -c 'import os, heat_dashboard; print(os.path.dirname(heat_dashboard.__file__))')
  for f in "$heat"/enabled/_16*.py; do
    _nd_horizon_install "$f" "$dash/local/enabled/$(basename "$f")"
  done
  mkdir -p "$ND_HORIZON_DIR"
  local env=(env ND_HORIZON_DIR="$ND_HORIZON_DIR" ND_AUTH_URL="$ND_AUTH_URL"
             DJANGO_SETTINGS_MODULE=openstack_dashboard.settings PYTHONDONTWRITEBYTECODE=1)
  # static files and the offline-compressed CSS/JS: again only when the venv,
  # the settings or the enabled panels changed (a warm stack.sh skips it)
  files="$dash/local/local_settings.py $(echo "$dash"/local/enabled/_*.py)"
  local sum
  # shellcheck disable=SC2086
  sum=$( (cat "$ND_HORIZON_VENV/.nd-pins" $files; echo "$ND_HORIZON_DIR") | sha256sum | cut -c1-16)
  if [ "$(cat "$ND_HORIZON_DIR/static/.nd-stamp" 2>/dev/null)" != "$sum" ]; then
    nd_log "horizon: collectstatic and compress"
    "${env[@]}" "$ND_HORIZON_VENV/bin/django-admin" collectstatic --noinput --clear \
      >"$ND_RUN/horizon-static.log" 2>&1 || nd_die "horizon collectstatic failed (see $ND_RUN/horizon-static.log)"
    "${env[@]}" "$ND_HORIZON_VENV/bin/django-admin" compress --force \
      >>"$ND_RUN/horizon-static.log" 2>&1 || nd_die "horizon compress failed (see $ND_RUN/horizon-static.log)"
    echo "$sum" >"$ND_HORIZON_DIR/static/.nd-stamp"
  fi
  # one worker: the sessions are in its memory
  nd_start_with horizon "$files $_ND_FILES/horizon_wsgi.py $ND_HORIZON_DIR/static/.nd-stamp" \
    "${env[@]}" "$ND_HORIZON_VENV/bin/gunicorn" --pythonpath "$_ND_FILES" \
    -b "$ND_BIND:$ND_HORIZON_PORT" -w 1 -k gthread --threads 4 --timeout 120 --no-control-socket \
    --access-logfile "$ND_RUN/horizon-access.log" --access-logformat '%(t)s "%(r)s" %(s)s %(b)s %(M)sms' \
    --name horizon horizon_wsgi:application
  local end=$((SECONDS + ND_WAIT)) code
  until code=$(curl -s -o /dev/null -m 30 -w '%{http_code}' "${ND_HORIZON_URL}auth/login/") && [ "$code" = 200 ]; do
    [ $SECONDS -lt $end ] || nd_die "horizon did not answer at ${ND_HORIZON_URL}auth/login/ (HTTP $code; see $ND_RUN/horizon.log)"
    nd_alive horizon || nd_die "horizon died (see $ND_RUN/horizon.log)"
    sleep 0.5
  done
  nd_log "horizon up at $ND_HORIZON_URL"
}

nd_horizon_down() { nd_stop horizon; }

# The line stack.sh ends with (no password: they are in the file).
nd_horizon_banner() {
  nd_log "Horizon is now available at $ND_HORIZON_URL (user demo or admin, passwords in $ND_PASSWORDS)"
}
