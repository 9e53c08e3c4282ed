# Set-up of the browser tests (tests/e2e_horizon.rs), sourced by
# devstack/run-tests.sh after the control plane is up: Horizon running (as
# stack.sh starts it), headless Chromium and its driver from Debian's packages
# (no browser is downloaded at run time), selenium from PyPI in Horizon's venv.
# The test finds them through NOVA_DOCKER_E2E_HORIZON_{URL,VENV} (nd_export_lab_env)
# and NOVA_DOCKER_E2E_CHROMIUM / NOVA_DOCKER_E2E_CHROMEDRIVER.

nd_apt_install chromium chromium-driver fonts-dejavu-core
nd_horizon_up
"$ND_HORIZON_VENV/bin/python" -c 'import selenium, sys; sys.exit(selenium.__version__ != "4.51.0")' 2>/dev/null \
  || { nd_log "installing selenium 4.51.0 into $ND_HORIZON_VENV"; nd_horizon_pip selenium==4.51.0; }
# the real binary (/usr/bin/chromium is a shell wrapper) and Debian's driver:
# with both given, Selenium Manager never looks for (or downloads) a browser
export NOVA_DOCKER_E2E_CHROMIUM=/usr/lib/chromium/chromium NOVA_DOCKER_E2E_CHROMEDRIVER=/usr/bin/chromedriver
[ -x "$NOVA_DOCKER_E2E_CHROMIUM" ] && [ -x "$NOVA_DOCKER_E2E_CHROMEDRIVER" ] \
  || nd_die "browser tests: $NOVA_DOCKER_E2E_CHROMIUM or $NOVA_DOCKER_E2E_CHROMEDRIVER missing"
nd_log "browser tests: $("$NOVA_DOCKER_E2E_CHROMIUM" --version 2>/dev/null), selenium 4.51.0, Horizon at $ND_HORIZON_URL"
