"""Python oslo.messaging peer for the Rust RPC integration tests.

  rpc_peer.py client URL CALLS_JSON   run calls/casts in order, print one JSON line
                                      per entry: {"ok": result} or {"error": {...}}
  rpc_peer.py server URL TOPICS HOST [durable|quorum]
                                      run an RPC server (version 3.0) for the
                                      comma-separated TOPICS on HOST; prints READY,
                                      serves until stdin closes.

The control exchange is "nova", as Nova's. The client re-raises remote
exceptions of nova.exception only, as Nova does (allowed_remote_exmods).
"""

import json
import sys
import time

from oslo_config import cfg
import oslo_messaging as messaging

messaging.set_transport_defaults('nova')


def transport(url, mode=None):
    conf = cfg.CONF
    conf([], project='rpc-peer')
    t = messaging.get_rpc_transport(conf, url=url,
                                    allowed_remote_exmods=['nova.exception'])
    if mode == 'durable':
        conf.set_override('amqp_durable_queues', True,
                          group='oslo_messaging_rabbit')
    elif mode == 'quorum':
        conf.set_override('rabbit_quorum_queue', True,
                          group='oslo_messaging_rabbit')
    return t


def describe(e):
    cls = type(e)
    return {
        'class': cls.__name__,
        'module': cls.__module__,
        'mro': ['%s.%s' % (c.__module__, c.__name__) for c in cls.__mro__],
        'exc_type': getattr(e, 'exc_type', None),
        'message': str(e),
        'kwargs': getattr(e, 'kwargs', None),
    }


def client(url, calls, mode=None):
    t = transport(url, mode)
    for c in calls:
        target = messaging.Target(topic=c['topic'], server=c.get('server'),
                                  namespace=c.get('namespace'),
                                  version=c.get('version', '6.0'),
                                  fanout=c.get('fanout', False))
        cl = messaging.get_rpc_client(
            t, target, timeout=c.get('timeout', 15),
            call_monitor_timeout=c.get('call_monitor_timeout'))
        ctxt = c.get('ctxt', {})
        try:
            if c.get('cast') or c.get('fanout'):
                cl.cast(ctxt, c['method'], **c.get('args', {}))
                out = {'ok': None}
            else:
                out = {'ok': cl.call(ctxt, c['method'], **c.get('args', {}))}
        except Exception as e:  # noqa: BLE001 -- reported to the Rust test
            out = {'error': describe(e)}
        print(json.dumps(out), flush=True)
    t.cleanup()


class ConductorLike(object):
    target = messaging.Target(version='3.0')

    def echo(self, ctxt, value):
        return {'value': value, 'user_id': ctxt.get('user_id'),
                'request_id': ctxt.get('request_id')}

    def fail(self, ctxt, instance_uuid):
        from nova import exception
        raise exception.InstanceNotFound(instance_id=instance_uuid)

    def slow(self, ctxt, secs):
        time.sleep(secs)
        return 'done'


def server(url, topics, host, mode=None):
    t = transport(url, mode)
    servers = []
    for topic in topics.split(','):
        target = messaging.Target(topic=topic, server=host)
        s = messaging.get_rpc_server(t, target, [ConductorLike()],
                                     executor='threading')
        s.start()
        servers.append(s)
    print('READY', flush=True)
    sys.stdin.read()
    for s in servers:
        s.stop()
    for s in servers:
        s.wait()
    t.cleanup()


if __name__ == '__main__':
    if sys.argv[1] == 'client':
        client(sys.argv[2], json.loads(sys.argv[3]),
               sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        server(sys.argv[2], sys.argv[3], sys.argv[4],
               sys.argv[5] if len(sys.argv) > 5 else None)
    sys.stdout.flush()
