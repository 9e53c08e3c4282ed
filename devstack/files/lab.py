#!/usr/bin/env python3
"""The lab's cloud set-up through the OpenStack APIs (run with the venv's Python).

    lab.py register   Keystone: projects service and demo, role service, the
                      service users (roles service and admin on project service),
                      user demo (member of demo), the catalog's services/endpoints;
                      with ND_HEAT_URL set also Heat's: user heat, roles
                      heat_stack_owner (demo has it) and heat_stack_user, domain
                      heat with heat_domain_admin, orchestration and cloudformation
    lab.py networks   Neutron: public (flat, external), private (demo's, IPv4 and
                      IPv6 subnets, shared with admin by RBAC), router1
    lab.py seed       flavor m1.tiny and the busybox image (docker save) in Glance
    lab.py seed-registry
                      the public image busybox-registry in Glance: property
                      docker_image_ref = ND_REGISTRY_IMAGE_REF (the lab registry's
                      <host:port>/lab/busybox@sha256:...), that text as its data
    lab.py demo NAME NETWORK
                      boot server NAME as user demo (NETWORK "none" boots without
                      a network), wait for ACTIVE, print its addresses

Everything is idempotent: what exists (by name) is kept. Settings come from the
environment that devstack/lib/*.sh exports (ND_AUTH_URL, ND_PASSWORDS, ND_*_URL).
No secret is printed.
"""
import json
import os
import subprocess
import sys
import time

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

REGION = 'RegionOne'
SERVICE_USERS = ('nova', 'placement', 'glance', 'neutron')


def log(msg):
    print('[lab.py] %s' % msg, file=sys.stderr, flush=True)


def passwords():
    out = {}
    with open(os.environ['ND_PASSWORDS']) as f:
        for line in f:
            k, _, v = line.strip().partition('=')
            if k and v:
                out[k] = v
    return out


def session(user, project):
    pw = passwords()['ND_%s_PASSWORD' % user.upper()]
    auth = v3.Password(auth_url=os.environ['ND_AUTH_URL'], username=user,
                       password=pw, user_domain_id='default',
                       project_name=project, project_domain_id='default')
    return ks_session.Session(auth=auth, timeout=120)


class Api(object):
    """JSON calls on one service of the catalog (or a fixed base URL)."""

    def __init__(self, sess, service_type=None, base=None, headers=None):
        self.sess, self.service_type, self.base = sess, service_type, base
        self.headers = headers or {}

    def call(self, method, path, body=None, ok=(200, 201, 202, 204), **kw):
        kw.setdefault('raise_exc', False)
        headers = dict(self.headers, **kw.pop('headers', {}))
        if self.base:
            url = self.base + path
        else:
            url = path
            kw['endpoint_filter'] = {'service_type': self.service_type,
                                     'interface': 'public',
                                     'region_name': REGION}
        r = self.sess.request(url, method, json=body, headers=headers, **kw)
        if r.status_code not in ok:
            raise SystemExit('%s %s: HTTP %s %s' % (method, path, r.status_code,
                                                    r.text[:500]))
        return r.json() if r.content and 'json' in r.headers.get(
            'Content-Type', '') else {}

    def get(self, path, **kw):
        return self.call('GET', path, **kw)

    def post(self, path, body, **kw):
        return self.call('POST', path, body, **kw)

    def delete(self, path, **kw):
        return self.call('DELETE', path, ok=(202, 204, 404), **kw)


def one(items, what):
    if len(items) > 1:
        raise SystemExit('more than one %s' % what)
    return items[0] if items else None


# ------------------------------------------------------------------- keystone
def register():
    pw = passwords()
    ks = Api(session('admin', 'admin'), base=os.environ['ND_AUTH_URL'])

    def find(coll, name, key=None, **filters):
        q = '&'.join('%s=%s' % kv for kv in dict(filters, name=name).items())
        return one(ks.get('/%s?%s' % (coll, q))[key or coll], '%s %s' % (coll, name))

    def ensure(coll, singular, name, body):
        found = find(coll, name)
        if found:
            return found
        log('keystone: create %s %s' % (singular, name))
        return ks.post('/' + coll, {singular: dict(body, name=name)})[singular]

    projects = {p: ensure('projects', 'project', p, {'domain_id': 'default'})
                for p in ('service', 'demo')}
    heat = bool(os.environ.get('ND_HEAT_URL'))
    roles = {r: ensure('roles', 'role', r, {})
             for r in ('admin', 'member', 'reader', 'service')
             + (('heat_stack_owner', 'heat_stack_user') if heat else ())}

    def user(name, project, role_names, domain_id='default'):
        u = find('users', name, domain_id=domain_id)
        body = {'password': pw['ND_%s_PASSWORD' % name.upper()]}
        if u:
            # the passwords file is the truth: keep keystone in line with it
            ks.call('PATCH', '/users/%s' % u['id'], {'user': body})
        else:
            log('keystone: create user %s' % name)
            body = dict(body, name=name, domain_id=domain_id)
            if project:
                body['default_project_id'] = projects[project]['id']
            u = ks.post('/users', {'user': body})['user']
        for r in role_names:
            ks.call('PUT', '/projects/%s/users/%s/roles/%s' % (
                projects[project]['id'], u['id'], roles[r]['id']))
        return u

    for name in SERVICE_USERS + (('heat',) if heat else ()):
        user(name, 'service', ('service', 'admin'))
    user('demo', 'demo', ('member',) + (('heat_stack_owner',) if heat else ()))
    if heat:
        # the domain of the users heat makes for stacks, with its admin (devstack's
        # create_heat_accounts)
        domain = ensure('domains', 'domain', 'heat', {
            'description': 'Owns users and projects created by heat'})
        admin = user('heat_domain_admin', None, (), domain_id=domain['id'])
        ks.call('PUT', '/domains/%s/users/%s/roles/%s' % (
            domain['id'], admin['id'], roles['admin']['id']))

    for stype, name, url in (
            ('compute', 'nova', os.environ['ND_NOVA_URL']),
            ('placement', 'placement', os.environ['ND_PLACEMENT_URL']),
            ('image', 'glance', os.environ['ND_GLANCE_URL']),
            ('network', 'neutron', os.environ['ND_NEUTRON_URL'])) + ((
            ('orchestration', 'heat', os.environ['ND_HEAT_URL']),
            ('cloudformation', 'heat-cfn', os.environ['ND_HEAT_CFN_URL'])) if heat else ()):
        svc = one(ks.get('/services?type=%s' % stype)['services'], 'service ' + stype)
        if not svc:
            log('keystone: create service %s (%s)' % (name, stype))
            svc = ks.post('/services', {'service': {'type': stype, 'name': name}})['service']
        have = ks.get('/endpoints?service_id=%s' % svc['id'])['endpoints']
        for iface in ('public', 'internal', 'admin'):
            mine = [e for e in have if e['interface'] == iface]
            if mine and mine[0]['url'] == url and mine[0].get('region_id') == REGION:
                continue
            for e in mine:
                ks.call('DELETE', '/endpoints/%s' % e['id'])
            ks.post('/endpoints', {'endpoint': {'service_id': svc['id'], 'interface': iface,
                                                'url': url, 'region_id': REGION}})
    log('keystone: users, projects and catalog in place')


def project_id(ks_api, name):
    return one(ks_api.get('/projects?name=%s' % name)['projects'], 'project ' + name)['id']


# -------------------------------------------------------------------- neutron
def networks():
    sess = session('admin', 'admin')
    ks = Api(sess, base=os.environ['ND_AUTH_URL'])
    demo, admin = project_id(ks, 'demo'), project_id(ks, 'admin')
    net = Api(sess, 'network')

    def find(coll, key, **filters):
        q = '&'.join('%s=%s' % kv for kv in filters.items())
        return one(net.get('/v2.0/%s?%s' % (coll, q))[key], '%s %s' % (key, filters))

    def ensure(coll, key, singular, body, **filters):
        found = find(coll, key, **filters)
        if found:
            return found
        log('neutron: create %s %s' % (singular, body.get('name', '')))
        return net.post('/v2.0/' + coll, {singular: body})[singular]

    # quotas out of the way, as devstack does for container-dense hosts
    unlimited = {'network': -1, 'subnet': -1, 'port': -1, 'router': -1, 'floatingip': -1,
                 'security_group': -1, 'security_group_rule': -1}
    for p in (demo, admin):
        net.call('PUT', '/v2.0/quotas/%s' % p, {'quota': unlimited})

    public = ensure('networks', 'networks', 'network', {
        'name': 'public', 'router:external': True, 'provider:network_type': 'flat',
        'provider:physical_network': 'public', 'project_id': admin}, name='public')
    pub_sub = ensure('subnets', 'subnets', 'subnet', {
        'name': 'public-subnet', 'network_id': public['id'], 'ip_version': 4,
        'cidr': '172.24.4.0/24', 'gateway_ip': '172.24.4.1', 'enable_dhcp': False,
        'allocation_pools': [{'start': '172.24.4.2', 'end': '172.24.4.254'}],
        'project_id': admin}, name='public-subnet', network_id=public['id'])
    private = ensure('networks', 'networks', 'network', {
        'name': 'private', 'project_id': demo}, name='private', project_id=demo)
    v4 = ensure('subnets', 'subnets', 'subnet', {
        'name': 'private-subnet', 'network_id': private['id'], 'ip_version': 4,
        'cidr': '10.0.0.0/26', 'project_id': demo},
        name='private-subnet', network_id=private['id'])
    v6 = ensure('subnets', 'subnets', 'subnet', {
        'name': 'ipv6-private-subnet', 'network_id': private['id'], 'ip_version': 6,
        'cidr': 'fd00:10::/64', 'ipv6_ra_mode': 'slaac', 'ipv6_address_mode': 'slaac',
        'project_id': demo}, name='ipv6-private-subnet', network_id=private['id'])
    # admin boots on private too: share it with the admin project by RBAC
    if not find('rbac-policies', 'rbac_policies', object_id=private['id'],
                action='access_as_shared', target_tenant=admin):
        log('neutron: share private with project admin (RBAC access_as_shared)')
        net.post('/v2.0/rbac-policies', {'rbac_policy': {
            'object_type': 'network', 'object_id': private['id'],
            'action': 'access_as_shared', 'target_tenant': admin, 'project_id': demo}})
    router = ensure('routers', 'routers', 'router', {
        'name': 'router1', 'project_id': demo,
        'external_gateway_info': {'network_id': public['id']}},
        name='router1', project_id=demo)
    if not router.get('external_gateway_info'):
        net.call('PUT', '/v2.0/routers/%s' % router['id'], {'router': {
            'external_gateway_info': {'network_id': public['id']}}})
    attached = {ip['subnet_id'] for p in net.get(
        '/v2.0/ports?device_id=%s&device_owner=network:router_interface' % router['id'])['ports']
        for ip in p['fixed_ips']}
    for sub in (v4, v6):
        if sub['id'] not in attached:
            log('neutron: router1 interface on %s' % sub['name'])
            net.call('PUT', '/v2.0/routers/%s/add_router_interface' % router['id'],
                     {'subnet_id': sub['id']})
    gw = net.get('/v2.0/routers/%s' % router['id'])['router']['external_gateway_info']
    ips = [i['ip_address'] for i in (gw or {}).get('external_fixed_ips', [])]
    log('neutron: public %s (%s), private %s, router1 gateway %s' % (
        public['id'], pub_sub['cidr'], private['id'], ', '.join(ips)))


# --------------------------------------------------------- flavor and image
def seed():
    sess = session('admin', 'admin')
    nova = Api(sess, 'compute', headers={'OpenStack-API-Version': 'compute 2.95'})
    # Nova's quotas out of the way too (10 instances, 20 cores by default): the
    # tests boot 20 at once, the benches 200, containers are small
    ks = Api(sess, base=os.environ['ND_AUTH_URL'])
    unlimited = {'instances': -1, 'cores': -1, 'ram': -1}
    for name in ('admin', 'demo'):
        p = project_id(ks, name)
        q = nova.get('/os-quota-sets/%s' % p)['quota_set']
        if any(q.get(k) != v for k, v in unlimited.items()):
            log('nova: unlimited instances, cores and ram for project %s' % name)
            nova.call('PUT', '/os-quota-sets/%s' % p, {'quota_set': unlimited})
    if not [f for f in nova.get('/flavors?is_public=None')['flavors'] if f['id'] == '1']:
        log('nova: create flavor m1.tiny')
        nova.post('/flavors', {'flavor': {'name': 'm1.tiny', 'id': '1', 'ram': 128,
                                          'vcpus': 1, 'disk': 1}})
    glance = Api(sess, 'image')
    ref = os.environ.get('ND_IMAGE_DOCKER_REF', 'busybox:latest')
    imgs = glance.get('/v2/images?name=busybox')['images']
    if imgs and imgs[0]['status'] == 'active':
        return
    img = imgs[0] if imgs else glance.post('/v2/images', {
        'name': 'busybox', 'container_format': 'docker', 'disk_format': 'raw',
        'visibility': 'public'})
    log('glance: upload busybox (docker save %s)' % ref)
    save = subprocess.Popen(['docker', 'save', ref], stdout=subprocess.PIPE)

    def chunks():
        while True:
            b = save.stdout.read(1 << 20)
            if not b:
                return
            yield b

    glance.call('PUT', '/v2/images/%s/file' % img['id'], ok=(204,),
                data=chunks(), headers={'Content-Type': 'application/octet-stream'})
    if save.wait() != 0:
        raise SystemExit('docker save %s failed' % ref)


def seed_registry():
    """Image busybox-registry: the daemon pulls docker_image_ref from the lab's
    registry; the data (the reference text, a few bytes) only makes it active.
    A changed reference updates the property (the data of an active image is
    immutable: it keeps the first one)."""
    ref = os.environ['ND_REGISTRY_IMAGE_REF']
    glance = Api(session('admin', 'admin'), 'image')
    img = one(glance.get('/v2/images?name=busybox-registry')['images'], 'image busybox-registry')
    if not img:
        log('glance: create busybox-registry (%s)' % ref)
        img = glance.post('/v2/images', {
            'name': 'busybox-registry', 'container_format': 'docker', 'disk_format': 'raw',
            'visibility': 'public', 'docker_image_ref': ref})
    elif img.get('docker_image_ref') != ref:
        log('glance: busybox-registry docker_image_ref %s -> %s' % (
            img.get('docker_image_ref'), ref))
        op = 'replace' if 'docker_image_ref' in img else 'add'
        img = glance.call('PATCH', '/v2/images/%s' % img['id'],
                          [{'op': op, 'path': '/docker_image_ref', 'value': ref}],
                          headers={'Content-Type': 'application/openstack-images-v2.1-json-patch'})
    if img['status'] == 'queued':
        log('glance: upload busybox-registry data (the reference, %d bytes)' % len(ref))
        glance.call('PUT', '/v2/images/%s/file' % img['id'], ok=(204,), data=ref.encode(),
                    headers={'Content-Type': 'application/octet-stream'})
    img = glance.get('/v2/images/%s' % img['id'])
    if img['status'] != 'active' or img.get('docker_image_ref') != ref:
        raise SystemExit('image busybox-registry %s: status %s, docker_image_ref %s' % (
            img['id'], img['status'], img.get('docker_image_ref')))
    log('glance: busybox-registry %s active, docker_image_ref %s' % (img['id'], ref))


# -------------------------------------------------------------- demo server
def demo(name, network):
    sess = session('demo', 'demo')
    nova = Api(sess, 'compute', headers={'OpenStack-API-Version': 'compute 2.95'})
    servers = nova.get('/servers?name=^%s$' % name)['servers']
    if servers:
        sid = servers[0]['id']
        status = nova.get('/servers/%s' % sid)['server']['status']
        if status == 'ERROR':
            # a demo server that failed before (an earlier run): boot it anew
            log('nova: demo server %s is in ERROR; deleting it to boot it again' % sid)
            nova.delete('/servers/%s' % sid)
            end = time.time() + float(os.environ.get('ND_WAIT', '120'))
            while nova.get('/servers?name=^%s$' % name)['servers'] and time.time() < end:
                time.sleep(1)
            servers = []
        elif status == 'SHUTOFF':
            # stopped meanwhile (a restart of the host's Docker, a user): start it
            log('nova: starting the stopped demo server %s' % sid)
            nova.post('/servers/%s/action' % sid, {'os-start': None})
    if not servers:
        glance = Api(sess, 'image')
        image = one(glance.get('/v2/images?name=busybox')['images'], 'image busybox')
        if network == 'none':
            nets = 'none'
        else:
            n = one(Api(sess, 'network').get('/v2.0/networks?name=%s' % network)['networks'],
                    'network ' + network)
            if not n:
                raise SystemExit('no network %s' % network)
            nets = [{'uuid': n['id']}]
        log('nova: boot server %s (network %s) as user demo' % (name, network))
        sid = nova.post('/servers', {'server': {
            'name': name, 'imageRef': image['id'], 'flavorRef': '1',
            'networks': nets}})['server']['id']
    end = time.time() + float(os.environ.get('ND_WAIT', '120'))
    while True:
        s = nova.get('/servers/%s' % sid)['server']
        if s['status'] in ('ACTIVE', 'ERROR') or time.time() > end:
            break
        time.sleep(1)
    addrs = '; '.join('%s: %s' % (net, ', '.join(a['addr'] for a in lst))
                      for net, lst in s.get('addresses', {}).items()) or 'no addresses'
    print(json.dumps({'id': sid, 'status': s['status'], 'addresses': addrs,
                      'fault': s.get('fault', {}).get('message')}))
    return 0 if s['status'] == 'ACTIVE' else 1


def main(argv):
    try:
        if argv[1:2] == ['register']:
            register()
        elif argv[1:2] == ['networks']:
            networks()
        elif argv[1:2] == ['seed']:
            seed()
        elif argv[1:2] == ['seed-registry']:
            seed_registry()
        elif argv[1:2] == ['demo'] and len(argv) == 4:
            return demo(argv[2], argv[3])
        else:
            raise SystemExit(__doc__)
    except ks_exc.ClientException as e:
        raise SystemExit('%s: %s' % (type(e).__name__, e))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
