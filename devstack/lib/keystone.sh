# Keystone of the local all-in-one (sourced by controlplane.sh): keystone 30 from
# the venv under gunicorn (one worker), MariaDB, fernet tokens, bootstrapped with
# keystone-manage, then the lab's projects, users and catalog (devstack/files/lab.py
# register). Passwords are made once into $ND_ETC/passwords (mode 600) and reused.
#   ND_KEYSTONE_PORT      default 5000
#   ND_TOKEN_EXPIRATION   token lifetime in seconds (default 3600); a change
#                         restarts keystone so that it applies

ND_KEYSTONE_PORT=${ND_KEYSTONE_PORT:-5000}
ND_AUTH_URL=http://$ND_BIND:$ND_KEYSTONE_PORT/v3
ND_TOKEN_EXPIRATION=${ND_TOKEN_EXPIRATION:-3600}
ND_PASSWORDS=$ND_ETC/passwords
# the users whose passwords the lab keeps (ND_<USER>_PASSWORD in $ND_PASSWORDS)
ND_LAB_USERS=(admin demo nova placement glance neutron)

# nd_passwords: make the missing passwords, then read them all into ND_*_PASSWORD.
nd_passwords() {
  # the configs in $ND_ETC hold passwords too: only root reads them
  mkdir -p "$ND_ETC"
  chmod 700 "$ND_ETC"
  (umask 077; touch "$ND_PASSWORDS")
  chmod 600 "$ND_PASSWORDS"
  local u key
  for u in "${ND_LAB_USERS[@]}"; do
    key=ND_${u^^}_PASSWORD
    grep -q "^$key=" "$ND_PASSWORDS" \
      || echo "$key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >>"$ND_PASSWORDS"
  done
  # shellcheck disable=SC1090
  source "$ND_PASSWORDS"
}

# nd_password USER: that user's password.
nd_password() { local key=ND_${1^^}_PASSWORD; echo "${!key}"; }

# nd_keystoneauth SECTION USER: a keystoneauth password section for USER of
# project service, the way devstack's configure_keystoneauth writes it.
nd_keystoneauth() {
  printf '%s\n' "[$1]" "auth_type = password" "auth_url = $ND_AUTH_URL" \
    "username = $2" "password = $(nd_password "$2")" \
    "user_domain_name = Default" "project_name = service" \
    "project_domain_name = Default" "region_name = RegionOne"
}

# nd_authtoken USER: keystonemiddleware's [keystone_authtoken] for a service.
nd_authtoken() {
  nd_keystoneauth keystone_authtoken "$1"
  printf '%s\n' "interface = public" "www_authenticate_uri = $ND_AUTH_URL" \
    "service_token_roles_required = True"
}

# nd_token [USER [PROJECT]]: a token (default admin/admin), from the password file.
nd_token() {
  local user=${1:-admin} project=${2:-${1:-admin}}
  printf '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "%s", "domain": {"id": "default"}, "password": "%s"}}}, "scope": {"project": {"name": "%s", "domain": {"id": "default"}}}}}' \
    "$user" "$(nd_password "$user")" "$project" \
    | curl -s -m 30 -D - -o /dev/null -H 'Content-Type: application/json' -d @- "$ND_AUTH_URL/auth/tokens" \
    | awk 'tolower($1) == "x-subject-token:" {print $2}' | tr -d '\r'
}

nd_keystone_up() {
  local etc=$ND_ETC/keystone data=$ND_DATA/keystone bin=$ND_VENV/bin
  mkdir -p "$etc" "$data"
  install -d -m 700 "$data/fernet-keys" "$data/credential-keys"
  printf '%s\n' "[database]" "connection = $(nd_db_url keystone)" \
    "[token]" "provider = fernet" "expiration = $ND_TOKEN_EXPIRATION" \
    "[fernet_tokens]" "key_repository = $data/fernet-keys/" \
    "[credential]" "key_repository = $data/credential-keys/" \
    "[identity]" "password_hash_rounds = 4" \
    "[oslo_messaging_notifications]" "driver = noop" >"$etc/keystone.conf"
  local km=("$bin/keystone-manage" --config-file "$etc/keystone.conf")
  "${km[@]}" db_sync >"$ND_RUN/dbsync-keystone.log" 2>&1 || nd_die "keystone db_sync failed (see $ND_RUN/dbsync-keystone.log)"
  [ -e "$data/fernet-keys/0" ] || "${km[@]}" fernet_setup --keystone-user root --keystone-group root \
    >>"$ND_RUN/dbsync-keystone.log" 2>&1 || nd_die "keystone fernet_setup failed"
  [ -e "$data/credential-keys/0" ] || "${km[@]}" credential_setup --keystone-user root --keystone-group root \
    >>"$ND_RUN/dbsync-keystone.log" 2>&1 || nd_die "keystone credential_setup failed"
  # idempotent: creates what is missing, (re)sets the admin password
  "${km[@]}" bootstrap --bootstrap-password "$ND_ADMIN_PASSWORD" --bootstrap-username admin \
    --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
    --bootstrap-public-url "$ND_AUTH_URL" --bootstrap-internal-url "$ND_AUTH_URL" \
    --bootstrap-admin-url "$ND_AUTH_URL" >>"$ND_RUN/dbsync-keystone.log" 2>&1 \
    || nd_die "keystone bootstrap failed (see $ND_RUN/dbsync-keystone.log)"
  # keep-alive 75 s (gunicorn's default is 2 s): the services' keystoneauth
  # sessions reuse pooled connections, and one closed by the server as it was
  # reused failed a nova-api call with ConnectFailure (auth requests are not retried)
  nd_start_with keystone "$etc/keystone.conf" env OS_KEYSTONE_CONFIG_DIR="$etc" "$bin/gunicorn" \
    -b "$ND_BIND:$ND_KEYSTONE_PORT" -w 1 -k gthread --threads 4 --timeout 120 --keep-alive 75 --no-control-socket \
    --name keystone keystone_wsgi:application
  nd_wait_http keystone "$ND_AUTH_URL"
  "$bin/python" "$_ND_FILES/lab.py" register >>"$ND_RUN/lab-setup.log" 2>&1 \
    || { tail -5 "$ND_RUN/lab-setup.log" >&2; nd_die "keystone registration failed (see $ND_RUN/lab-setup.log)"; }
  nd_log "keystone up at $ND_AUTH_URL (tokens last ${ND_TOKEN_EXPIRATION}s)"
}
