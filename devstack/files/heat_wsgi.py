"""gunicorn entry point for heat-api (ND_HEAT_APP=api) and heat-api-cfn
(ND_HEAT_APP=cfn): heat's WSGI init parses sys.argv with oslo.config, which
would choke on gunicorn's own arguments, so replace them by the config file
(ND_HEAT_CONF)."""
import os
import sys

sys.argv = [sys.argv[0], '--config-file', os.environ['ND_HEAT_CONF']]
if os.environ.get('ND_HEAT_APP', 'api') == 'cfn':
    from heat.wsgi.cfn import application  # noqa: E402,F401
else:
    from heat.wsgi.api import application  # noqa: E402,F401
