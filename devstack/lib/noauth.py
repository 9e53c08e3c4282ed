"""Keystone-less identity for the test stack's Glance (and any paste pipeline).

A paste filter that sits where keystonemiddleware's auth_token would and fills
the X-* identity headers from the token itself: "user[:project]". No token, or
keystoneauth's auth_type=none placeholder "notused", means "admin:admin". The
user "admin" gets the roles admin,member,reader; anyone else member,reader.
Glance's own 'context' middleware then builds the request context as usual.
"""
import webob.dec

_IDENTITY_HEADERS = ('X-User-Id', 'X-User', 'X-User-Name', 'X-Project-Id',
                     'X-Project-Name', 'X-Tenant-Id', 'X-Tenant',
                     'X-Identity-Status', 'X-Service-Catalog', 'X-Roles')


class NoAuth(object):
    def __init__(self, app, default_token):
        self.app = app
        self.default_token = default_token

    @webob.dec.wsgify
    def __call__(self, req):
        token = req.headers.get('X-Auth-Token') or ''
        if token in ('', 'notused'):
            token = self.default_token
        user, _sep, project = token.partition(':')
        project = project or user
        for name in _IDENTITY_HEADERS:
            req.headers.pop(name, None)
        req.headers.update({
            'X-Auth-Token': token,
            'X-User-Id': user,
            'X-User-Name': user,
            'X-Project-Id': project,
            'X-Project-Name': project,
            'X-User-Domain-Id': 'default',
            'X-Project-Domain-Id': 'default',
            'X-Roles': 'admin,member,reader' if user == 'admin' else 'member,reader',
            'X-Identity-Status': 'Confirmed',
        })
        return req.get_response(self.app)


def filter_factory(global_conf, **local_conf):
    default_token = local_conf.get('default_token', 'admin:admin')
    return lambda app: NoAuth(app, default_token)
