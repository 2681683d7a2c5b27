"""Fixtures for the mount tests: a real seglamfs daemon on a real FUSE mount.

SEGLAM_BUILD names the build directory (default: build/).  Each `mount` is a
fresh store and mount point; the daemon runs in the foreground with its log in
a file, and at teardown the test fails if the daemon crashed, did not exit
cleanly, or a sanitizer reported anything.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('SEGLAM_BUILD', os.path.join(ROOT, 'build'))
SEGLAMFS = os.path.join(BUILD, 'seglamfs')
# The meson build SEGLAMFS comes from: BUILD itself, unless seglamfs there is a
# wrapper (scripts/valgrind), which names the real one.
MESON_BUILD = os.environ.get('SEGLAM_MESON_BUILD', BUILD)
# scripts/valgrind runs the daemon under memcheck (see the tests it skips).
UNDER_VALGRIND = bool(os.environ.get('SEGLAM_UNDER_VALGRIND'))
SEGLAM = os.path.join(ROOT, 'scripts', 'seglam')
LIBRARY = os.path.join(ROOT, 'library')
HOSTILE = os.path.join(ROOT, 'tests', 'unit', 'hostile')
SANITIZER_MARKS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:',
                   'SUMMARY: UndefinedBehaviorSanitizer')

sys.path.insert(0, os.path.join(ROOT, 'tests'))

def pytest_configure(config):
    # A suite started in the background by a shell (`scripts/test &`) runs with
    # SIGINT ignored, and every process it starts inherits that through exec: a
    # `cat` a test interrupts would go on reading.  Python's own handler again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line('markers', 'long: an expensive test (load, crash loops, '
                            'large stores); run by `scripts/test --long` and CI')
    # pytest-xdist's, for runs without it (scripts/test runs with it)
    config.addinivalue_line('markers', 'xdist_group(name): tests run by one xdist worker')


def pytest_collection_modifyitems(config, items):
    """Long tests run only with SEGLAM_LONG=1 (scripts/test --long sets it)."""
    if os.environ.get('SEGLAM_LONG') == '1':
        return
    skip = pytest.mark.skip(reason='long test: run with scripts/test --long')
    for item in items:
        if 'long' in item.keywords:
            item.add_marker(skip)


import llm_server  # noqa: E402

UPPER = r'''#include <seglam.h>
#include <ctype.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = (char)toupper((unsigned char)in[i]);
		seglam_write(out, &c, 1);
	}
	return seglam_write(out, "\n", 1);
}
'''


def worker_pids(parent=None):
    """PIDs of seglam-worker processes (children of @parent, if given)."""
    pids = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        # stat first, and cmdline only of @parent's children: reading another
        # process's cmdline takes its mmap lock, which a tool faulting on a file
        # of a mount holds while that daemon is stopped (worker_count_frozen)
        try:
            with open(f'/proc/{d}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            if parent is not None and ppid != parent:
                continue
            with open(f'/proc/{d}/cmdline', 'rb') as f:
                argv0 = f.read().split(b'\0')[0]
        except (OSError, ValueError, IndexError):
            continue
        if argv0.endswith(b'seglam-worker'):
            pids.append(int(d))
    return pids


def worker_count_frozen(daemon):
    """How many seglam-worker children @daemon has, counted while it is stopped, by
    tests/frozen_count.py in a process of its own (its docstring says why)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'frozen_count.py'),
                        str(daemon)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return len(r.stdout.split('\n')[0].split())


def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


class Mount:
    """One seglamfs daemon serving STORE at MNT."""

    def __init__(self, tmp, name='m', store=None, options=(), env=None, library=False, prefix=()):
        self.store = store or os.path.join(tmp, name + '-store')
        self.mnt = os.path.join(tmp, name + '-mnt')
        self.logpath = os.path.join(tmp, name + '-daemon.log')
        self.options = list(options)
        self.env = dict(env or {})
        self.library = library
        self.prefix = list(prefix)  # a command the daemon runs under (unshare ...)
        self.proc = None
        os.makedirs(self.store, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(('SEGLAM_LLM', 'OPENAI_', 'ANTHROPIC_'))}
        env.update(self.env)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0')
        opts = ['-o', 'llm=none'] if not any('llm=' in o for o in self.options) and 'SEGLAM_LLM' not in self.env else []
        if self.library:
            opts += ['-o', 'library=' + LIBRARY]
        cmd = self.prefix + [SEGLAMFS, '-f'] + opts + self.options + [self.store, self.mnt]
        self.log = open(self.logpath, 'ab')
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.ismount(self.mnt):
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f'seglamfs exited {self.proc.returncode}: {self.daemon_log()}')
            time.sleep(0.02)
        raise AssertionError('mount did not appear: ' + self.daemon_log())

    def stop(self, check=True):
        if not self.proc:
            return
        if os.path.ismount(self.mnt):
            subprocess.run(['fusermount3', '-u', '-z', self.mnt], check=False)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            if check:
                raise AssertionError('seglamfs did not exit after unmount')
        self.proc = None
        self.log.close()
        if check:
            text = self.daemon_log()
            for mark in SANITIZER_MARKS:
                assert mark not in text, f'sanitizer report in daemon log:\n{text[-6000:]}'
            assert rc == 0, f'seglamfs exited {rc}:\n{text[-3000:]}'

    def daemon_log(self):
        try:
            with open(self.logpath, 'r', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    # -- helpers -----------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def ask(self, type_, name):
        with open(self.path('ask', type_, name), 'rb') as f:
            return f.read()

    def ask_errno(self, type_, name):
        try:
            self.ask(type_, name)
        except OSError as e:
            return e.errno
        return 0

    def put_proc(self, type_, source, tests=None, spec=None):
        d = self.path('procs', type_)
        if not os.path.isdir(d):
            os.mkdir(d)
        if tests:
            os.makedirs(os.path.join(d, 'tests'), exist_ok=True)
            for name, (inp, out) in tests.items():
                write(os.path.join(d, 'tests', name + '.in'), inp)
                write(os.path.join(d, 'tests', name + '.out'), out)
        if spec:
            write(os.path.join(d, 'spec'), spec)
        write(os.path.join(d, 'source.c'), source)

    def proc_log(self, type_):
        try:
            with open(self.path('procs', type_, 'log'), errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def seglam(self, *args, input=None, timeout=60):
        env = dict(os.environ, SEGLAM_MOUNT=self.mnt)
        return subprocess.run([SEGLAM] + list(args), input=input, capture_output=True,
                              env=env, timeout=timeout)

    def stats(self):
        out = {}
        with open(self.path('stats')) as f:
            for line in f:
                k, v = line.split()
                out[k] = int(v)
        return out

    def meta(self, type_):
        with open(self.path('procs', type_, 'meta.json')) as f:
            return json.load(f)


def store_contents(store):
    """Every file under STORE with its bytes. The daemon writes records while a test
    walks (counts every 10 s, logs of admissions still running): a temp file of such
    a write may be renamed or removed between the listing and the open. Its bytes
    are then in the file it was renamed to, which a later walk reads; any other file
    that vanishes is a failure."""
    for dirpath, _, files in os.walk(store):
        for fn in files:
            path = os.path.join(dirpath, fn)
            try:
                with open(path, 'rb') as f:
                    yield path, f.read()
            except FileNotFoundError:
                if not fn.startswith('.seglam-tmp.'):
                    raise


def write(path, data):
    if isinstance(data, str):
        data = data.encode()
    with open(path, 'wb') as f:
        f.write(data)


@pytest.fixture
def mounts(tmp_path):
    """Factory: mounts(name=..., options=[...], env={...}, store=..., library=..., prefix=[...])."""
    made = []

    def make(**kw):
        m = Mount(str(tmp_path), **kw)
        made.append(m)
        return m.start()

    yield make
    errors = []
    for m in made:
        try:
            m.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail('\n'.join(errors))


@pytest.fixture
def mount(mounts):
    return mounts()


class LLM:
    """The scripted test LLM server (tests/llm_server.py) on 127.0.0.1."""

    def __init__(self):
        self.server, self.port = llm_server.start_server()
        self.base = f'http://127.0.0.1:{self.port}'

    def _post(self, path, obj):
        req = urllib.request.Request(self.base + path, data=json.dumps(obj).encode(),
                                     headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def script(self, responses, default=None, api_key=None):
        body = {'responses': responses}
        if default is not None:
            body['default'] = default
        if api_key is not None:
            body['api_key'] = api_key
        self._post('/_script', body)

    def calls(self):
        with urllib.request.urlopen(self.base + '/_calls', timeout=10) as r:
            return json.loads(r.read())

    def count(self):
        return self.calls()['count']

    def env(self, provider='openai', key='sk-test-0123456789abcdef'):
        url = self.base + '/v1' if provider == 'openai' else self.base
        return {'SEGLAM_LLM': provider, 'SEGLAM_LLM_URL': url, 'SEGLAM_LLM_MODEL': 'test-model',
                'SEGLAM_LLM_API_KEY': key}


@pytest.fixture
def llm():
    s = LLM()
    yield s
    s.server.shutdown()
    s.server.server_close()
