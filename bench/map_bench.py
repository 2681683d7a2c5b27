"""The batch benchmark of issue 14 (`seglam map`), a step of bench/run.py.

N lines of 16 random lower-case letters go through `seglam map` (the seglam-map
helper on MOUNT/map/TYPE) for the library's `upper` and a heavier library
procedure (`crc32`, which builds its table on every call), and, over the very
same lines: (a) the same procedure source compiled natively (cc -O2) and run in
a loop (bench/map-native.c): the physical limit; (b) today's ways in: one `cat`
of ask/TYPE/LINE per input from sh, and one open/read/close per input from C
(bench/map-open.c), both on a sample and extrapolated; (c) `tr a-z A-Z` for upper.
Outputs go to files and are checked against each other.  Rates are answers/s,
medians over interleaved rounds; ratios are medians of the per-round ratios.
"""
import os
import random
import shutil
import statistics
import string
import subprocess
import time

TYPES = ('upper', 'crc32')


def gen_lines(path, n, seed=14):
    rnd = random.Random(seed)
    letters = string.ascii_lowercase
    with open(path, 'w') as f:
        for _ in range(n):
            f.write(''.join(rnd.choice(letters) for _ in range(16)) + '\n')


def timed(cmd, stdout=None, stdin=None, shell=False, stderr=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=stdout, stdin=stdin, shell=shell, check=True, stderr=stderr)
    return time.perf_counter() - t0


def build_native(ctx, src, type_, compiler='cc'):
    """The library procedure @type_ built by @compiler (cc -O2, or tcc as the worker
    does) and linked with bench/map-native.c; None if @compiler is missing."""
    obj = os.path.join(ctx.tmp, 'native-%s-%s.o' % (compiler, type_))
    exe = os.path.join(ctx.tmp, 'native-%s-%s' % (compiler, type_))
    if not shutil.which(compiler):
        return None
    flags = ['-O2', '-w'] if compiler == 'cc' else ['-nostdinc']
    subprocess.run([compiler] + flags + ['-I', os.path.join(src, 'include'), '-c', '-o', obj,
                    os.path.join(src, 'library', type_, 'source.c')], check=True)
    subprocess.run(['cc', '-O2', '-Wl,-z,noexecstack', '-o', exe,
                    os.path.join(src, 'bench', 'map-native.c'), obj], check=True)
    return exe


def bench_map(ctx, R, Mount, log):
    n, rounds, sample = R['map_lines'], R['map_rounds'], R['map_sample']
    log('map: %d lines of 16 bytes through seglam map, vs native loop, cat, open/read, tr' % n)
    lines = os.path.join(ctx.tmp, 'map-lines.txt')
    gen_lines(lines, n)
    helper = os.path.join(os.path.dirname(ctx.seglamfs), 'seglam-map')
    opener = os.path.join(ctx.bin, 'map-open')
    store = os.path.join(ctx.tmp, 'map-store')
    os.makedirs(store)
    m = Mount(ctx, store, opts='llm=none,library=%s' % os.path.join(ctx.src, 'library'),
              name='map')
    res = {'lines': n, 'rounds': rounds, 'sample': sample, 'types': {}}
    try:
        for t in TYPES:
            natives = {'native': build_native(ctx, ctx.src, t),
                       'tcc': build_native(ctx, ctx.src, t, 'tcc')}
            outs = {k: os.path.join(ctx.tmp, 'map-%s-%s.out' % (t, k))
                    for k in ('map', 'native', 'tcc', 'tr')}
            rates = {'map': [], 'native': [], 'tcc': [], 'tr': []}
            rss = []
            # warm: compile the worker, fault in the lines
            with open(os.devnull, 'w') as null:
                subprocess.run([helper, m.mnt, t, lines], stdout=null, check=True)
            for r in range(rounds):
                order = ['map', 'native', 'tcc', 'tr']
                for k in order if r % 2 == 0 else order[::-1]:
                    if (k == 'tr' and t != 'upper') or (k == 'tcc' and not natives['tcc']):
                        continue
                    with open(outs[k], 'w') as o, open(lines) as i:
                        if k == 'map':
                            s = timed([helper, m.mnt, t, lines], stdout=o)
                            rss.append(m.rss_kb())
                        elif k in natives:
                            s = timed([natives[k], lines], stdout=o, stderr=subprocess.DEVNULL)
                        else:
                            s = timed(['tr', 'a-z', 'A-Z'], stdin=i, stdout=o)
                    rates[k].append(n / s)
            same = open(outs['map'], 'rb').read() == open(outs['native'], 'rb').read()
            if natives['tcc']:
                same = same and open(outs['map'], 'rb').read() == open(outs['tcc'], 'rb').read()
            if t == 'upper':
                same = same and open(outs['map'], 'rb').read() == open(outs['tr'], 'rb').read()
            # today's ways in, on a sample (new inputs: not memoized)
            sample_file = os.path.join(ctx.tmp, 'map-sample-%s.txt' % t)
            with open(lines) as i, open(sample_file, 'w') as o:
                for k, line in enumerate(i):
                    if k >= sample:
                        break
                    o.write(line)  # seglam map memoizes nothing: still new inputs
            ask = m.path('ask', t)
            s = timed('while read -r l; do cat "%s/$l"; done < %s > /dev/null'
                      % (ask, sample_file), shell=True)
            cat_rate = sample / s
            out = subprocess.run([opener, ask, sample_file, str(sample)], capture_output=True,
                                 text=True, check=True).stdout.split()
            open_rate = int(out[0]) / float(out[1])
            med = {k: statistics.median(v) if v else None for k, v in rates.items()}

            def ratio(a, b):
                """Median over rounds of the per-round ratio (as run.py's ratios)."""
                return statistics.median(x / y for x, y in zip(rates[a], rates[b])) \
                    if rates[b] else None
            res['types'][t] = {
                'map_answers_s': med['map'], 'native_answers_s': med['native'],
                'tr_lines_s': med['tr'], 'cat_answers_s': cat_rate,
                'open_answers_s': open_rate,
                'tcc_answers_s': med['tcc'], 'map_vs_native': ratio('map', 'native'),
                'map_vs_tcc': ratio('map', 'tcc'),
                'map_vs_cat': med['map'] / cat_rate, 'map_vs_open': med['map'] / open_rate,
                'outputs_identical': same, 'daemon_rss_kb_max': max(rss) if rss else None,
                'rounds': {k: v for k, v in rates.items() if v}}
            log('map %s: %.0f answers/s (native %.0f, open %.0f, cat %.0f)'
                % (t, med['map'], med['native'], open_rate, cat_rate))
    finally:
        m.close()
    return res


def report_lines(res):
    L = ['## Batch: `seglam map` (issue 14)\n',
         '%d lines of 16 random lower-case letters, one run of each way per round, %d rounds '
         'interleaved; rates are medians over rounds, ratios medians of the per-round '
         'ratios. `seglam map` runs the library procedure in the sandboxed '
         'worker (tcc-compiled); the native loop is the same source built with `cc -O2` '
         '(bench/map-native.c); `cat` and open/read/close (bench/map-open.c) read '
         '`ask/TYPE/LINE` for a sample of %d new inputs, extrapolated.\n'
         % (res['lines'], res['rounds'], res['sample']),
         '| procedure | seglam map (answers/s) | native loop, cc -O2 | map / native | '
         'native loop, tcc | map / tcc loop | one open/read/close per input (C) | '
         'one `cat` per input (sh) | `tr a-z A-Z` (lines/s) | outputs identical |',
         '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for t, v in res['types'].items():
        L.append('| %s | %.0f | %.0f | %.2fx | %s | %s | %.0f | %.0f | %s | %s |' % (
            t, v['map_answers_s'], v['native_answers_s'], v['map_vs_native'],
            '%.0f' % v['tcc_answers_s'] if v['tcc_answers_s'] else '-',
            '%.2fx' % v['map_vs_tcc'] if v['map_vs_tcc'] else '-',
            v['open_answers_s'], v['cat_answers_s'],
            '%.0f' % v['tr_lines_s'] if v['tr_lines_s'] else '-',
            'yes' if v['outputs_identical'] else 'NO'))
    L.append('')
    L.append('The native loops read the lines from a file and write the answers, as '
             '`seglam map` does. The cc -O2 loop is the physical limit; the tcc loop is the '
             'same machine code the worker runs (procedures are compiled by libtcc, which '
             'does not optimize), so map / tcc loop is the cost of the way in alone.\n')
    return L
