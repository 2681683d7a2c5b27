#!/usr/bin/python3
"""load.py: a load and fault-injection driver for seglamfs (issue 6, items 2 and 3).

Mounts a fresh store (with the bundled library) from BUILD/seglamfs, points it at
the scripted test LLM server (tests/llm_server.py, in this process), and runs N
concurrent clients for DURATION seconds.  Each client mixes:

  hit-lib    a bundled procedure on one of its tests/NAME.in (answer: NAME.out)
  hit-gen    one of the generated types gen-K (a distinct source per K)
  hit-miss   a type created earlier by a miss
  query      a long input (300 B .. 64 KiB) through query/TYPE, as `seglam ask` does
  miss       a new type mNNN.KIND: the LLM server writes it (KIND is upper, lower,
             reverse, length, add-one or double; the server sees "Type: mNNN.KIND")
  evict      rm -r procs/mNNN.KIND (the next ask is a miss again)
  edit       the client's own type edit-C: sed -i, cp or write+rename between two
             known-good sources, then read: the very next read must see the edit
  read-edit  another client's edit-C (either version's answer is right)
  hostile    one of tests/unit/hostile/*.c: the errno its `expect:` line names
  rsync      rsync -a MOUNT/procs/ BACKUP/, then check the copy (no partial files)
  list/stats readdir of ask/, read of stats

Every answer is checked.  Faults (item 3), off by default:
  --llm-faults     the LLM server answers at random with 429, 500, 401, malformed
                   JSON, a hang (past -o llm_timeout), prose without code, or slowly
  --kill-workers S kill -9 a random seglam-worker child of the daemon every S s

Afterwards: the daemon is alive, no sanitizer report, fds (non-pipe) equal the
count before the load, pipes = 3 x live workers (the ends of its request, response
and load pipes; plus the daemon's own, as before), worker children <= -o workers,
the store holds no temp file of a live process and no partial file (every
source.c is a known version, every meta.json parses), and every procedure
answers all of its tests/ through the mount.  Then it unmounts and requires exit
status 0.  Prints a summary and writes it as JSON (--json).  Exit status 0 when
the run met the targets, 1 otherwise.

  /usr/bin/python3 tests/load/load.py --build build-asan --duration 180 --json out.json
"""
import argparse
import collections
import errno
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests'))
import frozen_count  # noqa: E402  (one /proc scanner for both)
LIBRARY = os.path.join(ROOT, 'library')
HOSTILE = os.path.join(ROOT, 'tests', 'unit', 'hostile')
SANITIZER_MARKS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:',
                   'SUMMARY: UndefinedBehaviorSanitizer')
sys.path.insert(0, os.path.join(ROOT, 'tests'))
import llm_server  # noqa: E402

KINDS = ('upper', 'lower', 'reverse', 'length', 'add-one', 'double')


class AutoMap(dict):
    """llm_server.AUTO, also for a type named PREFIX.KIND (the part after the last dot)."""

    def get(self, key, default=None):
        if key and '.' in key:
            key = key.rsplit('.', 1)[1]
        return dict.get(self, key, default)


llm_server.AUTO = AutoMap(llm_server.AUTO)


def kind_answer(kind, inp):
    """(errno, answer) of the AUTO procedure KIND for @inp (bytes)."""
    if kind == 'upper':
        return 0, inp.upper() + b'\n'
    if kind == 'lower':
        return 0, inp.lower() + b'\n'
    if kind == 'reverse':
        return 0, inp[::-1] + b'\n'
    if kind == 'length':
        return 0, b'%d\n' % len(inp)
    if not re.fullmatch(rb'[+-]?[0-9]+', inp):
        return errno.EINVAL, None
    v = int(inp)
    return 0, b'%d\n' % (v + 1 if kind == 'add-one' else v * 2)


def gen_source(k):
    return ('#include <seglam.h>\n/* generated type gen-%d */\n'
            'int seglam_run(const char *in, size_t len, seglam_out *out)\n{\n'
            '\tunsigned long h = %dul;\n\n'
            '\tfor (size_t i = 0; i < len; i++)\n'
            '\t\th = h * 31 + (unsigned char)in[i];\n'
            '\treturn seglam_printf(out, "%%lu\\n", h);\n}\n') % (k, k)


def gen_answer(k, inp):
    h = k
    for b in inp:
        h = (h * 31 + b) & 0xffffffffffffffff
    return b'%d\n' % h


EDIT_V1 = r'''#include <seglam.h>
#include <ctype.h>
/* edit type: version 1 (toupper) */
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = (char)toupper((unsigned char)in[i]);
		seglam_write(out, &c, 1);
	}
	return seglam_write(out, "\n", 1);
}
'''
EDIT_V2 = EDIT_V1.replace('toupper', 'tolower').replace('version 1', 'version 2')


def edit_answer(version, inp):
    return (inp.upper() if version == 1 else inp.lower()) + b'\n'


SAFE = set(b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')


def encode_name(inp):
    return ''.join(chr(b) if b in SAFE else '%%%02X' % b for b in inp)


def hostile_cases():
    out = {}
    for fn in sorted(os.listdir(HOSTILE)):
        if not fn.endswith('.c'):
            continue
        with open(os.path.join(HOSTILE, fn)) as f:
            src = f.read()
        m = re.search(r'expect:\s*(EIO|EINVAL|ENOEXEC|OK)', src)
        if m:
            # (ENOEXEC, the sandbox's "does not compile", reaches a reader as EIO)
            kind = 'EIO' if m.group(1) == 'ENOEXEC' else m.group(1)
            out['h-' + fn[:-2].replace('_', '-')] = (src, kind)
    return out


def library_cases():
    cases = {}
    for t in sorted(os.listdir(LIBRARY)):
        d = os.path.join(LIBRARY, t, 'tests')
        if not os.path.isdir(d):
            continue
        lst = []
        for fn in sorted(os.listdir(d)):
            if fn.endswith('.in') and os.path.exists(os.path.join(d, fn[:-3] + '.out')):
                with open(os.path.join(d, fn), 'rb') as f:
                    i = f.read()
                with open(os.path.join(d, fn[:-3] + '.out'), 'rb') as f:
                    o = f.read()
                lst.append((i, o))
        if lst:
            cases[t] = lst
    return cases


def proc_children(pid):
    """(alive, zombies) PIDs of the seglam-worker children of @pid: the scan of
    tests/frozen_count.py (stat of every process, cmdline only of @pid's own
    children), without stopping @pid."""
    alive, zombies = frozen_count.scan(pid)
    return [int(p) for p in alive], [int(p) for p in zombies]


# The daemon's ends of a worker's pipes: requests, responses and loads (sandbox/spawn.c).
PIPES_PER_WORKER = 3


def mothers(pid):
    """How many seglam-mother children @pid has (a killed one counts until the
    daemon reaps it, which it does the next time it needs a worker)."""
    return sum(comm == 'seglam-mother' for _, _, comm in frozen_count.children(pid))


def fd_census(pid):
    """(pipes, other fds, kinds) of @pid.  The daemon's socket to the mother is
    counted only while it has a mother: one killed from outside (--kill-workers)
    is replaced the next time a worker is needed, so after the load there may be
    none, and its socket is closed."""
    pipes = other = 0
    kinds = collections.Counter()
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            t = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if t.startswith('pipe:'):
            pipes += 1
        else:
            other += 1
            kinds[re.sub(r'\d+', 'N', t)] += 1
    if kinds.get('socket:[N]') and mothers(pid):
        other -= 1
        kinds['socket:[N]'] -= 1
        if not kinds['socket:[N]']:
            del kinds['socket:[N]']
    return pipes, other, dict(kinds)


def rss_kb(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Daemon:
    def __init__(self, build, work, options=(), env=None, library=True):
        self.build = build
        self.store = os.path.join(work, 'store')
        self.mnt = os.path.join(work, 'mnt')
        self.logpath = os.path.join(work, 'daemon.log')
        os.makedirs(self.store, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.options = list(options)
        self.env = env or {}
        self.library = library
        self.asan_supp = False
        self.proc = None
        self.conn = None

    def abort_connection(self):
        """After a daemon crash: abort this mount's FUSE connection (no client hangs)."""
        if self.conn is not None:
            try:
                with open(f'/sys/fs/fuse/connections/{self.conn}/abort', 'w') as f:
                    f.write('1')
            except OSError:
                pass

    def start(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('SEGLAM_LLM', 'OPENAI_', 'ANTHROPIC_'))}
        env.update(self.env)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0')
        if self.asan_supp:
            env['ASAN_OPTIONS'] += ':suppressions=' + os.path.join(HERE, 'asan.supp')
        cmd = [os.path.join(self.build, 'seglamfs'), '-f']
        if self.library:
            cmd += ['-o', 'library=' + LIBRARY]
        cmd += self.options + [self.store, self.mnt]
        self.log = open(self.logpath, 'ab')
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.ismount(self.mnt):
                self.conn = os.minor(os.stat(self.mnt).st_dev)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError('seglamfs exited %d: %s' % (self.proc.returncode, self.text()))
            time.sleep(0.05)
        raise RuntimeError('mount did not appear: ' + self.text())

    def stop(self):
        """Unmount and wait; returns the exit status (None if it had to be killed)."""
        if not self.proc:
            return 0
        subprocess.run(['fusermount3', '-u', '-z', self.mnt], check=False)
        try:
            rc = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.log.close()
        self.proc = None
        return rc

    def text(self):
        try:
            with open(self.logpath, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def path(self, *p):
        return os.path.join(self.mnt, *p)


def read_answer(mnt, type_, inp):
    """Answer of @type_ for @inp through ask/ (short names) or query/ (others)."""
    name = encode_name(inp)
    if inp and len(name) <= 255:
        with open(os.path.join(mnt, 'ask', type_, name), 'rb') as f:
            return f.read()
    return query_answer(mnt, type_, inp)


def query_answer(mnt, type_, inp):
    fd = os.open(os.path.join(mnt, 'query', type_), os.O_RDWR)
    try:
        view = memoryview(inp)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        chunks = []
        while True:
            c = os.read(fd, 1 << 20)
            if not c:
                break
            chunks.append(c)
        return b''.join(chunks)
    finally:
        os.close(fd)


def write_file(path, data):
    if isinstance(data, str):
        data = data.encode()
    with open(path, 'wb') as f:
        f.write(data)


class Load:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.counts = collections.Counter()        # op -> done
        self.outcomes = collections.Counter()      # "op:outcome" -> n
        self.errors = collections.Counter()        # unexpected outcomes, "op:what"
        self.wrong = []                            # wrong answers (first 50)
        self.nwrong = 0
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.miss_ids = itertools.count()
        self.miss_types = []                       # (name, kind) created by a miss
        self.evicted = set()
        self.edit_version = {}                     # edit-C -> 1 or 2 (owner's view)
        self.rsync_lock = threading.Lock()
        self.faults = collections.Counter()
        self.max_workers_seen = 0
        self.max_rss_kb = 0
        self.samples = []

    # -- bookkeeping
    def note(self, op, outcome, unexpected=False, detail=None):
        with self.lock:
            self.counts[op] += 1
            self.outcomes[f'{op}:{outcome}'] += 1
            if unexpected:
                self.errors[f'{op}:{outcome}'] += 1
                if detail and len(self.wrong) < 50 and outcome != 'wrong':
                    self.wrong.append({'op': op, 'outcome': outcome, 'detail': detail})

    def bad_answer(self, op, type_, inp, got, want):
        with self.lock:
            self.nwrong += 1
            if len(self.wrong) < 50:
                self.wrong.append({'op': op, 'type': type_, 'input': inp[:80].decode('latin-1'),
                                   'got': got[:120].decode('latin-1'),
                                   'want': [w[:120].decode('latin-1') for w in want]})
        self.note(op, 'wrong', unexpected=True)

    def eio_allowed(self, miss=False):
        return bool(self.args.kill_workers) or (miss and self.args.llm_faults)

    def check(self, op, type_, inp, wants, miss=False, reader=read_answer, want_errno=0):
        """Read and check; @wants: acceptable answers (bytes) or None for want_errno."""
        try:
            got = reader(self.d.mnt, type_, inp)
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            if want_errno and e.errno == want_errno:
                self.note(op, 'ok-' + name)
            elif e.errno == errno.EIO and self.eio_allowed(miss):
                self.note(op, 'EIO-fault')
            else:
                self.note(op, name, unexpected=True,
                          detail=f'{type_} {inp[:60]!r}: {e}')
            return False
        if want_errno:
            self.note(op, 'answered-want-' + errno.errorcode[want_errno], unexpected=True,
                      detail=f'{type_} {inp[:60]!r}: got {got[:60]!r}')
            return False
        if got not in wants:
            self.bad_answer(op, type_, inp, got, wants)
            return False
        self.note(op, 'ok')
        return True

    # -- setup
    def setup(self):
        a = self.args
        self.work = a.workdir or tempfile.mkdtemp(prefix='seglam-load.')
        os.makedirs(self.work, exist_ok=True)
        self.server, port = llm_server.start_server()
        if a.llm_faults:
            mix = [({'kind': 'auto'}, 40), ({'kind': 'status', 'status': 429,
                                             'headers': {'Retry-After': '0'}}, 10),
                   ({'kind': 'status', 'status': 500}, 10), ({'kind': 'status', 'status': 401}, 8),
                   ({'kind': 'malformed'}, 8), ({'kind': 'hang', 'max': 30}, 6),
                   ({'kind': 'text', 'text': 'I cannot help with that.'}, 8),
                   ({'kind': 'slow', 'delay': 0.5}, 10)]
            resp, weights = zip(*mix)
            frng = random.Random(a.seed + 7)
            flock = threading.Lock()

            def pick(typ=None):
                """Every request a fault of the mix, whatever its type (@typ)."""
                with flock:
                    r = frng.choices(resp, weights)[0]
                self.faults['llm-' + (r['kind'] if r['kind'] != 'status'
                                      else str(r['status']))] += 1
                return r
            self.server.state.next_response = pick
        env = {'SEGLAM_LLM': 'openai', 'SEGLAM_LLM_URL': f'http://127.0.0.1:{port}/v1',
               'SEGLAM_LLM_MODEL': 'test-model', 'SEGLAM_LLM_API_KEY': 'sk-load-0123456789'}
        opts = ['-o', 'timeout=%d' % a.timeout_ms, '-o', 'llm_timeout=%d' % a.llm_timeout_ms,
                '-o', 'fail_ttl=500', '-o', 'workers=%d' % a.workers] + a.option
        self.d = Daemon(a.build, self.work, opts, env)
        self.d.asan_supp = a.asan_writev_race
        self.d.start()
        self.pid = self.d.proc.pid
        self.lib = library_cases()
        self.hostile = hostile_cases()
        m = self.d.mnt
        for k in range(a.gen_types):
            t = 'gen-%d' % k
            os.mkdir(os.path.join(m, 'procs', t))
            os.mkdir(os.path.join(m, 'procs', t, 'tests'))
            write_file(os.path.join(m, 'procs', t, 'tests', 'a.in'), b'abc')
            write_file(os.path.join(m, 'procs', t, 'tests', 'a.out'), gen_answer(k, b'abc'))
            write_file(os.path.join(m, 'procs', t, 'source.c'), gen_source(k))
        for c in range(a.clients):
            t = 'edit-%d' % c
            os.mkdir(os.path.join(m, 'procs', t))
            os.mkdir(os.path.join(m, 'procs', t, 'tests'))
            write_file(os.path.join(m, 'procs', t, 'tests', 'digits.in'), b'123')
            write_file(os.path.join(m, 'procs', t, 'tests', 'digits.out'), b'123\n')
            write_file(os.path.join(m, 'procs', t, 'source.c'), EDIT_V1)
            self.edit_version[t] = 1
        for v in (1, 2):
            write_file(os.path.join(self.work, 'v%d.c' % v), EDIT_V1 if v == 1 else EDIT_V2)
        for t, (src, _) in self.hostile.items():
            os.mkdir(os.path.join(m, 'procs', t))
            write_file(os.path.join(m, 'procs', t, 'source.c'), src)
        self.backup = os.path.join(self.work, 'backup')
        # Warm up: every type once, so the baseline below is a steady state.
        for t, lst in self.lib.items():
            read_answer(m, t, lst[0][0]) if lst[0][0] else None
        for k in range(a.gen_types):
            read_answer(m, 'gen-%d' % k, b'warm')
        for c in range(a.clients):
            read_answer(m, 'edit-%d' % c, b'warm')
        time.sleep(0.5)
        # A steady state has no store file open: the flusher may still be writing
        # the warm-up's meta.json (a temp file and its directory, for a moment).
        inside = re.sub(r'\d+', 'N', self.d.store) + os.sep  # as fd_census names them
        for _ in range(10):
            self.base_fds = fd_census(self.pid)
            if not any(k.startswith(inside) for k in self.base_fds[2]):
                break
            time.sleep(0.5)
        self.base_workers = proc_children(self.pid)

    # -- operations
    def op_hit_lib(self, r):
        t = r.choice(sorted(self.lib))
        inp, out = r.choice(self.lib[t])
        self.check('hit-lib', t, inp, [out])

    def op_hit_gen(self, r):
        k = r.randrange(self.args.gen_types)
        inp = r.choice([b'abc', b'x%d' % r.randrange(1000), bytes(r.randrange(1, 256)
                                                                  for _ in range(r.randrange(1, 40)))])
        self.check('hit-gen', 'gen-%d' % k, inp, [gen_answer(k, inp)])

    def miss_input(self, r, kind):
        if kind in ('add-one', 'double'):
            return b'%d' % r.randrange(-10**9, 10**12) if r.random() < 0.9 else b'x1'
        return ''.join(r.choice('abcXYZ019-_') for _ in range(r.randrange(1, 30))).encode()

    def ask_kind(self, op, r, name, kind):
        inp = self.miss_input(r, kind)
        rc, want = kind_answer(kind, inp)
        if rc:
            self.check(op, name, inp, None, miss=True, want_errno=rc)
        else:
            self.check(op, name, inp, [want], miss=True)

    def op_miss(self, r):
        kind = r.choice(KINDS)
        name = 'm%d.%s' % (next(self.miss_ids), kind)
        self.ask_kind('miss', r, name, kind)
        with self.lock:
            self.miss_types.append((name, kind))

    def op_hit_miss(self, r):
        with self.lock:
            pick = r.choice(self.miss_types) if self.miss_types else None
        if not pick:
            return self.op_hit_lib(r)
        name, kind = pick
        self.ask_kind('hit-miss', r, name, kind)

    def op_evict(self, r):
        with self.lock:
            pick = r.choice(self.miss_types) if self.miss_types else None
        if not pick:
            return
        name, kind = pick
        try:
            shutil.rmtree(self.d.path('procs', name))
            self.note('evict', 'ok')
            with self.lock:
                self.evicted.add(name)
        except FileNotFoundError:
            self.note('evict', 'gone')          # never synthesized (fault) or evicted already
        except OSError as e:
            # rm -r racing a concurrent re-synthesis that writes into the directory
            if e.errno in (errno.ENOTEMPTY, errno.ENOENT):
                self.note('evict', 'race-' + errno.errorcode[e.errno])
            else:
                self.note('evict', errno.errorcode.get(e.errno, '?'), unexpected=True,
                          detail=f'{name}: {e}')

    def op_query(self, r):
        t = r.choice(['upper', 'crc32', 'reverse', 'line-count', 'hex-encode'])
        n = r.choice([300, 5000, 65536])
        inp = bytes(r.choice(b'abcdefgh \n') for _ in range(n))
        want = {'length': None}.get(t)
        # library answers computed independently where simple; others: consistency
        if t == 'length':
            self.check('query', t, inp, [b'%d\n' % len(inp)], reader=query_answer)
        elif t == 'hex-encode':
            self.check('query', t, inp, [inp.hex().encode() + b'\n'], reader=query_answer)
        elif t == 'line-count':
            want = inp.count(b'\n') + (1 if inp and not inp.endswith(b'\n') else 0)
            self.check('query', t, inp, [b'%d\n' % want], reader=query_answer)
        elif t == 'upper':
            s = inp[:-1] if inp.endswith(b'\n') else inp
            self.check('query', t, inp, [s.upper() + b'\n'], reader=query_answer)
        elif t == 'reverse':
            try:
                a = query_answer(self.d.mnt, t, inp)
                b = query_answer(self.d.mnt, t, inp)
                self.note('query', 'ok') if a == b and len(a) >= len(inp) - 1 else \
                    self.bad_answer('query', t, inp, b, [a])
            except OSError as e:
                ok = e.errno == errno.EIO and self.eio_allowed()
                self.note('query', 'EIO-fault' if ok else errno.errorcode.get(e.errno, '?'),
                          unexpected=not ok, detail=str(e))
        else:
            import zlib
            self.check('query', t, inp, [b'%08x\n' % zlib.crc32(inp),
                                         b'%d\n' % zlib.crc32(inp)], reader=query_answer)

    def op_edit(self, r, c):
        t = 'edit-%d' % c
        d = self.d.path('procs', t)
        cur = self.edit_version[t]
        new = 3 - cur
        how = r.choice(['sed', 'cp', 'rename'])
        try:
            if how == 'sed':
                a, b = ('toupper', 'tolower') if new == 2 else ('tolower', 'toupper')
                v = ('version 1', 'version 2') if new == 2 else ('version 2', 'version 1')
                p = subprocess.run(['sed', '-i', '-e', f's/{a}/{b}/', '-e', f's/{v[0]}/{v[1]}/',
                                    os.path.join(d, 'source.c')], capture_output=True, timeout=60)
                if p.returncode:
                    raise OSError(errno.EIO, 'sed: ' + p.stderr.decode(errors='replace'))
            elif how == 'cp':
                p = subprocess.run(['cp', os.path.join(self.work, 'v%d.c' % new),
                                    os.path.join(d, 'source.c')], capture_output=True, timeout=60)
                if p.returncode:
                    raise OSError(errno.EIO, 'cp: ' + p.stderr.decode(errors='replace'))
            else:
                tmp = os.path.join(d, '.source.c.%d.tmp' % c)
                write_file(tmp, EDIT_V1 if new == 1 else EDIT_V2)
                os.rename(tmp, os.path.join(d, 'source.c'))
        except OSError as e:
            self.note('edit', how + '-failed', unexpected=True, detail=f'{t}: {e}')
            return
        self.edit_version[t] = new
        self.note('edit', how)
        inp = ''.join(r.choice('aBcD') for _ in range(8)).encode()
        self.check('read-after-edit', t, inp, [edit_answer(new, inp)])

    def op_read_edit(self, r):
        t = 'edit-%d' % r.randrange(self.args.clients)
        inp = ''.join(r.choice('aBcD') for _ in range(6)).encode()
        self.check('read-edit', t, inp, [edit_answer(1, inp), edit_answer(2, inp)])

    def op_hostile(self, r):
        t = r.choice(sorted(self.hostile))
        want = self.hostile[t][1]
        if want == 'OK':
            try:
                read_answer(self.d.mnt, t, b'input')
                self.note('hostile', 'ok')
            except OSError as e:
                ok = e.errno == errno.EIO and self.eio_allowed()
                self.note('hostile', 'EIO-fault' if ok else errno.errorcode.get(e.errno, '?'),
                          unexpected=not ok, detail=f'{t}: {e}')
        else:
            self.check('hostile', t, b'input', None, want_errno=getattr(errno, want))

    def op_rsync(self, r):
        if not self.rsync_lock.acquire(blocking=False):
            return self.op_hit_lib(r)
        try:
            p = subprocess.run(['rsync', '-a', '--delete', self.d.path('procs') + '/',
                                self.backup + '/'], capture_output=True, timeout=300)
            # 24: files vanished during the transfer (concurrent evictions and edits).
            # 23 with only "read errors mapping ...: No data available (61)": a file was
            # replaced by a shorter one between rsync's stat and its read (a log rotated
            # by the daemon, a source cut by sed -i).  rsync reports that on any
            # filesystem and skips the file; the copy is still checked below.
            lines = [l for l in p.stderr.decode(errors='replace').splitlines()
                     if 'has vanished' not in l]
            errs = [l for l in lines if not l.startswith('rsync error: ')]
            shrunk = (p.returncode == 23 and errs and
                      all('read errors mapping' in l and '(61)' in l for l in errs))
            if p.returncode not in (0, 24) and not shrunk:
                self.note('rsync', 'rc%d' % p.returncode, unexpected=True,
                          detail='\n'.join(lines)[-800:])
                return
            mid = []
            bad = self.check_copy(self.backup, midwrite=mid)
            if bad:
                self.note('rsync', 'partial', unexpected=True, detail='; '.join(bad[:5]))
            else:
                self.note('rsync', {0: 'ok', 24: 'ok-vanished'}.get(p.returncode, 'ok-shrunk'))
                if mid:
                    self.note('rsync', 'ok-midwrite')
        finally:
            self.rsync_lock.release()

    def op_list(self, r):
        try:
            names = os.listdir(self.d.path('ask'))
            missing = [t for t in ('upper', 'gen-0', 'edit-0') if t not in names]
            if missing:
                self.note('list', 'missing', unexpected=True, detail=str(missing))
            else:
                self.note('list', 'ok')
        except OSError as e:
            self.note('list', errno.errorcode.get(e.errno, '?'), unexpected=True, detail=str(e))

    def op_stats(self, r):
        try:
            with open(self.d.path('stats')) as f:
                dict(line.split() for line in f)
            self.note('stats', 'ok')
        except (OSError, ValueError) as e:
            self.note('stats', 'bad', unexpected=True, detail=str(e))

    OPS = [('hit_lib', 30), ('hit_gen', 14), ('hit_miss', 8), ('query', 6), ('miss', 6),
           ('evict', 1), ('edit', 6), ('read_edit', 8), ('hostile', 4), ('rsync', 1),
           ('list', 3), ('stats', 2)]

    def client(self, c):
        r = random.Random(self.args.seed * 1000 + c)
        names, weights = zip(*[(o, w) for o, w in self.OPS if o not in self.args.skip])
        while not self.stop.is_set():
            op = r.choices(names, weights)[0]
            try:
                if op == 'edit':
                    self.op_edit(r, c)
                else:
                    getattr(self, 'op_' + op)(r)
            except Exception as e:  # a bug of the driver, or an unexpected exception
                self.note(op, 'exception', unexpected=True, detail=repr(e)[:300])

    def killer(self):
        r = random.Random(self.args.seed + 99)
        while not self.stop.wait(r.uniform(0.3, 2) * self.args.kill_workers):
            alive, _ = proc_children(self.pid)
            if alive:
                victim = r.choice(alive)
                try:
                    os.kill(victim, signal.SIGKILL)
                    self.faults['worker-kill'] += 1
                except ProcessLookupError:
                    pass

    def sampler(self):
        helper = os.path.join(ROOT, 'tests', 'frozen_count.py')
        while not self.stop.wait(1.0):
            # Counted with the daemon stopped, by a process of its own
            # (tests/frozen_count.py says why: no snapshot otherwise, and no
            # deadlock with this process's own tool spawns).
            try:
                r = subprocess.run([sys.executable, helper, str(self.pid)],
                                   capture_output=True, text=True, timeout=60)
                lines = (r.stdout.split('\n') + ['', ''])[:2]
                alive, zombies = lines[0].split(), lines[1].split()
            except (subprocess.SubprocessError, OSError):
                alive, zombies = [], []
            rss = rss_kb(self.pid)
            self.max_workers_seen = max(self.max_workers_seen, len(alive) + len(zombies))
            self.max_rss_kb = max(self.max_rss_kb, rss)
            if self.d.proc.poll() is not None:
                self.stop.set()
                self.d.abort_connection()

    # -- checks
    def check_copy(self, root, midwrite=None):
        """Problems of a copy of procs/ (backup) or of the view: partial or unknown files.

        @midwrite (a list, for rsync copies taken during the load): an edit type's
        source.c may be a prefix of a version, because `cp` rewrites it in place and
        a same-mount reader sees the writer's current size (README, "Editing works");
        such types are appended to it instead of counted as problems.  The store
        itself is checked without this allowance (check_store, the view below)."""
        bad = []
        for t in os.listdir(root):
            d = os.path.join(root, t)
            try:
                src = open(os.path.join(d, 'source.c'), 'rb').read().decode()
            except FileNotFoundError:
                if t.startswith(('gen-', 'edit-')) or t in self.lib:
                    bad.append(f'{t}: no source.c')
                continue
            except OSError as e:
                bad.append(f'{t}: {e}')
                continue
            if t.startswith('edit-') and src not in (EDIT_V1, EDIT_V2):
                if midwrite is not None and (EDIT_V1.startswith(src) or
                                             EDIT_V2.startswith(src)):
                    midwrite.append(t)
                else:
                    bad.append(f'{t}: source.c is neither version ({len(src)} bytes)')
            elif t.startswith('gen-') and src != gen_source(int(t[4:])):
                bad.append(f'{t}: source.c differs')
            elif t in self.lib:
                with open(os.path.join(LIBRARY, t, 'source.c')) as f:
                    if src != f.read():
                        bad.append(f'{t}: library source.c differs')
            elif '.' in t and t.rsplit('.', 1)[1] in KINDS:
                code = llm_server.AUTO.get(t)
                if src.strip() != code.strip():
                    bad.append(f'{t}: synthesized source.c differs')
            mj = os.path.join(d, 'meta.json')
            if os.path.exists(mj):
                try:
                    with open(mj) as f:
                        json.load(f)
                except ValueError as e:
                    bad.append(f'{t}: meta.json: {e}')
        return bad

    def check_store(self):
        """On-disk store: temp files of live processes, and the same partial-file checks."""
        tmp_live, tmp_dead, types = [], [], 0
        for dirpath, dirnames, filenames in os.walk(os.path.join(self.d.store, 'procs')):
            for fn in filenames + dirnames:
                if fn.startswith('.seglam-tmp.'):
                    m = re.match(r'\.seglam-tmp\.[^.]*\.(\d+)\.', fn)
                    pid = int(m.group(1)) if m else 0
                    (tmp_live if pid and os.path.exists(f'/proc/{pid}') else tmp_dead).append(
                        os.path.join(dirpath, fn))
            if dirpath.count(os.sep) - self.d.store.count(os.sep) == 4:
                types += 1
        return {'types_on_disk': types, 'tmp_files_live_pid': tmp_live[:20],
                'tmp_files_dead_pid': tmp_dead[:20]}

    def final_answers(self):
        """Every procedure with tests/ answers all of them; every miss type answers."""
        fails, checked = [], 0
        m = self.d.mnt
        for t in sorted(os.listdir(os.path.join(m, 'procs'))):
            td = os.path.join(m, 'procs', t, 'tests')
            if not os.path.isdir(td):
                continue
            for fn in sorted(os.listdir(td)):
                if not fn.endswith('.in'):
                    continue
                try:
                    inp = open(os.path.join(td, fn), 'rb').read()
                    out = open(os.path.join(td, fn[:-3] + '.out'), 'rb').read()
                except OSError:
                    continue
                checked += 1
                try:
                    try:
                        got = read_answer(m, t, inp)
                    except OSError as e:
                        # a worker killed just before the end: that read may fail once
                        if not (self.args.kill_workers and e.errno == errno.EIO):
                            raise
                        got = read_answer(m, t, inp)
                    if got != out:
                        fails.append(f'{t}/{fn}: got {got[:60]!r}, want {out[:60]!r}')
                except OSError as e:
                    fails.append(f'{t}/{fn}: {e.strerror}: ' + self.last_log(t))
        r = random.Random(1)
        for name, kind in list(self.miss_types):
            inp = self.miss_input(r, kind)
            rc, want = kind_answer(kind, inp)
            checked += 1
            try:
                got = read_answer(m, name, inp)
                if rc or got != want:
                    fails.append(f'{name}: got {got!r} for {inp!r}')
            except OSError as e:
                if e.errno != rc:
                    fails.append(f'{name}: {e.strerror} for {inp!r}: ' + self.last_log(name))
        return checked, fails

    def last_log(self, t):
        try:
            with open(self.d.path('procs', t, 'log'), errors='replace') as f:
                return f.read().strip().splitlines()[-1][:300]
        except (OSError, IndexError):
            return ''

    # -- the run
    def run(self):
        a = self.args
        t0 = time.time()
        self.setup()
        setup_s = time.time() - t0
        threads = [threading.Thread(target=self.client, args=(c,)) for c in range(a.clients)]
        threads.append(threading.Thread(target=self.sampler))
        if a.kill_workers:
            threads.append(threading.Thread(target=self.killer))
        t1 = time.time()
        for t in threads:
            t.start()
        self.stop.wait(a.duration)
        self.stop.set()
        # faults off for the checks: the LLM answers again, failures expire (fail_ttl)
        self.server.state.__dict__.pop('next_response', None)
        if self.d.proc.poll() is not None:
            self.d.abort_connection()
        for t in threads:
            t.join(timeout=300)
        hung = sum(t.is_alive() for t in threads)
        load_s = time.time() - t1
        crashed = self.d.proc.poll() is not None
        res = {'build': a.build, 'asan_writev_suppression': a.asan_writev_race, 'clients': a.clients, 'duration_s': round(load_s, 1),
               'setup_s': round(setup_s, 1), 'llm_faults': a.llm_faults,
               'kill_workers': a.kill_workers, 'seed': a.seed,
               'ops_total': sum(self.counts.values()), 'ops': dict(self.counts),
               'outcomes': dict(sorted(self.outcomes.items())),
               'errors_unexpected': dict(self.errors),
               'errors_unexpected_total': sum(self.errors.values()),
               'wrong_answers': self.nwrong, 'examples': self.wrong[:20],
               'faults_injected': dict(self.faults), 'clients_hung': hung,
               'max_worker_children': self.max_workers_seen, 'worker_cap': a.workers,
               'max_rss_kb': self.max_rss_kb, 'miss_types': len(self.miss_types),
               'daemon_crashed': crashed}
        if not crashed:
            time.sleep(1.0)
            bp, bo, bkinds = self.base_fds
            # pipes that are not the workers' (valgrind keeps two of its own): as before
            ba, bz = self.base_workers
            bown = bp - PIPES_PER_WORKER * (len(ba) + len(bz))
            # the flusher may be writing meta.json (a temp file and its directory are
            # open for a moment): look again for up to 5 s before calling it a leak
            for _ in range(10):
                alive, zombies = proc_children(self.pid)
                pipes, other, kinds = fd_census(self.pid)
                if other == bo and pipes == bown + PIPES_PER_WORKER * (len(alive) + len(zombies)):
                    break
                time.sleep(0.5)
            res.update({'workers_after': len(alive), 'worker_zombies_after': len(zombies),
                        'fds_before': {'pipes': bp, 'other': bo, 'kinds': bkinds},
                        'fds_after': {'pipes': pipes, 'other': other, 'kinds': kinds},
                        # a killed idle worker is a zombie until the pool reaps it, and
                        # its pipes stay open until then
                        'fd_leak': other - bo,
                        'pipe_leak': pipes - bown - PIPES_PER_WORKER * (len(alive) + len(zombies))})
            try:
                with open(self.d.path('stats')) as f:
                    res['daemon_stats'] = {k: int(v) for k, v in (l.split() for l in f)}
            except OSError:
                pass
            res['store'] = self.check_store()
            res['view_problems'] = self.check_copy(self.d.path('procs'))[:20]
            t2 = time.time()
            checked, fails = self.final_answers()
            res['final_cases_checked'] = checked
            res['final_failures'] = fails[:30]
            res['final_failures_total'] = len(fails)
            res['final_check_s'] = round(time.time() - t2, 1)
        rc = self.d.stop()
        log = self.d.text()
        res['daemon_exit'] = rc
        res['sanitizer_reports'] = sum(log.count(mk) for mk in SANITIZER_MARKS)
        if res['sanitizer_reports']:
            i = min(log.find(mk) for mk in SANITIZER_MARKS if mk in log)
            res['sanitizer_excerpt'] = log[max(0, i - 200):i + 3000]
        self.server.shutdown()
        self.server.server_close()
        res['daemon_log'] = self.d.logpath
        res['pass'] = self.verdict(res)
        return res

    def verdict(self, r):
        reasons = []
        if r['daemon_crashed'] or r['daemon_exit'] != 0:
            reasons.append('daemon crashed or exited %s' % r['daemon_exit'])
        if r['wrong_answers']:
            reasons.append('%d wrong answers' % r['wrong_answers'])
        if r['errors_unexpected_total']:
            reasons.append('%d unexpected errors' % r['errors_unexpected_total'])
        if r['sanitizer_reports']:
            reasons.append('sanitizer reports')
        if r['clients_hung']:
            reasons.append('%d clients hung' % r['clients_hung'])
        # The cap bounds running workers; a caller parked on a seglam_call is a
        # process beyond it (docs/composition.md), so the bound is the cap plus
        # the most callers ever parked at once.
        parked = r.get('daemon_stats', {}).get('workers_parked_max', 0)
        if r['max_worker_children'] > r['worker_cap'] + parked:
            reasons.append('worker children %d > cap %d + %d parked'
                           % (r['max_worker_children'], r['worker_cap'], parked))
        if not r['daemon_crashed']:
            if r['fd_leak'] or r['pipe_leak']:
                before, after = r['fds_before']['kinds'], r['fds_after']['kinds']
                moved = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)
                         if after.get(k, 0) != before.get(k, 0)}
                reasons.append('fd leak %d, pipe leak %d (fds by kind, after - before: %s)'
                               % (r['fd_leak'], r['pipe_leak'], moved))
            if r['workers_after'] + r['worker_zombies_after'] > r['worker_cap']:
                reasons.append('workers after the load above the cap')
            if r['store']['tmp_files_live_pid']:
                reasons.append('temp files of a live process left in the store')
            if r['view_problems']:
                reasons.append('partial or unknown files')
            if r['final_failures_total']:
                reasons.append('%d procedures fail their tests after the load'
                               % r['final_failures_total'])
        r['fail_reasons'] = reasons
        return not reasons


def summary_text(r):
    lines = ['seglamfs load: %d clients, %.0f s under load (setup %.0f s)%s%s' % (
        r['clients'], r['duration_s'], r['setup_s'],
        ', LLM faults' if r['llm_faults'] else '',
        ', worker kills every ~%ss' % r['kill_workers'] if r['kill_workers'] else ''),
        '  ops %d (%.0f/s): %s' % (r['ops_total'], r['ops_total'] / max(r['duration_s'], 1),
                                   ', '.join(f'{k} {v}' for k, v in sorted(r['ops'].items()))),
        '  wrong answers %d, unexpected errors %d %s' % (
            r['wrong_answers'], r['errors_unexpected_total'], r['errors_unexpected'] or ''),
        '  outcomes: ' + ', '.join(f'{k} {v}' for k, v in r['outcomes'].items()
                                   if not k.endswith(':ok')),
        '  faults injected: %s' % (r['faults_injected'] or 'none'),
        '  daemon: crashed %s, exit %s, sanitizer reports %d, max RSS %d MiB, max worker '
        'children %d (cap %d, callers parked at most %d)' % (
            r['daemon_crashed'], r['daemon_exit'], r['sanitizer_reports'],
            r['max_rss_kb'] // 1024, r['max_worker_children'], r['worker_cap'],
            r.get('daemon_stats', {}).get('workers_parked_max', 0))]
    if not r['daemon_crashed']:
        lines.append('  after: workers %d (+%d zombies), fd leak %d, pipe leak %d, store temp '
                     'files live/dead %d/%d, view problems %d, final cases %d checked, %d failed' % (
                         r['workers_after'], r['worker_zombies_after'], r['fd_leak'],
                         r['pipe_leak'], len(r['store']['tmp_files_live_pid']),
                         len(r['store']['tmp_files_dead_pid']), len(r['view_problems']),
                         r['final_cases_checked'], r['final_failures_total']))
    for e in r['examples'][:8]:
        lines.append('  example: ' + json.dumps(e)[:400])
    for f in r.get('final_failures', [])[:8]:
        lines.append('  final: ' + f[:400])
    lines.append('  PASS' if r['pass'] else '  FAIL: ' + '; '.join(r['fail_reasons']))
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default=os.environ.get('SEGLAM_BUILD', os.path.join(ROOT, 'build')))
    ap.add_argument('--duration', type=float, default=180)
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--gen-types', type=int, default=100)
    ap.add_argument('--workers', type=int, default=64)
    ap.add_argument('--timeout-ms', type=int, default=1500)
    ap.add_argument('--llm-timeout-ms', type=int, default=2000)
    ap.add_argument('--llm-faults', action='store_true')
    ap.add_argument('--kill-workers', type=float, default=0, metavar='S')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--skip', action='append', default=[], metavar='OP',
                    help='leave out an operation (hit_lib, rsync, edit, ...; repeatable)')
    ap.add_argument('--asan-writev-race', action=argparse.BooleanOptionalAction, default=True,
                    help='suppress the known false ASan report of writev after fuse_reply_buf '
                         '(tests/load/asan.supp; default on, --no-asan-writev-race to see it)')
    ap.add_argument('--workdir')
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    ap.add_argument('--json', help='write the summary here')
    ap.add_argument('-o', '--option', action='append', default=[],
                    help='extra daemon option, e.g. -o memo=8 (repeatable)')
    args = ap.parse_args(argv)
    args.build = os.path.abspath(args.build)
    args.option = sum((['-o', o] for o in args.option), [])
    load = Load(args)
    try:
        res = load.run()
    finally:
        if getattr(load, 'd', None) and load.d.proc:
            load.d.stop()
    print(summary_text(res))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1, sort_keys=True)
    if not args.keep and not args.workdir and res['pass']:
        shutil.rmtree(load.work, ignore_errors=True)
    else:
        print('  work directory: ' + load.work)
    return 0 if res['pass'] else 1


if __name__ == '__main__':
    sys.exit(main())
