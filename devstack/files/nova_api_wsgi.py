"""gunicorn entry point for nova-api: nova parses sys.argv with oslo.config,
which would choke on gunicorn's own arguments, so hide them first."""
import sys

sys.argv = sys.argv[:1]
from nova.wsgi.osapi_compute import application  # noqa: E402,F401
