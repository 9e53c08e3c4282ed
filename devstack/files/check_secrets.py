"""No secret in any log of a test run: the lab's passwords, the transport URL's
credentials, the lab registry's basic-auth credentials (base64 of user:password,
as in its auth.json and an Authorization header) and Keystone (fernet) tokens
must not appear in any file under the given directories. Prints where each one was found (never the secret itself) and
exits 1 if any was.

    check_secrets.py PASSWORDS_FILE TRANSPORT_URL DIR...
"""
import base64
import json
import os
import re
import sys
from urllib.parse import urlsplit

FERNET = re.compile(rb'gAAAAA[A-Za-z0-9_=-]{60,}')


def secrets(passwords_file, transport_url):
    found = {}
    with open(passwords_file) as f:
        for line in f:
            name, _, value = line.strip().partition('=')
            value = value.strip().strip('"\'')
            if (name.endswith('PASSWORD') or name.endswith('_KEY')) and len(value) >= 8:
                found[name] = value.encode()
    # the lab registry's credentials as Docker and an Authorization: Basic header
    # carry them: the user nova-docker with ND_REGISTRY_PASSWORD, and whatever
    # the registry's auth.json (beside the passwords file) holds
    if 'ND_REGISTRY_PASSWORD' in found:
        found['registry basic auth'] = base64.b64encode(b'nova-docker:' + found['ND_REGISTRY_PASSWORD'])
    auth_file = os.path.join(os.path.dirname(passwords_file), 'registry', 'auth.json')
    try:
        with open(auth_file) as f:
            auths = json.load(f).get('auths', {})
    except (OSError, ValueError):
        auths = {}
    for host, entry in sorted(auths.items()):
        value = (entry.get('auth') or '').encode() if isinstance(entry, dict) else b''
        if len(value) >= 8 and value not in found.values():
            found['registry auth.json auth for %s' % host] = value
    for i, host in enumerate(urlsplit(transport_url).netloc.split(',')):
        cred, at, _ = host.rpartition('@')
        if at and ':' in cred:
            # user:password as it would appear in a URL
            found['transport_url credentials #%d' % i] = (cred + '@').encode()
    return found


def main():
    passwords_file, transport_url, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    wanted = secrets(passwords_file, transport_url)
    leaks, files = 0, 0
    for top in dirs:
        for root, _, names in os.walk(top):
            for n in names:
                path = os.path.join(root, n)
                if path == passwords_file or not (n.endswith('.log') or '.log.' in n or n.endswith('.txt')):
                    continue
                files += 1
                try:
                    with open(path, 'rb') as f:
                        for lineno, line in enumerate(f, 1):
                            for what, value in wanted.items():
                                if value in line:
                                    print('%s:%d: %s' % (path, lineno, what))
                                    leaks += 1
                            if FERNET.search(line):
                                print('%s:%d: a Keystone token' % (path, lineno))
                                leaks += 1
                except OSError as e:
                    print('%s: %s' % (path, e))
    print('check_secrets: %d log files, %d secrets looked for, %d found'
          % (files, len(wanted) + 1, leaks))
    sys.exit(1 if leaks else 0)


if __name__ == '__main__':
    main()
