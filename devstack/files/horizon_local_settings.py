# Horizon's local_settings.py for the lab (devstack/lib/horizon.sh copies it to
# <venv>/.../openstack_dashboard/local/local_settings.py). The values come from
# the environment horizon.sh gives gunicorn and django-admin:
#   ND_HORIZON_DIR   Horizon's state: static files, the secret key
#   ND_AUTH_URL      Keystone's v3 URL
# No secret is written here: the session key is made once in ND_HORIZON_DIR.
import os

from horizon.utils import secret_key

_DIR = os.environ.get('ND_HORIZON_DIR', '/tmp/nova-docker-stack/horizon')

DEBUG = False
# the lab listens on one address; any Host header that reaches it is ours
ALLOWED_HOSTS = ['*']
SECRET_KEY = secret_key.generate_or_read_from_file(
    os.path.join(_DIR, '.secret_key_store'))
STATIC_ROOT = os.path.join(_DIR, 'static')
# collectstatic and compress run at set-up (horizon.sh), not per request
COMPRESS_OFFLINE = True

OPENSTACK_HOST = '127.0.0.1'
OPENSTACK_KEYSTONE_URL = os.environ.get('ND_AUTH_URL', 'http://127.0.0.1:5000/v3')
OPENSTACK_KEYSTONE_DEFAULT_ROLE = 'member'
OPENSTACK_KEYSTONE_DEFAULT_DOMAIN = 'Default'

# Sessions in the one worker's memory (gunicorn runs exactly one worker; a
# restart logs everybody out). No memcached to run.
SESSION_ENGINE = 'django.contrib.sessions.backends.cache'
CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}

# the daemon serves Nova's serial console (nova-serialproxy, websocket); the
# instance's Console tab shows it
CONSOLE_TYPE = 'SERIAL'
# the Console tab shows the serial console (a page of Horizon's own) in an
# iframe: Django's default X-Frame-Options DENY would block it
X_FRAME_OPTIONS = 'SAMEORIGIN'

# no Cinder in the lab: boot from the image itself
LAUNCH_INSTANCE_DEFAULTS = {
    'create_volume': False,
    'hide_create_volume': True,
    'disable_volume': True,
    'disable_volume_snapshot': True,
    'config_drive': False,
}

TIME_ZONE = 'UTC'
