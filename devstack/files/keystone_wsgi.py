"""gunicorn entry point for Keystone: like nova-api, Keystone parses sys.argv
with oslo.config, which would choke on gunicorn's own arguments, so hide them
first. The config comes from OS_KEYSTONE_CONFIG_DIR (keystone.conf in it)."""
import sys

sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
