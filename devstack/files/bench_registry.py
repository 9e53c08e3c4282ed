#!/usr/bin/env python3
"""Bench part `registry` of devstack/bench.sh (run with the venv's Python, the lab's
environment exported): the first boot of a registry image on our host against
raw Docker's first run of the same image, in the same run.

Each round pushes a new image (busybox plus a layer of BENCH_REGISTRY_MIB MiB of
random bytes, so nothing of it is cached anywhere) to the lab registry and removes
it from the engine, then, in alternating order:
  baseline  `docker pull <ref>@<digest>` + `docker run -d` (what a user of plain
            Docker does for a first boot), timed, then the image removed again;
  ours      a Glance image naming the digest, POST /servers (networks none, on the
            lab's host) -> ACTIVE, timed.
Writes row 8 (median over BENCH_REGISTRY_ROUNDS rounds) to NOVA_DOCKER_BENCH_RESULTS.
"""
import os
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

ROUNDS = int(os.environ.get('BENCH_REGISTRY_ROUNDS', '3'))
MIB = int(os.environ.get('BENCH_REGISTRY_MIB', '200'))
REG = os.environ['NOVA_DOCKER_E2E_REGISTRY']
DOCKER_CONFIG = os.environ['NOVA_DOCKER_E2E_REGISTRY_DOCKER_CONFIG']
HOST = os.environ['NOVA_DOCKER_BENCH_REGISTRY_HOST']
BASE = os.environ.get('NOVA_DOCKER_TEST_IMAGE', 'busybox:latest')


def docker(*args):
    env = dict(os.environ, DOCKER_CONFIG=DOCKER_CONFIG)
    r = subprocess.run(('docker',) + args, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit('docker %s: %s' % (' '.join(args), r.stderr.strip()))
    return r.stdout.strip()


def push_unique(repo):
    name = '%s/%s:bench' % (REG, repo)
    tmp = 'bench-reg-%s' % uuid.uuid4().hex[:8]
    docker('run', '--name', tmp, BASE, 'sh', '-c',
           'head -c %d /dev/urandom > /big' % (MIB * 1024 * 1024))
    docker('commit', '--change',
           'CMD ["/bin/sh", "-c", "trap \\"exit 0\\" TERM; while true; do sleep 1; done"]', tmp, name)
    docker('rm', '-f', tmp)
    docker('push', name)
    ref = docker('inspect', '--format', '{{index .RepoDigests 0}}', name)
    docker('rmi', '-f', name)
    return ref


def gone(ref):
    subprocess.run(['docker', 'rmi', '-f', ref], capture_output=True)


def baseline(ref):
    t = time.monotonic()
    docker('pull', ref)
    cid = docker('run', '-d', ref)
    took = time.monotonic() - t
    docker('rm', '-f', cid)
    gone(ref)
    return took


def ours(nova, glance, ref, flavor):
    img = glance.post('/v2/images', {
        'name': 'bench-registry', 'container_format': 'docker', 'disk_format': 'raw',
        'visibility': 'public', 'docker_image_ref': ref})
    glance.call('PUT', '/v2/images/%s/file' % img['id'], ok=(204,), data=ref.encode(),
                headers={'Content-Type': 'application/octet-stream'})
    t = time.monotonic()
    sid = nova.post('/servers', {'server': {
        'name': 'bench-registry', 'imageRef': img['id'], 'flavorRef': flavor,
        'networks': 'none', 'availability_zone': 'nova:%s' % HOST}})['server']['id']
    while True:
        s = nova.get('/servers/%s' % sid)['server']
        if s['status'] in ('ACTIVE', 'ERROR'):
            break
        time.sleep(0.05)
    took = time.monotonic() - t
    if s['status'] != 'ACTIVE':
        raise SystemExit('bench server %s: %s' % (sid, s.get('fault')))
    nova.delete('/servers/%s' % sid)
    while nova.call('GET', '/servers/%s' % sid, ok=(200, 404)).get('server'):
        time.sleep(0.25)
    glance.delete('/v2/images/%s' % img['id'])
    # the loaded image is tagged glance/<id>, not by its digest: remove it by that
    # tag, or the next baseline's pull finds its layers present
    gone('glance/%s:latest' % img['id'])
    return took


def main():
    sess = lab.session('admin', 'admin')
    nova = lab.Api(sess, 'compute', headers={'OpenStack-API-Version': 'compute 2.95'})
    glance = lab.Api(sess, 'image')
    flavor = '1'
    # the host's service is up (its daemon may just have been restarted)
    end = time.time() + 120
    while not any(s['state'] == 'up' and s['status'] == 'enabled' for s in nova.get(
            '/os-services?binary=nova-compute&host=%s' % HOST)['services']):
        if time.time() > end:
            raise SystemExit('compute %s is not up' % HOST)
        time.sleep(1)
    base, mine = [], []
    for i in range(ROUNDS):
        ref = push_unique('bench/r%d-%s' % (i, uuid.uuid4().hex[:8]))
        if i % 2 == 0:
            b = baseline(ref)
            o = ours(nova, glance, ref, flavor)
        else:
            o = ours(nova, glance, ref, flavor)
            b = baseline(ref)
        gone(ref)
        subprocess.run(['docker', 'image', 'prune', '-f'], capture_output=True)
        print('round %d (%s first): docker pull+run %.2f s, ours POST->ACTIVE %.2f s, ratio %.2f'
              % (i, 'baseline' if i % 2 == 0 else 'ours', b, o, o / b), flush=True)
        base.append(b)
        mine.append(o)
    b, o = statistics.median(base), statistics.median(mine)
    ratio = o / b
    row = ['8', 'first boot of a %d MiB registry image (ours POST -> ACTIVE)' % MIB,
           '%.2f s' % o, '%.2f s docker pull + run' % b, '%.2f' % ratio, '<= 1.1',
           'PASS' if ratio <= 1.1 else 'MISS']
    print('RESULT ' + ' | '.join(row))
    with open(os.environ['NOVA_DOCKER_BENCH_RESULTS'], 'a') as f:
        f.write('\t'.join(row) + '\n')


if __name__ == '__main__':
    main()
