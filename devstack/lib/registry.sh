# The lab's container registry (sourced by controlplane.sh, after keystone.sh):
# Debian's docker-registry 2.8.2 (Docker's "distribution"), not its packaged
# service: /usr/bin/docker-registry serve under nd_start_with, its log (the app
# log and the access log) in $ND_RUN/registry.log. TLS with a server
# certificate of a lab CA made once with openssl, basic auth (htpasswd, bcrypt)
# for user nova-docker, whose password is made once into $ND_PASSWORDS
# (ND_REGISTRY_PASSWORD). The lab's test image is pushed as
# $ND_REGISTRY_ADDR/lab/busybox:latest; devstack/files/lab.py seed-registry
# registers it in Glance as image busybox-registry, property docker_image_ref.
#   ND_REGISTRY_PORT   default 5443 (on ND_BIND)
#
# Files ($ND_REGISTRY_DIR = $ND_ETC/registry; $ND_ETC is mode 700):
#   config.yml           the registry's configuration
#   ca.pem, ca-key.pem   the lab CA (made once; ca.pem is what clients trust)
#   server.pem, server-key.pem
#                        the registry's certificate (SAN IP:127.0.0.1, DNS:localhost
#                        and ND_BIND, an IP or a DNS name), made again when the SAN or the CA changed
#                        or it expires within 30 days
#   htpasswd             user nova-docker, bcrypt
#   auth.json            Docker's config.json format, mode 600:
#                        {"auths": {"<host:port>": {"auth": "<base64 user:password>"}}}
#   busybox.digest       the manifest digest of lab/busybox:latest (sha256:...)
#   docker/              the docker CLI's config dir for the login and push
# Storage: $ND_DATA/registry. $ND_PASSWORDS also keeps ND_REGISTRY_SECRET_KEY,
# the registry's http.secret (it signs the upload state), made once.
#
# The log ($ND_REGISTRY_LOG): the registry's own logrus lines (level info: for
# each request an "authorized request" and a "response completed" line with
# http.request.method=GET http.request.uri=/v2/...; warnings for refused
# credentials) and, from the same process, one Combined Log Format line per
# request, 401s included (HTTP/2.0 for a client that offers h2, as curl does;
# the user field is "-": basic auth is not logged):
#   127.0.0.1 - - [02/Dec/2026:01:21:04 +0000] "GET /v2/lab/busybox/manifests/sha256:8d3a...8931 HTTP/2.0" 200 527 "" "curl/7.88.1"
#   127.0.0.1 - - [02/Dec/2026:01:21:05 +0000] "GET /v2/lab/busybox/blobs/sha256:62f3...0959 HTTP/2.0" 200 1069102 "" "curl/7.88.1"
# Only these lines have the method and the path together ("GET /v2/<name>/...):
# count those to count each request once.

ND_REGISTRY_PORT=${ND_REGISTRY_PORT:-5443}
ND_REGISTRY_ADDR=$ND_BIND:$ND_REGISTRY_PORT
ND_REGISTRY_USER=nova-docker
ND_REGISTRY_IMAGE=lab/busybox
ND_REGISTRY_DIR=$ND_ETC/registry
ND_REGISTRY_CA=$ND_REGISTRY_DIR/ca.pem
ND_REGISTRY_AUTH_FILE=$ND_REGISTRY_DIR/auth.json
ND_REGISTRY_LOG=$ND_RUN/registry.log
# the password of the registry's user nova-docker: ND_REGISTRY_PASSWORD
ND_LAB_USERS+=(registry)

# _nd_registry_curl ARGS...: curl with the lab CA and the credentials (given on
# standard input, not on the command line).
_nd_registry_curl() {
  printf 'user = "%s:%s"\n' "$ND_REGISTRY_USER" "$ND_REGISTRY_PASSWORD" \
    | curl -s -m 30 --cacert "$ND_REGISTRY_CA" -K - "$@"
}

# The lab CA (once) and the registry's server certificate.
nd_registry_certs() {
  local d=$ND_REGISTRY_DIR san
  if [ ! -s "$d/ca.pem" ] || [ ! -s "$d/ca-key.pem" ]; then
    nd_log "registry: making the lab CA ($d/ca.pem)"
    printf '%s\n' "[req]" "distinguished_name = dn" "prompt = no" "[dn]" "CN = nova-docker lab CA" \
      "[ext]" "basicConstraints = critical, CA:TRUE" "keyUsage = critical, keyCertSign, cRLSign" \
      "subjectKeyIdentifier = hash" >"$d/ca.cnf"
    (umask 077; openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
      -config "$d/ca.cnf" -extensions ext -keyout "$d/ca-key.pem" -out "$d/ca.pem" \
      >>"$d/openssl.log" 2>&1) || nd_die "registry: openssl could not make the CA (see $d/openssl.log)"
    chmod 644 "$d/ca.pem"
    rm -f "$d/server.pem"
  fi
  san="IP:127.0.0.1, DNS:localhost"
  if [[ $ND_BIND =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then
    [ "$ND_BIND" = 127.0.0.1 ] || san="IP:$ND_BIND, $san"
  elif [ "$ND_BIND" != localhost ]; then
    san="DNS:$ND_BIND, $san"
  fi
  if [ -s "$d/server.pem" ] && [ -s "$d/server-key.pem" ] && [ "$(cat "$d/server.san" 2>/dev/null)" = "$san" ] \
     && openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null 2>&1 \
     && openssl x509 -in "$d/server.pem" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
    return 0
  fi
  nd_log "registry: server certificate for $san"
  printf '%s\n' "[req]" "distinguished_name = dn" "prompt = no" "[dn]" "CN = $ND_BIND" \
    "[ext]" "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature, keyEncipherment" \
    "extendedKeyUsage = serverAuth" "subjectAltName = $san" \
    "subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid, issuer" >"$d/server.cnf"
  (umask 077
   openssl req -new -nodes -newkey rsa:2048 -sha256 -config "$d/server.cnf" \
     -keyout "$d/server-key.pem" -out "$d/server.csr" >>"$d/openssl.log" 2>&1 \
   && openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
     -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 825 -sha256 \
     -extfile "$d/server.cnf" -extensions ext -out "$d/server.pem" >>"$d/openssl.log" 2>&1) \
    || nd_die "registry: openssl could not make the server certificate (see $d/openssl.log)"
  rm -f "$d/server.csr"
  echo "$san" >"$d/server.san"
}

# The config, the htpasswd file, auth.json. The files change only when their
# content must (the running registry is restarted when one does).
nd_registry_write_config() {
  local d=$ND_REGISTRY_DIR
  # upload state is signed with this; made once (a new one would restart the registry)
  grep -q '^ND_REGISTRY_SECRET_KEY=' "$ND_PASSWORDS" \
    || echo "ND_REGISTRY_SECRET_KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >>"$ND_PASSWORDS"
  # shellcheck disable=SC1090
  source "$ND_PASSWORDS"
  # bcrypt; the password on standard input (-i), not in the process list
  if ! htpasswd -vi "$d/htpasswd" "$ND_REGISTRY_USER" <<<"$ND_REGISTRY_PASSWORD" >/dev/null 2>&1; then
    (umask 077; htpasswd -niB "$ND_REGISTRY_USER" <<<"$ND_REGISTRY_PASSWORD" | grep . >"$d/htpasswd.new") \
      || nd_die "registry: htpasswd failed"
    mv "$d/htpasswd.new" "$d/htpasswd"
  fi
  local auth
  auth=$(printf '%s:%s' "$ND_REGISTRY_USER" "$ND_REGISTRY_PASSWORD" | base64 -w0)
  (umask 077; printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$ND_REGISTRY_ADDR" "$auth" >"$d/auth.json.new")
  if cmp -s "$d/auth.json.new" "$d/auth.json"; then rm -f "$d/auth.json.new"; else mv "$d/auth.json.new" "$d/auth.json"; fi
  chmod 600 "$d/auth.json"
  (umask 077; cat >"$d/config.yml.new" <<CONF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $ND_DATA/registry
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: $ND_REGISTRY_ADDR
  secret: $ND_REGISTRY_SECRET_KEY
  tls:
    certificate: $d/server.pem
    key: $d/server-key.pem
    minimumtls: tls1.2
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: nova-docker-lab
    path: $d/htpasswd
CONF
  )
  if cmp -s "$d/config.yml.new" "$d/config.yml"; then rm -f "$d/config.yml.new"; else mv "$d/config.yml.new" "$d/config.yml"; fi
}

# The registry's own service, if the package's maintainer scripts started it
# (it listens on :5000, Keystone's port): stopped, and not started at boot.
_nd_registry_stop_packaged() {
  if [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet docker-registry 2>/dev/null || systemctl is-active --quiet docker-registry 2>/dev/null; then
      nd_log "registry: stopping and disabling Debian's docker-registry service"
      systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
  elif [ -f /var/run/docker-registry.pid ] && kill -0 "$(cat /var/run/docker-registry.pid)" 2>/dev/null; then
    nd_log "registry: stopping Debian's docker-registry service"
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || kill "$(cat /var/run/docker-registry.pid)" 2>/dev/null || true
    if command -v update-rc.d >/dev/null; then update-rc.d docker-registry disable >/dev/null 2>&1 || true; fi
  fi
}

# nd_registry_push [SOURCE]: push SOURCE (default busybox:latest, the lab's test
# image) as $ND_REGISTRY_ADDR/lab/busybox:latest unless the registry has it;
# its manifest digest goes to $ND_REGISTRY_DIR/busybox.digest.
nd_registry_push() {
  local src=${1:-busybox:latest} ref=$ND_REGISTRY_ADDR/$ND_REGISTRY_IMAGE:latest
  local d=$ND_REGISTRY_DIR have digest
  nd_build_test_image "$src"
  docker tag "$src" "$ref" || nd_die "docker tag $src $ref failed"
  # pushed before: the local image knows its digest in this registry, and the
  # registry's tag has it (a HEAD, no GET in the access log)
  have=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" \
         | sed -n "s|^$ND_REGISTRY_ADDR/$ND_REGISTRY_IMAGE@||p" | head -1)
  if [ -n "$have" ] && _nd_registry_curl -I -o /dev/null -w '%header{docker-content-digest}' \
       -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
       "https://$ND_REGISTRY_ADDR/v2/$ND_REGISTRY_IMAGE/manifests/latest" | grep -qx "$have"; then
    digest=$have
  else
    # the docker CLI's own config dir: root's ~/.docker stays as it was
    install -d -m 700 "$d/docker"
    docker --config "$d/docker" login --username "$ND_REGISTRY_USER" --password-stdin "$ND_REGISTRY_ADDR" \
      <<<"$ND_REGISTRY_PASSWORD" >>"$ND_RUN/registry-push.log" 2>&1 \
      || { tail -5 "$ND_RUN/registry-push.log" >&2; nd_die "registry: docker login to $ND_REGISTRY_ADDR failed (see $ND_RUN/registry-push.log)"; }
    nd_log "registry: docker push $ref"
    local out rc=0
    out=$(docker --config "$d/docker" push "$ref" 2>&1) || rc=$?
    printf '%s\n' "$out" >>"$ND_RUN/registry-push.log"
    [ $rc = 0 ] || { tail -5 "$ND_RUN/registry-push.log" >&2; nd_die "registry: docker push $ref failed (see $ND_RUN/registry-push.log)"; }
    # "latest: digest: sha256:... size: 527"
    digest=$(printf '%s\n' "$out" | sed -n 's/^latest: digest: \(sha256:[0-9a-f]\{64\}\) .*/\1/p' | tail -1)
  fi
  [[ $digest == sha256:* ]] || nd_die "registry: no manifest digest for $ref (see $ND_RUN/registry-push.log)"
  echo "$digest" >"$d/busybox.digest"
  nd_log "registry: $ND_REGISTRY_ADDR/$ND_REGISTRY_IMAGE@$digest"
}

# nd_registry_up [SOURCE]: the registry running with its config, the test image
# (SOURCE, default busybox:latest) pushed (idempotent).
nd_registry_up() {
  nd_apt_install docker-registry apache2-utils openssl curl
  _nd_registry_stop_packaged
  nd_passwords
  mkdir -p "$ND_REGISTRY_DIR" "$ND_DATA/registry" "$ND_RUN"
  nd_registry_certs
  nd_registry_write_config
  local d=$ND_REGISTRY_DIR
  if ! nd_alive registry && (exec 3<>"/dev/tcp/$ND_BIND/$ND_REGISTRY_PORT") 2>/dev/null; then
    nd_die "registry: $ND_REGISTRY_ADDR is taken by another process (set ND_REGISTRY_PORT)"
  fi
  nd_start_with registry "$d/config.yml $d/htpasswd $d/server.pem $d/server-key.pem" \
    /usr/bin/docker-registry serve "$d/config.yml"
  local end=$((SECONDS + ND_WAIT)) code
  until code=$(_nd_registry_curl -o /dev/null -w '%{http_code}' "https://$ND_REGISTRY_ADDR/v2/") && [ "$code" = 200 ]; do
    [ $SECONDS -lt $end ] || nd_die "registry did not answer at https://$ND_REGISTRY_ADDR/v2/ (HTTP $code; see $ND_REGISTRY_LOG)"
    nd_alive registry || { tail -5 "$ND_REGISTRY_LOG" >&2; nd_die "registry died (see $ND_REGISTRY_LOG)"; }
    sleep 0.3
  done
  # the Docker engine trusts the lab CA for this registry (a loopback registry
  # is insecure to Docker anyway; another address needs it)
  install -d "/etc/docker/certs.d/$ND_REGISTRY_ADDR"
  cmp -s "$d/ca.pem" "/etc/docker/certs.d/$ND_REGISTRY_ADDR/ca.crt" \
    || install -m 0644 "$d/ca.pem" "/etc/docker/certs.d/$ND_REGISTRY_ADDR/ca.crt"
  nd_registry_push "${1:-busybox:latest}"
  nd_log "registry up at https://$ND_REGISTRY_ADDR (user $ND_REGISTRY_USER, CA $ND_REGISTRY_CA, log $ND_REGISTRY_LOG)"
}

# nd_registry_seed: the public Glance image busybox-registry whose
# docker_image_ref is the pushed image by digest (lab.py seed-registry).
nd_registry_seed() {
  [ -s "$ND_REGISTRY_DIR/busybox.digest" ] || nd_die "registry: no $ND_REGISTRY_DIR/busybox.digest (nd_registry_up first)"
  ND_REGISTRY_IMAGE_REF="$ND_REGISTRY_ADDR/$ND_REGISTRY_IMAGE@$(cat "$ND_REGISTRY_DIR/busybox.digest")" \
    "$ND_VENV/bin/python" "$_ND_FILES/lab.py" seed-registry >>"$ND_RUN/lab-setup.log" 2>&1 \
    || { tail -5 "$ND_RUN/lab-setup.log" >&2; nd_die "image busybox-registry set-up failed (see $ND_RUN/lab-setup.log)"; }
}

# The [docker_registry] section of a compute host's nova.conf (nothing before
# the registry's files exist).
nd_registry_compute_section() {
  [ -s "$ND_REGISTRY_AUTH_FILE" ] && [ -s "$ND_REGISTRY_CA" ] || return 0
  printf '%s\n' "[docker_registry]" "auth_file = $ND_REGISTRY_AUTH_FILE" "ca_file = $ND_REGISTRY_CA"
}

# What the tests need to reach the registry (NOVA_DOCKER_E2E_REGISTRY*), once it
# has been set up; needs nd_passwords first.
nd_registry_export_env() {
  [ -s "$ND_REGISTRY_AUTH_FILE" ] && [ -s "$ND_REGISTRY_DIR/busybox.digest" ] || return 0
  export NOVA_DOCKER_E2E_REGISTRY="$ND_REGISTRY_ADDR" NOVA_DOCKER_E2E_REGISTRY_CA="$ND_REGISTRY_CA"
  export NOVA_DOCKER_E2E_REGISTRY_AUTH_FILE="$ND_REGISTRY_AUTH_FILE"
  export NOVA_DOCKER_E2E_REGISTRY_USER="$ND_REGISTRY_USER" NOVA_DOCKER_E2E_REGISTRY_PASSWORD="$ND_REGISTRY_PASSWORD"
  export NOVA_DOCKER_E2E_REGISTRY_LOG="$ND_REGISTRY_LOG" NOVA_DOCKER_E2E_REGISTRY_IMAGE="$ND_REGISTRY_IMAGE"
  NOVA_DOCKER_E2E_REGISTRY_DIGEST=$(cat "$ND_REGISTRY_DIR/busybox.digest")
  export NOVA_DOCKER_E2E_REGISTRY_DIGEST
  # the registry's storage (a test corrupts a blob there) and the docker CLI
  # config that is logged in to it (the tests push with it)
  export NOVA_DOCKER_E2E_REGISTRY_STORAGE="$ND_DATA/registry" NOVA_DOCKER_E2E_REGISTRY_DOCKER_CONFIG="$ND_REGISTRY_DIR/docker"
}

nd_registry_down() { nd_stop registry; }
