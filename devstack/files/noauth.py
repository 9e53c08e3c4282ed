"""Keystone-less authentication for the local all-in-one (paste filter).

Sits where keystonemiddleware's authtoken would. The token is "user[:project]"
(no token, or keystoneauth's "notused", means admin:admin); user "admin" gets the
roles admin,member,reader, anyone else member,reader. It sets the X-* headers
authtoken would set, so the services build their request context as usual.
Only for a lab on one machine: it trusts every caller.
"""
import webob.dec

_IDENTITY_HEADERS = ('X-User-Id', 'X-User', 'X-Project-Id', 'X-Tenant-Id',
                     'X-Tenant', 'X-Identity-Status', 'X-Service-Catalog')


class NoAuth(object):
    def __init__(self, app, default_token):
        self.app = app
        self.default_token = default_token

    @webob.dec.wsgify
    def __call__(self, req):
        token = req.headers.get('X-Auth-Token') or ''
        if token in ('', 'notused'):
            token = self.default_token
        user, _, project = token.partition(':')
        project = project or user
        for h in _IDENTITY_HEADERS:
            req.headers.pop(h, None)
        req.headers.setdefault(
            'X-Roles',
            'admin,member,reader' if user == 'admin' else 'member,reader')
        req.headers.update({
            'X-Auth-Token': token, 'X-User-Id': user, 'X-User-Name': user,
            'X-Project-Id': project, 'X-Project-Name': project,
            'X-User-Domain-Id': 'default', 'X-Project-Domain-Id': 'default',
            'X-Identity-Status': 'Confirmed',
        })
        return req.get_response(self.app)


def filter_factory(global_conf, **local_conf):
    token = local_conf.get('default_token', 'admin:admin')
    return lambda app: NoAuth(app, token)
