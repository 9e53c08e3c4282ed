"""gunicorn entry point for Horizon. With DEBUG = False Django serves no
/static/, and the lab has no Apache in front: Django's own static handler (what
`runserver --insecure` uses) serves the collected and compressed files."""
import os

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'openstack_dashboard.settings')

from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

application = StaticFilesHandler(get_wsgi_application())
