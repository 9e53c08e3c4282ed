"""The final table of devstack/bench.sh, from one run's output directory.

    python3 bench_report.py OUT

OUT holds: header (the machine line), results.tsv (rows of benches/nova_stack.rs:
id, figure, ours, baseline, ratio, goal, PASS/MISS), boot.out and image_io.out (the
output of those benches, parsed here), failed (the parts that failed). Prints
`figure | ours | baseline | ratio | goal | PASS/MISS`, one row per figure of the
issue's list; a figure that was not measured is a MISS that says why.
"""

import os
import re
import sys

NUM = r'([0-9]+(?:\.[0-9]+)?)'

# every figure the run must print, in order: id -> (figure, the part measuring it)
EXPECTED = [
    ('1', 'boot, networks none: POST -> ACTIVE', 'stack'),
    ('2', 'boot on private: network-vif-plugged -> ACTIVE (ours)', 'net'),
    ('3', 'our work per boot (driver spawn) vs raw create+start', 'boot'),
    ('4a', '100 at once: POST -> last ACTIVE (our log)', 'stack'),
    ('4b', '100 at once: POST -> all ACTIVE (API)', 'stack'),
    ('5a', 'image load (hash verified)', 'image_io'),
    ('5b', 'snapshot upload', 'image_io'),
    ('6a', 'RSS idle', 'stack'),
    ('6b', 'RSS with 200 instances', 'stack'),
    ('6c', 'CPU per hour idle with 200 instances', 'stack'),
    ('7a', 'compute start -> service up', 'stack'),
    ('7b', 'compute start -> first server ACTIVE', 'stack'),
    ('8', 'first boot of a registry image vs docker pull + run', 'registry'),
]


def read(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return ''


def boot_rows(text):
    """Row 3 (sequential boots: the median ratio) and 3b (concurrent batches)."""
    rows = []
    raw = re.search(r'^\s+raw create\+start\s+mean\s+%s ms\s+median\s+%s ms' % (NUM, NUM), text, re.M)
    work = re.search(r'^\s+spawn \(work\)\s+mean\s+%s ms\s+median\s+%s ms' % (NUM, NUM), text, re.M)
    ratio = re.search(r'ratio spawn\(work\)/raw: mean %s\s+median %s' % (NUM, NUM), text)
    n = re.search(r'sequential boots, N = (\d+)', text)
    if raw and work and ratio:
        r = float(ratio.group(2))
        rows.append(('3', 'our work per boot (driver spawn) vs raw create+start, median of %s'
                     % (n.group(1) if n else '?'),
                     '%s ms' % work.group(2), '%s ms raw' % raw.group(2), '%.3f' % r, '<= 1.05',
                     'PASS' if r <= 1.05 else 'MISS'))
    conc = re.search(r'concurrent boots, C = (\d+)', text)
    craw = re.search(r'^\s+raw create\+start\s+%s ms' % NUM, text, re.M)
    cwork = re.search(r'^\s+spawn \(work\)\s+%s ms' % NUM, text, re.M)
    cratio = re.search(r'ratio spawn\(work\)/raw %s \(target <= %s\)' % (NUM, NUM), text)
    if conc and craw and cwork and cratio:
        r, goal = float(cratio.group(1)), float(cratio.group(2))
        rows.append(('3b', 'our work, %s concurrent boots vs raw (boot.rs)' % conc.group(1),
                     '%s ms' % cwork.group(1), '%s ms raw' % craw.group(1), '%.3f' % r,
                     '<= %g' % goal, 'PASS' if r <= goal else 'MISS'))
    return rows


def image_rows(text):
    rows = []
    head = re.search(r'image_io: image (\S+), docker save tarball %s MiB, median of (\d+) rounds' % NUM, text)
    size = '%s MiB' % head.group(2) if head else '?'
    rounds = head.group(3) if head else '?'
    for rid, op, label, base in (('5a', 'load', 'image load %s, hash verified' % size, 'curl piped to docker load'),
                                 ('5b', 'upload', 'snapshot upload %s' % size, 'docker save piped to curl -T')):
        b = re.search(r'^%s\s+baseline.*?%s MiB/s \(%s s\)' % (op, NUM, NUM), text, re.M)
        o = re.search(r'^%s\s+ours.*?%s MiB/s \(%s s\)\s+ratio %sx\s+peak RSS %s MiB' % (op, NUM, NUM, NUM, NUM),
                      text, re.M)
        if not (b and o):
            continue
        ratio, peak = float(o.group(3)), float(o.group(4))
        ok = ratio >= 0.9 and peak < 64
        rows.append((rid, '%s, median of %s rounds' % (label, rounds),
                     '%s MiB/s, peak RSS %s MiB' % (o.group(1), o.group(4)),
                     '%s MiB/s %s' % (b.group(1), base), '%.2f' % ratio, '>= 0.9, RSS < 64 MiB',
                     'PASS' if ok else 'MISS'))
    return rows


def main():
    out = sys.argv[1]
    failed = read(out, 'failed').split()
    rows = {}
    for line in read(out, 'results.tsv').splitlines():
        f = line.split('\t')
        if len(f) == 7:
            rows[f[0]] = tuple(f)
    for r in boot_rows(read(out, 'boot.out')) + image_rows(read(out, 'image_io.out')):
        rows[r[0]] = r
    table = []
    for rid, figure, part in EXPECTED:
        if rid in rows:
            table.append(rows.pop(rid))
        else:
            why = 'failed' if part in failed else 'not run'
            table.append((rid, figure, 'not measured: part %s %s' % (part, why), '-', '-', '-', 'MISS'))
    # extra rows (3b) after the one they belong to
    for rid in sorted(rows):
        at = next((i for i, r in enumerate(table) if r[0] == rid.rstrip('b')), len(table) - 1)
        table.insert(at + 1, rows[rid])
    head = ('figure', 'ours', 'baseline', 'ratio', 'goal', 'PASS/MISS')
    cells = [head] + [('%s. %s' % (r[0], r[1]),) + tuple(r[2:]) for r in table]
    width = [max(len(c[i]) for c in cells) for i in range(len(head))]
    print()
    print('nova-docker bench: ' + read(out, 'header').strip())
    for i, c in enumerate(cells):
        print(' | '.join(c[j].ljust(width[j]) for j in range(len(head))).rstrip())
        if i == 0:
            print('-+-'.join('-' * w for w in width))
    misses = sum(1 for r in table if r[6] != 'PASS')
    print('%d figures, %d PASS, %d MISS%s' % (len(table), len(table) - misses, misses,
                                            '; failed parts: ' + ' '.join(failed) if failed else ''))


if __name__ == '__main__':
    main()
