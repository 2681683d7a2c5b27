#!/usr/bin/python3
"""Interleaved A/B of `seglam map` throughput between source trees (a patch and
the commit before it: `git worktree add /tmp/old HEAD~1`).

    bench/map_ab.py [--rounds N] [--lines N] TREE TREE...

Each TREE needs its release build in TREE/build-bench (`meson setup build-bench
--buildtype=release && ninja -C build-bench`).  One daemon per tree (its build,
its library) is mounted for the whole run; each round runs every tree once per
type (`upper`, `crc32`: the map section of scripts/bench) over the same N lines
of 16 random lower-case letters, the order rotating between rounds.  Prints each
round's rates and, per type, the median (min, max) of the per-round ratios of
each tree to the first: on a shared machine whose speed drifts, the ratios are
the figures to trust.  Needs root (FUSE mounts).
"""
import argparse
import os
import random
import shutil
import statistics
import string
import subprocess
import tempfile
import time

TYPES = ('upper', 'crc32')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rounds', type=int, default=10)
    ap.add_argument('--lines', type=int, default=1000000)
    ap.add_argument('trees', nargs='+')
    a = ap.parse_args()
    trees = [os.path.abspath(t) for t in a.trees]
    tmp = tempfile.mkdtemp(prefix='map-ab-', dir='/tmp')
    lines = os.path.join(tmp, 'lines')
    rnd = random.Random(14)
    with open(lines, 'w') as f:
        for _ in range(a.lines):
            f.write(''.join(rnd.choice(string.ascii_lowercase) for _ in range(16)) + '\n')
    mounts, procs = [], []
    try:
        for k, t in enumerate(trees):
            store, mnt = os.path.join(tmp, 's%d' % k), os.path.join(tmp, 'm%d' % k)
            os.makedirs(store)
            os.makedirs(mnt)
            b = os.path.join(t, 'build-bench')
            procs.append(subprocess.Popen(
                [os.path.join(b, 'seglamfs'), '-f', '-o', 'llm=none',
                 '-o', 'library=' + os.path.join(t, 'library'), store, mnt],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.time() + 20
            while not os.path.ismount(mnt):
                if time.time() > deadline or procs[-1].poll() is not None:
                    raise SystemExit('map_ab: %s did not mount' % t)
                time.sleep(0.05)
            mounts.append((os.path.join(b, 'seglam-map'), mnt))
        # warm (compile, fault the lines in), and the outputs must agree
        for ty in TYPES:
            outs = {subprocess.run([h, m, ty, lines], stdout=subprocess.PIPE,
                                   check=True).stdout for h, m in mounts}
            assert len(outs) == 1, 'outputs differ for ' + ty
        rates = {ty: [[] for _ in trees] for ty in TYPES}
        for r in range(a.rounds):
            for ty in TYPES:
                order = list(range(len(trees)))
                for k in order[r % len(order):] + order[:r % len(order)]:
                    h, m = mounts[k]
                    t0 = time.perf_counter()
                    subprocess.run([h, m, ty, lines], stdout=subprocess.DEVNULL, check=True)
                    rates[ty][k].append(a.lines / (time.perf_counter() - t0))
            with open('/proc/loadavg') as f:
                load = f.read().split()[0]
            print('round %d: %s (load %s)' % (r, '; '.join(
                '%s %s' % (ty, ' '.join('%.0f' % rates[ty][k][-1] for k in range(len(trees))))
                for ty in TYPES), load), flush=True)
        for ty in TYPES:
            for k in range(1, len(trees)):
                q = [x / y for x, y in zip(rates[ty][k], rates[ty][0])]
                print('%s: %s / %s = %.3f (min %.3f, max %.3f; %d rounds); medians %.0f vs '
                      '%.0f answers/s' % (ty, trees[k], trees[0], statistics.median(q), min(q),
                                          max(q), len(q), statistics.median(rates[ty][k]),
                                          statistics.median(rates[ty][0])))
    finally:
        for _, m in mounts:
            subprocess.run(['fusermount3', '-u', m], check=False)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
