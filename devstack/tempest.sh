#!/usr/bin/env bash
# Tempest 47.0.0's compute API tests against the running local all-in-one
# (devstack/stack.sh first): tempest.api.compute without the slow ones, with
# Neutron, dynamic credentials (a project, user, network and router per test
# class) and the compute feature flags of a container driver
# (devstack/files/tempest.conf.in), minus devstack/files/tempest-exclude.txt.
# On a fresh Debian machine, as root; installs Tempest into a venv of its own.
#   ND_STATE                state directory of the lab (default /tmp/nova-docker-stack)
#   ND_TEMPEST_REGEX        tests to run (default ^tempest\.api\.compute\.)
#   ND_TEMPEST_CONCURRENCY  workers (default 2)
#   ND_TEMPEST_VENV         default $ND_STATE/tempest-venv
# The workspace (tempest.conf, logs/tempest.log, the stestr repository with every
# run) is $ND_STATE/tempest. Prints "tempest: N passed, N failed, N skipped" and
# the failing test ids; exits non-zero when a test failed.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/devstack/lib/functions.sh"
source "$TOP/devstack/lib/controlplane.sh"

TEMPEST_VERSION=47.0.0
V=${ND_TEMPEST_VENV:-$ND_STATE/tempest-venv}
WS=$ND_STATE/tempest
REGEX=${ND_TEMPEST_REGEX:-'^tempest\.api\.compute\.'}
EXCLUDE_REGEX='\[.*\bslow\b.*\]'
EXCLUDE_LIST=$TOP/devstack/files/tempest-exclude.txt
CONCURRENCY=${ND_TEMPEST_CONCURRENCY:-2}

# the lab must be up: Keystone answers and our compute host reports up
[ -r "$ND_PASSWORDS" ] || nd_die "no $ND_PASSWORDS: run devstack/stack.sh first"
# shellcheck disable=SC1090
source "$ND_PASSWORDS"
curl -s -m 10 "$ND_AUTH_URL" | grep -q '"version"' || nd_die "Keystone does not answer at $ND_AUTH_URL: run devstack/stack.sh first"
token=$(nd_token admin)
[ -n "$token" ] || nd_die "no admin token from Keystone"
services=$(curl -s -m 30 -H "X-Auth-Token: $token" "$ND_NOVA_URL/os-services?binary=nova-compute")
echo "$services" | "$ND_VENV/bin/python" -c '
import json, sys
host = sys.argv[1]
svcs = json.load(sys.stdin)["services"]
if not any(s["host"] == host and s["state"] == "up" for s in svcs):
    sys.exit("nova-compute on %s is not up" % host)
others = [s["host"] for s in svcs if s["host"] != host and s["state"] == "up" and s["status"] == "enabled"]
if others:
    print("[tempest.sh] warning: other compute hosts are up too (%s): servers may land there" % ", ".join(others), file=sys.stderr)
' "$ND_HOST" || nd_die "run devstack/stack.sh first (see $ND_RUN/nova-docker-compute.log)"

# Tempest in its own venv: its pins need not agree with the lab venv's
if ! "$V/bin/tempest" --version 2>/dev/null | grep -qx "tempest $TEMPEST_VERSION"; then
  nd_apt_install python3-venv
  nd_log "installing tempest $TEMPEST_VERSION into $V"
  [ -x "$V/bin/python" ] || python3 -m venv "$V" || nd_die "python3 -m venv $V failed"
  "$V/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  "$V/bin/pip" install -q "tempest==$TEMPEST_VERSION" >"$ND_STATE/tempest-pip.log" 2>&1 \
    || { tail -20 "$ND_STATE/tempest-pip.log" >&2; nd_die "pip install tempest failed (see $ND_STATE/tempest-pip.log)"; }
fi
if [ ! -f "$WS/.stestr.conf" ]; then
  rm -rf "$WS"
  "$V/bin/tempest" init "$WS" >/dev/null || nd_die "tempest init $WS failed"
fi
mkdir -p "$WS/logs" "$WS/lock"

# what tempest.conf needs from the lab (and the second flavor and image it wants)
prep=$(PYTHONDONTWRITEBYTECODE=1 "$ND_VENV/bin/python" "$TOP/devstack/files/tempest_prep.py") || nd_die "tempest_prep.py failed"
declare -A P=([WORKSPACE]=$WS [AUTH_URL]=$ND_AUTH_URL [ADMIN_PASSWORD]=$ND_ADMIN_PASSWORD)
while IFS='=' read -r k v; do P[$k]=$v; done <<<"$prep"
conf=$(cat "$TOP/devstack/files/tempest.conf.in")
for k in "${!P[@]}"; do conf=${conf//@$k@/${P[$k]}}; done
if grep -v '^#' <<<"$conf" | grep -q '@[A-Z_]*@'; then nd_die "tempest.conf: unfilled $(grep -v '^#' <<<"$conf" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ')"; fi
(umask 077; printf '%s\n' "$conf" >"$WS/etc/tempest.conf")

nd_log "tempest run --concurrency $CONCURRENCY --regex '$REGEX' --exclude-regex '$EXCLUDE_REGEX' --exclude-list $EXCLUDE_LIST"
out=$WS/logs/run-$(date +%Y%m%d-%H%M%S).log
t0=$SECONDS
set +e
(cd "$WS" && "$V/bin/tempest" run --concurrency "$CONCURRENCY" --regex "$REGEX" \
   --exclude-regex "$EXCLUDE_REGEX" --exclude-list "$EXCLUDE_LIST") >"$out" 2>&1
rc=$?
set -e
wall=$((SECONDS - t0))
count() { sed -n "s/^ - $1: *\([0-9]*\).*/\1/p" "$out" | tail -1; }
passed=$(count Passed) skipped=$(count Skipped) failed=$(count Failed)
if [ -z "$passed" ]; then
  tail -30 "$out" >&2
  nd_die "tempest run gave no totals (rc $rc; see $out)"
fi
if [ "${failed:-0}" != 0 ]; then
  echo "failing tests:"
  (cd "$WS" && "$V/bin/stestr" failing --list 2>/dev/null) | sed 's/^/  /'
fi
nd_log "output $out, stestr repository $WS/.stestr, tempest log $WS/logs/tempest.log"
echo "tempest wall time: ${wall}s (concurrency $CONCURRENCY)"
echo "tempest: $passed passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit $rc
