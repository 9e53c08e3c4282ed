"""A consumer of Nova's versioned notifications, as the cloud's telemetry is one:
oslo.messaging's notification listener on TOPIC, each notification checked with
Nova's own notification objects (the payload deserialized by
nova.objects.base.NovaObject.obj_from_primitive, which checks every field's type
and enum, and every field of the class set), one JSON line per notification to
OUT. Runs until SIGTERM.

    python notification_listener.py TRANSPORT_URL TOPIC OUT
"""
import json
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging
from oslo_versionedobjects import base as ovo_base

from nova import objects
from nova.objects import base as obase
import nova.notifications.objects.exception  # noqa: F401
import nova.notifications.objects.flavor  # noqa: F401
import nova.notifications.objects.instance  # noqa: F401
import nova.notifications.objects.keypair  # noqa: F401

objects.register_all()
obase.NovaObjectRegistry.register_notification_objects()
# Nova builds its payloads from an instance (their constructors take one); to
# read one back, as Nova's own sample tests do, they are made empty first
for _cls in obase.NovaObjectRegistry.notification_classes:
    _cls.__init__ = lambda self, *a, **k: ovo_base.VersionedObject.__init__(self)

url, topic, out = sys.argv[1:4]
lock = threading.Lock()


def check(payload):
    """What is wrong with the payload, by Nova's classes ('' if nothing)."""
    try:
        obj = obase.NovaObject.obj_from_primitive(payload)
    except Exception as e:  # noqa: BLE001 - the message is the finding
        return 'not a Nova object: %s: %s' % (type(e).__name__, e)
    missing = [f for f in obj.fields if not obj.obj_attr_is_set(f)]
    extra = sorted(set(payload['nova_object.data']) - set(obj.fields))
    if missing or extra:
        return 'fields missing %s, unknown %s' % (missing, extra)
    return ''


class Endpoint(object):
    def _record(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        line = {
            'priority': priority,
            'publisher_id': publisher_id,
            'event_type': event_type,
            'payload_name': payload.get('nova_object.name'),
            'payload_version': payload.get('nova_object.version'),
            'uuid': payload.get('nova_object.data', {}).get('uuid'),
            'request_id': payload.get('nova_object.data', {}).get('request_id'),
            'error': check(payload),
            'context_has_token': 'auth_token' in (ctxt or {}),
        }
        with lock, open(out, 'a') as f:
            f.write(json.dumps(line) + '\n')

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record('INFO', ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record('ERROR', ctxt, publisher_id, event_type, payload, metadata)


conf = cfg.ConfigOpts()
conf([], project='nd-notification-listener')
transport = oslo_messaging.get_notification_transport(conf, url=url)
listener = oslo_messaging.get_notification_listener(
    transport, [oslo_messaging.Target(topic=topic)], [Endpoint()],
    executor='threading')
listener.start()
print('listening', flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
listener.stop()
listener.wait()
