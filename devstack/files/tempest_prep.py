#!/usr/bin/env python3
"""What devstack/tempest.sh needs from the lab, made once (run with the lab venv's Python).

    tempest_prep.py     prints KEY=VALUE lines for tempest.conf:
                        PUBLIC_NETWORK_ID   the external network "public"
                        IMAGE_REF           the lab's busybox image
                        IMAGE_REF_ALT       busybox-alt, a second Glance image with the
                                            same data (rebuilds then change the image)
                        FLAVOR_REF          m1.tiny (id 1, made by stack.sh)
                        FLAVOR_REF_ALT      m1.micro (id 84, devstack's tempest flavor;
                                            made here, public, 1 vCPU, 192 MiB, 1 GiB)
                        NETWORK_EXTENSIONS  Neutron's extension aliases, comma-separated,
                                            less auto-allocated-topology (not set up)

Only adds what is missing (by name/id); changes nothing the lab made. Reads
ND_AUTH_URL and ND_PASSWORDS (exported by devstack/lib/controlplane.sh).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402  (the lab's password file and Keystone session)

REGION = lab.REGION
ALT_FLAVOR = {'name': 'm1.micro', 'id': '84', 'ram': 192, 'vcpus': 1, 'disk': 1}


def log(msg):
    print('[tempest_prep] %s' % msg, file=sys.stderr, flush=True)


def call(sess, stype, method, path, ok=(200, 201, 202, 204), **kw):
    kw.setdefault('raise_exc', False)
    kw['endpoint_filter'] = {'service_type': stype, 'interface': 'public',
                             'region_name': REGION}
    r = sess.request(path, method, **kw)
    if r.status_code not in ok:
        raise SystemExit('%s %s %s: HTTP %s %s' % (stype, method, path, r.status_code,
                                                   r.text[:300]))
    return r


def main():
    sess = lab.session('admin', 'admin')
    out = {}

    nets = call(sess, 'network', 'GET', '/v2.0/networks?name=public&router:external=True').json()
    if len(nets['networks']) != 1:
        raise SystemExit('expected one external network "public", found %d'
                         % len(nets['networks']))
    out['PUBLIC_NETWORK_ID'] = nets['networks'][0]['id']
    exts = call(sess, 'network', 'GET', '/v2.0/extensions').json()['extensions']
    # auto-allocated-topology is loaded but the lab sets up no default external
    # network or subnet pool for it (nova: "Unable to automatically allocate a
    # network"): tempest's AutoAllocateNetworkTest skips without the alias
    aliases = {e['alias'] for e in exts} - {'auto-allocated-topology'}
    out['NETWORK_EXTENSIONS'] = ','.join(sorted(aliases))

    nova_hdr = {'OpenStack-API-Version': 'compute 2.55'}
    flavors = call(sess, 'compute', 'GET', '/flavors?is_public=None', headers=nova_hdr).json()['flavors']
    ids = {f['id'] for f in flavors}
    if '1' not in ids:
        raise SystemExit('flavor 1 (m1.tiny) missing: run devstack/stack.sh first')
    out['FLAVOR_REF'] = '1'
    if ALT_FLAVOR['id'] not in ids:
        log('nova: create flavor %s (id %s)' % (ALT_FLAVOR['name'], ALT_FLAVOR['id']))
        call(sess, 'compute', 'POST', '/flavors', headers=nova_hdr, json={'flavor': ALT_FLAVOR})
    out['FLAVOR_REF_ALT'] = ALT_FLAVOR['id']

    def image(name):
        imgs = call(sess, 'image', 'GET', '/v2/images?name=%s' % name).json()['images']
        return imgs[0] if imgs else None

    base = image('busybox')
    if not base or base['status'] != 'active':
        raise SystemExit('image busybox missing or not active: run devstack/stack.sh first')
    out['IMAGE_REF'] = base['id']
    alt = image('busybox-alt')
    if alt and alt['status'] != 'active':
        log('glance: delete unfinished busybox-alt %s' % alt['id'])
        call(sess, 'image', 'DELETE', '/v2/images/%s' % alt['id'])
        alt = None
    if not alt:
        alt = call(sess, 'image', 'POST', '/v2/images', json={
            'name': 'busybox-alt', 'container_format': base['container_format'],
            'disk_format': base['disk_format'], 'visibility': 'public'}).json()
        log('glance: upload busybox-alt %s (the data of busybox %s)' % (alt['id'], base['id']))
        src = call(sess, 'image', 'GET', '/v2/images/%s/file' % base['id'], stream=True)
        call(sess, 'image', 'PUT', '/v2/images/%s/file' % alt['id'], ok=(204,),
             data=src.iter_content(1 << 20),
             headers={'Content-Type': 'application/octet-stream'})
    out['IMAGE_REF_ALT'] = alt['id']

    for k, v in out.items():
        print('%s=%s' % (k, v))
    return 0


if __name__ == '__main__':
    sys.exit(main())
