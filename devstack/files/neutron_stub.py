#!/usr/bin/env python3
"""A read-only Neutron API for the Keystone-less lab: every collection is empty.

nova-api and nova-conductor ask Neutron about ports, networks, security groups
and extensions even for servers booted with `--nic none`; this answers them.
Servers in this lab boot without Neutron networks (or join a Docker network
through our [docker] default_network).
"""
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLLECTIONS = {
    'ports': 'ports', 'networks': 'networks', 'subnets': 'subnets',
    'security-groups': 'security_groups', 'floatingips': 'floatingips',
    'extensions': 'extensions', 'trunks': 'trunks', 'qos/policies': 'policies',
    'segments': 'segments', 'routers': 'routers',
    'address-scopes': 'address_scopes',
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _reply(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drain(self):
        n = int(self.headers.get('Content-Length') or 0)
        if n:
            self.rfile.read(n)

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path.strip('/')
        if path in ('', 'v2.0'):
            return self._reply(200, {'versions': [{'id': 'v2.0', 'status': 'CURRENT'}]})
        if path.startswith('v2.0/'):
            path = path[len('v2.0/'):]
        path = path[:-5] if path.endswith('.json') else path
        if path in COLLECTIONS:
            return self._reply(200, {COLLECTIONS[path]: []})
        if path.startswith('quotas'):
            return self._reply(200, {'quota': {}})
        return self._reply(404, {'NeutronError': {'type': 'NotFound', 'message': path}})

    def do_DELETE(self):
        self._drain()
        self._reply(404, {'NeutronError': {'type': 'NotFound', 'message': self.path}})

    def _refuse(self):
        self._drain()
        self._reply(403, {'NeutronError': {'type': 'Forbidden',
                                           'message': 'read-only lab Neutron'}})

    do_POST = do_PUT = _refuse


if __name__ == '__main__':
    host, _, port = sys.argv[1].rpartition(':')
    ThreadingHTTPServer((host or '127.0.0.1', int(port)), Handler).serve_forever()
