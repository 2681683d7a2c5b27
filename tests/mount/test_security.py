"""The mount and the store as a security boundary (issue 10, daemon side; SECURITY.md).

Several users on one machine (`-o allow_other`, the unprivileged one is uid/gid
65534 via setuid in a child process), and an NFS peer that writes STORE directly
(simulated by writing STORE from the test): nobody gets root through the mount,
and no store entry makes the daemon read, write or delete outside STORE.
"""
import ctypes
import errno
import glob
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import SEGLAMFS, UPPER, Mount, write

NOBODY = 65534
AT_FDCWD = -100
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
V2 = UPPER.replace('"\\n", 1', '"!\\n", 2')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (allow_other, other users)')


@pytest.fixture
def shared_mounts():
    """Like `mounts`, but under a world-traversable directory, so that another user
    can reach the mount point (pytest's tmp_path is private to root)."""
    base = tempfile.mkdtemp(prefix='seglam-sec-', dir='/tmp')
    os.chmod(base, 0o755)
    made = []

    def make(**kw):
        m = Mount(base, **kw)
        made.append(m)
        return m.start()

    yield make
    errors = []
    for m in made:
        try:
            m.stop()
        except AssertionError as e:
            errors.append(str(e))
    shutil.rmtree(base, ignore_errors=True)
    if errors:
        pytest.fail('\n'.join(errors))


def as_nobody(code, *args):
    """Run Python @code as uid/gid 65534 with no groups; returns the CompletedProcess."""
    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return subprocess.run([sys.executable, '-c', code] + [str(a) for a in args],
                          preexec_fn=drop, capture_output=True, text=True, timeout=120)


def type_dir(store, type_):
    found = glob.glob(os.path.join(store, 'procs', '*', '*', type_))
    assert len(found) == 1, found
    return found[0]


def tree(path):
    """Every name under @path with its bytes, for "nothing changed" checks."""
    out = {}
    for root, dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def renameat2(old, new, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags)
    return 0 if rc == 0 else ctypes.get_errno()


# ---- several users ---------------------------------------------------------------


def test_setuid_shell_refused(shared_mounts):
    """A user copies a shell into procs/, chowns it to root and sets the setuid bit:
    the chown is refused, the bit never reaches the store."""
    m = shared_mounts(options=['-o', 'allow_other'])
    r = as_nobody(r'''
import errno, os, shutil, sys
mnt = sys.argv[1]
os.mkdir(os.path.join(mnt, 'procs', 'x'))
sh = os.path.join(mnt, 'procs', 'x', 'sh')
shutil.copyfile('/bin/sh', sh)
try:
    os.chown(sh, 0, 0)
    print('chown ok')
except OSError as e:
    print('chown', errno.errorcode[e.errno])
try:
    os.chmod(sh, 0o4755)
    print('chmod ok')
except OSError as e:
    print('chmod', errno.errorcode[e.errno])
st = os.stat(sh)
print('mode', oct(st.st_mode), 'uid', st.st_uid)
''', m.mnt)
    assert r.returncode == 0, r.stderr
    assert 'chown EPERM' in r.stdout, r.stdout
    stored = os.path.join(type_dir(m.store, 'x'), 'sh')
    st = os.lstat(stored)
    assert st.st_uid == NOBODY, 'a file made through the mount belongs to its maker'
    assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), oct(st.st_mode)
    # The attack's last step: run it from the STORE path. No root.
    r = as_nobody('import subprocess, sys; print(subprocess.run([sys.argv[1], "-p", "-c", '
                  '"id -u"], capture_output=True, text=True).stdout.strip())', stored)
    assert r.returncode == 0 and r.stdout.strip() == str(NOBODY), (r.stdout, r.stderr)
    # Not even root sets those bits in the store through the mount.
    os.chmod(m.path('procs', 'x', 'sh'), 0o6755)
    assert not os.lstat(stored).st_mode & 0o7000
    os.mkdir(m.path('procs', 'x', 'd'), 0o3777)
    assert not os.lstat(os.path.join(type_dir(m.store, 'x'), 'd')).st_mode & 0o7000


def test_other_users_procedures_are_theirs(shared_mounts):
    """allow_other implies default_permissions: a user cannot change a procedure
    another user (here root) owns, nor give away or take files."""
    m = shared_mounts(options=['-o', 'allow_other'])
    m.put_proc('rootp', UPPER)
    assert m.ask('rootp', 'abc') == b'ABC\n'
    r = as_nobody(r'''
import errno, os, sys
d = os.path.join(sys.argv[1], 'procs', 'rootp')
for what, fn in [('write', lambda: open(os.path.join(d, 'source.c'), 'w')),
                 ('chmod', lambda: os.chmod(os.path.join(d, 'source.c'), 0o666)),
                 ('utime', lambda: os.utime(os.path.join(d, 'source.c'), (1, 1))),
                 ('unlink', lambda: os.unlink(os.path.join(d, 'source.c'))),
                 ('rmtype', lambda: os.rename(d, d + '2')),
                 ('procs-utime', lambda: os.utime(os.path.dirname(d), (1, 1))),
                 ('procs-chmod', lambda: os.chmod(os.path.dirname(d), 0o755))]:
    try:
        fn()
        print(what, 'ok')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
''', m.mnt)
    assert r.returncode == 0, r.stderr
    for what in ('write', 'chmod', 'utime', 'unlink', 'rmtype', 'procs-utime', 'procs-chmod'):
        assert f'{what} ok' not in r.stdout, r.stdout
    assert m.ask('rootp', 'abc') == b'ABC\n'


def test_device_files_never_made(mount):
    os.mkdir(mount.path('procs', 't'))
    with pytest.raises(OSError) as e:
        os.mkfifo(mount.path('procs', 't', 'fifo'))
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.mknod(mount.path('procs', 't', 'null'), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert e.value.errno == errno.EPERM
    write(mount.path('procs', 't', 'a'), 'a')
    assert renameat2(mount.path('procs', 't', 'a'), mount.path('procs', 't', 'b'),
                     RENAME_WHITEOUT) == errno.EINVAL
    assert sorted(os.listdir(mount.path('procs', 't'))) == ['a']


def test_tmp_names_refused(mount):
    d = mount.path('procs', 't')
    os.mkdir(d)
    write(os.path.join(d, 'f'), 'x')
    tmp = os.path.join(d, '.seglam-tmp.evil.1.2')
    for fn in (lambda: os.mkdir(tmp), lambda: os.symlink('f', tmp),
               lambda: os.link(os.path.join(d, 'f'), tmp), lambda: open(tmp, 'w'),
               lambda: os.rename(os.path.join(d, 'f'), tmp)):
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno in (errno.EINVAL, errno.EPERM)
    assert sorted(os.listdir(type_dir(mount.store, 't'))) == ['f']


# ---- nothing outside STORE ------------------------------------------------------


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / 'outside'
    d.mkdir()
    (d / 'secret').write_text('canary-secret\n')
    os.chmod(d / 'secret', 0o600)
    return str(d)


def test_rename_exchange_with_symlink(mount, outside):
    """A held directory exchanged with a symlink to a directory outside the store:
    the held node follows its directory, and nothing outside is read or written."""
    before = tree(outside)
    t = mount.path('procs', 't')
    os.mkdir(t)
    os.mkdir(os.path.join(t, 'd'))
    write(os.path.join(t, 'd', 'mine'), 'mine\n')
    fd = os.open(os.path.join(t, 'd'), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.symlink(outside, os.path.join(t, 'l'))
        assert renameat2(os.path.join(t, 'd'), os.path.join(t, 'l'), RENAME_EXCHANGE) == 0
        assert os.readlink(os.path.join(t, 'd')) == outside
        # The held descriptor still names the directory (now called l).
        with open(os.open('mine', os.O_RDONLY, dir_fd=fd)) as f:
            assert f.read() == 'mine\n'
        with pytest.raises(OSError):
            os.open('secret', os.O_RDONLY, dir_fd=fd)
        wfd = os.open('new', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b'written\n')
        os.close(wfd)
        assert sorted(os.listdir(os.path.join(t, 'l'))) == ['mine', 'new']
    finally:
        os.close(fd)
    assert tree(outside) == before
    assert sorted(os.listdir(os.path.join(type_dir(mount.store, 't'), 'l'))) == ['mine', 'new']


def test_history_planted_as_symlink(mounts, outside):
    """procs/T/history made a symlink in STORE (an NFS peer): the daemon neither writes
    the old source there nor prunes it."""
    m = mounts(options=['-o', 'history=1'])
    # Names the daemon would make, and others: none may be touched.
    for name in ('20200101T000000Z-0000000000000001.c', '20200101T000000Z-0000000000000002.c',
                 'notes.txt'):
        write(os.path.join(outside, name), name)
    before = tree(outside)
    m.put_proc('t', UPPER)
    assert m.ask('t', 'abc') == b'ABC\n'
    tdir = type_dir(m.store, 't')
    shutil.rmtree(os.path.join(tdir, 'history'), ignore_errors=True)
    os.symlink(outside, os.path.join(tdir, 'history'))
    write(m.path('procs', 't', 'source.c'), V2)
    assert m.ask('t', 'abc') == b'ABC!\n'
    assert tree(outside) == before
    assert os.path.islink(os.path.join(tdir, 'history'))
    assert 'refused' in m.daemon_log()


def test_tests_planted_as_symlink(mounts, outside):
    """tests/ a symlink in STORE to a directory of root-only files: never read (not
    into admission, logs or a prompt)."""
    write(os.path.join(outside, 'x.in'), 'topsecret')
    write(os.path.join(outside, 'x.out'), 'not the answer')
    m = mounts()
    m.put_proc('t', UPPER)
    tdir = type_dir(m.store, 't')
    os.symlink(outside, os.path.join(tdir, 'tests'))
    assert m.ask('t', 'abc') == b'ABC\n'
    assert 'topsecret' not in m.proc_log('t')
    assert 'topsecret' not in m.daemon_log()
    assert 'passed 0 tests' in m.proc_log('t')


def test_tests_symlink_never_reaches_the_prompt(mounts, llm, outside):
    """With an LLM: tests/ and spec planted as symlinks to outside files; the prompt,
    the logs and last-prompt.txt never see them."""
    write(os.path.join(outside, 'x.in'), 'topsecret-input')
    write(os.path.join(outside, 'x.out'), 'TOPSECRET-INPUT\n')
    m = mounts(env=llm.env())
    os.mkdir(m.path('procs', 'caps'))
    tdir = type_dir(m.store, 'caps')
    os.symlink(outside, os.path.join(tdir, 'tests'))
    os.symlink(os.path.join(outside, 'secret'), os.path.join(tdir, 'spec'))
    llm.script([{'kind': 'code', 'code': UPPER}])
    assert m.ask('caps', 'abc') == b'ABC\n'
    prompt = llm.calls()['calls'][0]['prompt']
    assert 'topsecret' not in prompt and 'canary-secret' not in prompt
    # Through the mount: the record may still be on its way to STORE.
    with open(m.path('procs', 'caps', 'last-prompt.txt')) as f:
        assert 'topsecret' not in f.read()
    assert 'topsecret' not in m.daemon_log() and 'canary-secret' not in m.daemon_log()


def test_nearest_types_in_a_prompt_never_follow_a_symlinked_tests(mounts, llm, outside):
    """The synthesis prompt lists nearby types with an example from their tests/: a
    tests/ planted as a symlink out of STORE is not read for it."""
    write(os.path.join(outside, 'x.in'), 'topsecret-input')
    write(os.path.join(outside, 'x.out'), 'TOPSECRET-INPUT\n')
    m = mounts(env=llm.env())
    m.put_proc('caps-helper', UPPER, spec='Upper-case caps helper.\n')
    os.symlink(outside, os.path.join(type_dir(m.store, 'caps-helper'), 'tests'))
    llm.script([{'kind': 'code', 'code': UPPER}])
    assert m.ask('caps', 'abc') == b'ABC\n'
    prompt = llm.calls()['calls'][0]['prompt']
    assert 'caps-helper' in prompt  # the neighbour is listed...
    assert 'topsecret' not in prompt  # ...without what its symlinked tests/ holds


def test_type_dir_planted_as_symlink(mounts, outside):
    """A type directory that is a symlink in STORE is refused: nothing is written
    where it points (log, meta.json, prompts)."""
    m = mounts()
    os.mkdir(m.path('procs', 'evil'))
    tdir = type_dir(m.store, 'evil')
    os.rmdir(tdir)
    write(os.path.join(outside, 'source.c'), UPPER)
    os.symlink(outside, tdir)
    before = tree(outside)
    assert m.ask_errno('evil', 'abc') == errno.ENOENT
    with pytest.raises(OSError):
        os.listdir(m.path('procs', 'evil'))
    assert tree(outside) == before
    assert 'refused' in m.daemon_log()


def test_fifo_in_store_does_not_hang(mounts):
    """FIFOs planted in tests/ and beside source.c: admission ignores them, and the
    mount does not serve them (no name to open, nothing for the daemon to wait on)."""
    m = mounts()
    m.put_proc('t', UPPER, tests={'a': ('x', 'X\n')})
    tdir = type_dir(m.store, 't')
    os.mkfifo(os.path.join(tdir, 'tests', 'f.in'))
    os.mkfifo(os.path.join(tdir, 'tests', 'f.out'))
    os.mkfifo(os.path.join(tdir, 'pipe'))
    assert m.ask('t', 'abc') == b'ABC\n'
    for name in ('pipe', 'tests/f.in'):
        # timeout= only guards the suite against a hang; the assertion is the failure.
        r = subprocess.run(['cat', m.path('procs', 't', name)], capture_output=True, timeout=60)
        assert r.returncode != 0
    assert 'pipe' not in os.listdir(m.path('procs', 't'))
    write(m.path('procs', 't', 'tests', 'a.out'), 'X!\n')
    write(m.path('procs', 't', 'source.c'), V2)
    assert m.ask('t', 'abc') == b'ABC!\n'


# ---- memory ---------------------------------------------------------------------


def write_all(fd, data):
    """Write @data through FUSE; returns 0 or the errno that stopped it."""
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view[:131072])
            view = view[n:]
    except OSError as e:
        return e.errno
    return 0


def test_query_memory_budget(mounts):
    m = mounts(options=['-o', 'query_mem=1'])
    m.put_proc('t', UPPER)
    chunk = b'a' * (700 << 10)
    f1 = os.open(m.path('query', 't'), os.O_RDWR)
    f2 = os.open(m.path('query', 't'), os.O_RDWR)
    try:
        assert write_all(f1, chunk) == 0
        assert write_all(f2, chunk) == errno.ENOSPC
    finally:
        os.close(f1)
        os.close(f2)
    # Closed handles give their bytes back.
    f3 = os.open(m.path('query', 't'), os.O_RDWR)
    try:
        assert write_all(f3, chunk) == 0
        os.lseek(f3, len(chunk), os.SEEK_SET)
        assert os.read(f3, 1 << 21) == b'A' * len(chunk) + b'\n'
    finally:
        os.close(f3)


def peak_rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) // 1024
    raise AssertionError('no VmHWM')


def test_test_bytes_capped(mounts):
    """300 hard links of one 1 MiB case (and its 1 MiB answer) do not make one read
    hold 600 MB: tests/ is read up to -o tests_max (default 16 MB), one case at a
    time, and the daemon log says why the rest is left out."""
    m = mounts()
    m.put_proc('t', UPPER, tests={'a': ('x', 'X\n')})
    tests = os.path.join(type_dir(m.store, 't'), 'tests')
    write(os.path.join(tests, 'big0.in'), b'y' * ((1 << 20) - 1))
    write(os.path.join(tests, 'big0.out'), b'Y' * ((1 << 20) - 1) + b'\n')
    for i in range(1, 300):
        os.link(os.path.join(tests, 'big0.in'), os.path.join(tests, f'big{i}.in'))
        os.link(os.path.join(tests, 'big0.out'), os.path.join(tests, f'big{i}.out'))
    assert m.ask('t', 'abc') == b'ABC\n'
    assert 'tests_max' in m.daemon_log()
    # The cap, not the directory, bounds what the daemon held (600 MB before it).
    assert peak_rss_mb(m.proc.pid) < 400


def test_a_case_too_big_to_run_is_not_passed(mounts):
    """A case file over 1 MiB (the most one case may be) cannot be run: the source
    is not admitted on tests it was never run on.  The reader gets EIO, the log
    names the case, and a smaller case admits it again."""
    m = mounts(options=['-o', 'revalidate=100'])
    m.put_proc('tb', UPPER, tests={'a': ('x', 'X\n')})
    tests = os.path.join(type_dir(m.store, 'tb'), 'tests')
    write(os.path.join(tests, 'big.in'), b'y' * ((1 << 20) + 1))
    write(os.path.join(tests, 'big.out'), b'not what it prints\n')
    assert m.ask_errno('tb', 'abc') == errno.EIO
    log = open(os.path.join(type_dir(m.store, 'tb'), 'log')).read()
    assert 'tests/big: over 1 MiB' in log, log
    meta = open(os.path.join(type_dir(m.store, 'tb'), 'meta.json')).read()
    assert '"passed"' not in meta, meta
    write(os.path.join(tests, 'big.in'), b'y')
    write(os.path.join(tests, 'big.out'), b'Y\n')
    for _ in range(100):
        if m.ask_errno('tb', 'abd') == 0:
            break
        time.sleep(0.1)
    assert m.ask('tb', 'abd') == b'ABD\n'


# ---- options --------------------------------------------------------------------


@pytest.mark.parametrize('opt,msg', [
    ('timeout=-5', 'must be a positive number of milliseconds'),
    ('timeout=0', 'must be a positive number of milliseconds'),
    ('memo=99999999999999999999999', 'must be a positive number of MB'),
    ('workers=4x', 'must be a positive number of workers'),
    ('workers_mem=0', 'must be a positive number of MB'),
    ('query_mem=0', 'must be a positive number of MB'),
    ('history=-1', 'must be a positive number'),
])
def test_numeric_options_refused(tmp_path, opt, msg):
    store, mnt = tmp_path / 's', tmp_path / 'm'
    store.mkdir()
    mnt.mkdir()
    p = subprocess.Popen([SEGLAMFS, '-f', '-o', 'llm=none', '-o', opt, str(store), str(mnt)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        subprocess.run(['fusermount3', '-u', '-z', str(mnt)], check=False)
        p.kill()
        p.communicate()
        pytest.fail(f'-o {opt} mounted')
    assert p.returncode != 0
    assert f'seglamfs: -o {opt}: {msg}' in out, out
    assert not os.path.ismount(mnt)


# ---- restore ----------------------------------------------------------------------


@pytest.fixture
def backup(tmp_path):
    b = tmp_path / 'backup'
    (b / 'upper' / 'tests').mkdir(parents=True)
    (b / 'upper' / 'source.c').write_text(UPPER)
    (b / 'upper' / 'tests' / 'a.in').write_text('x')
    (b / 'upper' / 'tests' / 'a.out').write_text('X\n')
    (b / 'upper' / 'spec').write_text('upper case\n')
    os.utime(b, (1_000_000_000, 1_000_000_000))
    os.chmod(b, 0o750)
    return str(b)


@pytest.mark.parametrize('tool', ['rsync', 'cp', 'tar'])
def test_restore_exits_zero(mount, backup, tmp_path, tool):
    procs = mount.path('procs')
    if tool == 'rsync':
        cmd = ['rsync', '-a', backup + '/', procs + '/']
    elif tool == 'cp':
        cmd = ['cp', '-a', backup + '/.', procs + '/']
    else:
        tarball = str(tmp_path / 'b.tar')
        subprocess.run(['tar', '-C', backup, '-cf', tarball, '.'], check=True)
        cmd = ['tar', '-C', procs, '-xf', tarball]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert mount.ask('upper', 'abc') == b'ABC\n'
    with open(mount.path('procs', 'upper', 'spec')) as f:
        assert f.read() == 'upper case\n'


# Root's type: the address of a static with a value no other image holds.
MARKED = r'''#include <seglam.h>
static unsigned marked = 0x5ec12e7;
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len;
	return seglam_printf(out, "%p\n", (void *)&marked);
}
'''
# Looks at an address in its own worker (probing with madvise, which the filter
# allows, so an unmapped one is no crash): root's static there means root's
# images are in the worker that runs it.
PEEK = r'''#include <seglam.h>
#include <stdlib.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	unsigned long a = strtoul(in, 0, 16);
	(void)len;
	if (sys3(28, (long)(a & ~4095UL), 4096, 0) != 0)
		return seglam_printf(out, "unmapped\n");
	return seglam_printf(out, *(volatile unsigned *)a + 1 == 0x5ec12e8 ? "root's\n" : "other\n");
}
'''


def test_a_daemon_file_renamed_to_source_runs_as_its_directory_owner(shared_mounts):
    """A user's type directory may hold files of the daemon's (root's) with the
    user's own bytes: history/ keeps each replaced source.c verbatim.  Renamed back
    over source.c, such a file is still the user's code (they could put it there),
    so it runs in the user's worker, never in root's with root's compiled types
    (SECURITY.md point 3)."""
    m = shared_mounts(options=['-o', 'allow_other', '-o', 'revalidate=100'])
    m.put_proc('lr-root', MARKED)
    addr = m.ask('lr-root', 'x').decode().strip()
    r = as_nobody(r'''
import os, subprocess, sys, time
mnt, peek, addr = sys.argv[1], sys.argv[2], sys.argv[3]
d = os.path.join(mnt, 'procs', 'lr')
os.makedirs(os.path.join(d, 'history'))
def ask(i):
    with open(os.path.join(mnt, 'ask', 'lr', addr + ' ' * i), 'rb') as f:
        return f.read().decode().strip()
def put(src):
    with open(os.path.join(d, 'source.c'), 'w') as f:
        f.write(src)
    time.sleep(0.3)
put(peek)
print('v1', ask(1))
put(peek.replace('other', 'v2 other'))
print('v2', ask(2))
old = os.listdir(os.path.join(d, 'history'))
print('history', old, os.stat(os.path.join(d, 'history', old[0])).st_uid)
os.rename(os.path.join(d, 'history', old[0]), os.path.join(d, 'source.c'))
time.sleep(0.3)
print('laundered', ask(3), os.stat(os.path.join(d, 'source.c')).st_uid)
''', m.mnt, PEEK, addr)
    assert r.returncode == 0, r.stderr
    lines = dict(l.split(' ', 1) for l in r.stdout.splitlines())
    assert lines['v1'] in ('unmapped', 'other'), r.stdout
    # (the history copy is the daemon's file, with the user's bytes)
    assert lines['history'].endswith(' 0'), r.stdout
    assert lines['laundered'] in ('unmapped 0', 'other 0'), r.stdout
    assert m.ask('lr-root', 'y').decode().strip() == addr


REJECTS = r'''#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)len;
	seglam_printf(out, "no: %s", in);
	return 1;
}
'''


def test_log_never_written_through_a_hard_link(mount):
    """A peer writing STORE names another file `log` (a hard link: here another
    type's source.c, which nobody may write).  The daemon writes nothing through
    it: the type's log starts over as a file of its own, without the other
    file's bytes, and the other file is as it was."""
    mount.put_proc('hl-victim', UPPER)
    assert mount.ask('hl-victim', 'a') == b'A\n'
    mount.put_proc('hl', REJECTS)
    assert mount.ask_errno('hl', 'first') == errno.EINVAL
    victim = os.path.join(type_dir(mount.store, 'hl-victim'), 'source.c')
    log = os.path.join(type_dir(mount.store, 'hl'), 'log')
    os.chmod(victim, 0o400)
    before = open(victim, 'rb').read()
    os.unlink(log)
    os.link(victim, log)
    assert mount.ask_errno('hl', 'second') == errno.EINVAL
    assert open(victim, 'rb').read() == before
    assert os.stat(victim).st_nlink == 1
    st = os.stat(log)
    text = open(log, 'rb').read()
    assert st.st_nlink == 1 and b'no: second' in text, text
    assert b'seglam_run' not in text, text
    assert mount.ask('hl-victim', 'b') == b'B\n'
    assert mount.ask_errno('hl', 'third') == errno.EINVAL
    assert b'no: third' in open(log, 'rb').read()


def test_usage_record_never_written_through_a_hard_link(mounts):
    """STORE/usage/HOST, appended at unmount, is not written through a hard link
    either: a peer's link to another file leaves that file as it was."""
    m = mounts()
    m.put_proc('hl-u', UPPER)
    assert m.ask('hl-u', 'a') == b'A\n'
    victim = os.path.join(type_dir(m.store, 'hl-u'), 'source.c')
    before = open(victim, 'rb').read()
    usage = os.path.join(m.store, 'usage')
    os.makedirs(usage, exist_ok=True)
    record = os.path.join(usage, os.uname().nodename.replace('/', '_'))
    if os.path.exists(record):
        os.unlink(record)
    os.link(victim, record)
    m.stop()
    assert open(victim, 'rb').read() == before
    assert os.stat(record).st_nlink == 1
    text = open(record, 'rb').read()
    assert b'asks=' in text and b'seglam_run' not in text, text


SLOW_ECHO = r'''#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	volatile unsigned long x = 0;
	for (unsigned long i = 0; i < 100000000UL; i++)
		x += i;
	return seglam_write(out, in, len);
}
'''


def test_rm_r_of_a_type_wins_over_the_daemons_records(mount):
    """rm -r empties a type's directory, then removes it.  The daemon writes its
    records of the type (counts flushed to meta.json every 10 s, a failure's log
    line) on its own schedule; one written after rm listed the directory made the
    rmdir fail with ENOTEMPTY although rm removed everything it saw.  Shown
    without a race: the directory emptied, then the counts flush, then rmdir."""
    m = mount
    m.put_proc('flushed', UPPER)
    for i in range(3):
        assert m.ask('flushed', f'x{i}') == f'X{i}\n'.encode()
    d = m.path('procs', 'flushed')
    for dirpath, dirs, files in os.walk(d, topdown=False):
        for f in files:
            os.unlink(os.path.join(dirpath, f))
        for sub in dirs:
            os.rmdir(os.path.join(dirpath, sub))
    (store_dir,) = glob.glob(os.path.join(m.store, 'procs', '*', '*', 'flushed'))
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(store_dir, 'meta.json')) and time.time() < deadline:
        time.sleep(0.2)
    assert os.listdir(store_dir) == ['meta.json'], 'the counts flush wrote no record: nothing shown'
    os.rmdir(d)
    assert 'flushed' not in os.listdir(m.path('procs'))
    assert not os.path.exists(store_dir)


def test_records_go_only_for_a_caller_who_may_remove_them(shared_mounts):
    """The records go only for a caller who may remove entries of the directory:
    its owner may rmdir a type it made read-only (the kernel checks only procs/,
    sticky), but not have the daemon empty it first."""
    m = shared_mounts(options=['-o', 'allow_other'])
    r = as_nobody('import os, sys\nos.mkdir(sys.argv[1])\n', m.path('procs', 'ro'))
    assert r.returncode == 0, r.stderr
    write(m.path('procs', 'ro', 'log'), 'a record\n')
    r = as_nobody('import os, sys\nos.chmod(sys.argv[1], 0o555)\ntry:\n    os.rmdir(sys.argv[1])\n'
                  'except OSError as e:\n    print(e.errno)\n', m.path('procs', 'ro'))
    assert r.stdout.strip() == str(errno.ENOTEMPTY), (r.stdout, r.stderr)
    assert os.path.exists(m.path('procs', 'ro', 'log'))


def test_a_type_deleted_during_its_admission_stays_deleted(mounts):
    """The daemon records an admission (its log line, meta.json) after its tests
    ran, without a lock held; a type deleted meanwhile must stay deleted, not come
    back as a directory of root's that its owner cannot remove."""
    m = mounts()
    m.put_proc('gone', SLOW_ECHO, tests={f't{i}': (f'a{i}', f'a{i}') for i in range(6)})
    done = []
    t = threading.Thread(target=lambda: done.append(m.ask_errno('gone', 'hi')))
    t.start()
    time.sleep(0.5)
    shutil.rmtree(m.path('procs', 'gone'))
    t.join(120)
    assert done, 'the read did not end'
    for _ in range(30):  # (the counts flush and the sweeper come later)
        assert not glob.glob(os.path.join(m.store, 'procs', '*', '*', 'gone')), \
            os.listdir(os.path.join(m.store, 'procs'))
        time.sleep(0.1)
    assert 'gone' not in os.listdir(m.path('procs'))
