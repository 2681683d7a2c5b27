"""Operating seglamfs like any filesystem tool (issue 15): tail -F on a type's log,
interrupting a slow miss, the reason of a rejection, stats, mount checks, git in
procs/, manual pages and completion."""
import errno
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import MESON_BUILD, ROOT, SEGLAMFS, UPPER
from test_shared import store_type_dir

WAIT_S = 30  # generous: the machine is loaded; never a timing assertion

REJECT_X = r'''#include <seglam.h>
#include <string.h>
/* rejects inputs starting with x, with a reason naming the input */
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	if (len && in[0] == 'x') {
		seglam_printf(out, "no x please: %s", in);
		return 1;
	}
	return seglam_printf(out, "%zu\n", len);
}
'''


class Tail:
    """A real `tail` process whose output is collected by a thread."""

    def __init__(self, args):
        self.p = subprocess.Popen(['tail'] + args, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.out = b''
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for chunk in iter(lambda: os.read(self.p.stdout.fileno(), 65536), b''):
            with self.cond:
                self.out += chunk
                self.cond.notify_all()

    def wait_for(self, needle):
        with self.cond:
            self.cond.wait_for(lambda: needle in self.out, timeout=WAIT_S)
            return needle in self.out

    def stop(self):
        self.p.kill()
        self.p.wait()


def test_tail_follows_log_locally_and_from_another_daemon(mounts):
    a = mounts(name='a')
    a.put_proc('rej', REJECT_X)
    assert a.ask('rej', 'abc') == b'3\n'
    log = a.path('procs', 'rej', 'log')
    st0 = os.stat(log)
    follow = Tail(['-F', '-s', '0.1', '-n', '+1', log])
    by_fd = Tail(['-f', '-s', '0.1', '-n', '+1', log])
    try:
        assert a.ask_errno('rej', 'x-first') == errno.EINVAL
        assert follow.wait_for(b'x-first'), follow.out
        assert by_fd.wait_for(b'x-first'), by_fd.out
        # The log grew in place: same file, so an open descriptor reads on.
        assert os.stat(log).st_ino == st0.st_ino
        # A second daemon on the same store appends to the same file.
        b = mounts(name='b', store=a.store)
        assert b.ask_errno('rej', 'x-from-b') == errno.EINVAL
        assert follow.wait_for(b'x-from-b'), follow.out
        assert by_fd.wait_for(b'x-from-b'), by_fd.out
    finally:
        follow.stop()
        by_fd.stop()
    text = open(log, 'rb').read()
    assert all(line[:4].isdigit() for line in text.splitlines()), text


def test_log_rotation_keeps_name_and_whole_lines(mounts):
    m = mounts()
    m.put_proc('rej', REJECT_X)
    assert m.ask_errno('rej', 'x0') == errno.EINVAL
    log = m.path('procs', 'rej', 'log')
    # Fill the log close to its 64 KiB cap, as months of use would.
    stored = os.path.join(store_type_dir(m.store, 'rej'), 'log')
    with open(stored, 'ab') as f:
        i = 0
        while f.tell() < 65300:
            f.write(b'2026-01-01T00:00:00Z filler line %04d %s\n' % (i, b'.' * 60))
            i += 1
    size_before = os.path.getsize(log)
    follow = Tail(['-F', '-s', '0.1', '-n', '0', log])
    try:
        for j in range(20):
            m.ask_errno('rej', 'x-late-%d' % j)
            if os.path.getsize(log) < size_before:
                break
            if j % 5 == 4:
                time.sleep(1.05)  # the per-type log rate limit is 5 lines a second
        assert os.path.getsize(log) < size_before, 'log never rotated'
        m.ask_errno('rej', 'x-after-rotation')
        assert follow.wait_for(b'x-after-rotation'), follow.out[-500:]
    finally:
        follow.stop()
    text = open(log, 'rb').read()
    assert len(text) <= 64 * 1024
    lines = text.splitlines()
    assert lines[0].startswith(b'2026-') and b'x-after-rotation' in lines[-1]
    for line in lines:
        assert line[:2] == b'20' and line[10:11] == b'T', line


def wait_until(pred, what):
    deadline = time.time() + WAIT_S
    while not pred():
        assert time.time() < deadline, 'never happened: ' + what
        time.sleep(0.05)


def test_signal_ends_a_cat_waiting_on_a_slow_miss(mounts, llm):
    """Ctrl-C (SIGINT) and SIGKILL of a reader waiting for the LLM end it at once;
    the synthesis finishes in the background and the next reader gets the answer."""
    llm.script([{'kind': 'slow', 'delay': 12, 'then': {'kind': 'auto'}}])
    m = mounts(env=llm.env())
    for sig in (signal.SIGINT, signal.SIGKILL):
        cat = subprocess.Popen(['cat', m.path('ask', 'double', '21')],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: llm.count() == 1, 'the miss reached the LLM')
        time.sleep(0.2)  # let cat block in the kernel (not needed for correctness)
        cat.send_signal(sig)
        cat.communicate(timeout=WAIT_S)
        assert cat.returncode == -sig
        # cat is gone while the LLM is still answering: no procedure yet.
        assert llm_busy(m)
    assert m.ask('double', '21') == b'42\n'
    assert llm.count() == 1


def llm_busy(m):
    """No source.c for `double` in the store yet: the synthesis has not finished."""
    for dirpath, _, files in os.walk(os.path.join(m.store, 'procs')):
        if os.path.basename(dirpath) == 'double' and 'source.c' in files:
            return False
    return True


def test_ask_prints_the_reason_of_this_read(mount):
    m = mount
    m.put_proc('rej', REJECT_X)
    r = m.seglam('ask', 'rej', "x'first")
    assert r.returncode == 1
    assert r.stderr == b"seglam: rej: input rejected: no x please: x'first\n"
    r = m.seglam('ask', 'rej', 'x-second')
    assert r.returncode == 1 and b'x-second' in r.stderr
    # Memoized now, and the log's last line is about x-second: still its own reason.
    r = m.seglam('ask', 'rej', "x'first")
    assert (r.returncode, r.stderr) == (1, b"seglam: rej: input rejected: no x please: x'first\n")
    r = m.seglam('ask', 'rej', 'hello')
    assert (r.returncode, r.stdout, r.stderr) == (0, b'5\n', b'')
    r = m.seglam('ask', 'rej', input=b'multi\nline\x00bytes')
    assert (r.returncode, r.stdout) == (0, b'16\n')
    # The status file itself, as any program can read it.
    fd = os.open(m.path('query', '.status', 'rej'), os.O_RDWR)
    try:
        os.write(fd, b'xyz')
        assert os.read(fd, 4096) == b'rejected\nno x please: xyz\n'
    finally:
        os.close(fd)
    r = m.seglam('ask', 'nosuchtype', 'a')
    assert r.returncode == 2
    m.put_proc('broken', 'int seglam_run(void) { return nope; }\n')
    r = m.seglam('ask', 'broken', 'a')
    assert r.returncode == 3 and b'broken: failed: ' in r.stderr and b'nope' in r.stderr, r.stderr


def test_stats_count_each_ask_once_and_show_llm_usage(mounts, llm):
    m = mounts(env=llm.env(), options=['-o', 'price_in=3', '-o', 'price_out=15'])
    for i in range(10):
        assert m.ask('double', str(i)) == f'{2 * i}\n'.encode()
    for i in range(3):
        os.stat(m.path('ask', 'double', '1'))
        assert m.ask('double', '1') == b'2\n'
    s = m.stats()
    assert s['asks'] == 13 and s['answers'] == 13, s
    # One synthesis (with validation, more than one LLM call).
    assert s['syntheses'] == 1 and s['llm_calls'] >= 1, s
    assert s['llm_tokens_in'] > 0 and s['llm_tokens_out'] > 0, s
    assert s['llm_cost_micro'] == 3 * s['llm_tokens_in'] + 15 * s['llm_tokens_out'], s
    assert s['hot.double'] == 13 and 'uptime_s' in s, s
    m.stop()
    m.start()
    assert m.meta('double')['hits'] == 13
    hist = os.listdir(os.path.join(m.store, 'usage'))
    assert len(hist) == 1
    lines = open(os.path.join(m.store, 'usage', hist[0])).read().splitlines()
    assert sum(int(dict(kv.split('=') for kv in ln.split()[1:])['asks']) for ln in lines) == 13
    assert sum(int(dict(kv.split('=') for kv in ln.split()[1:])['llm_calls'])
               for ln in lines) == s['llm_calls']


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@example.org',
               GIT_COMMITTER_NAME='t', GIT_COMMITTER_EMAIL='t@example.org', HOME=cwd)
    r = subprocess.run(['git'] + list(args), cwd=cwd, capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout.decode()


def test_git_in_procs_and_clone_into_an_empty_mount(mounts):
    a = mounts(name='a')
    a.put_proc('upper', UPPER, tests={'one': ('ab', 'AB\n')})
    a.put_proc('rej', REJECT_X)
    assert a.ask_errno('rej', 'x1') == errno.EINVAL
    procs = a.path('procs')
    git(procs, 'init', '-q')
    with open(os.path.join(procs, '.gitignore'), 'w') as f:
        f.write('meta.json\nlog\nlast-prompt.txt\nlast-reply.txt\nhistory/\n')
    git(procs, 'add', '-A')
    git(procs, 'commit', '-q', '-m', 'procedures')
    files = git(procs, 'ls-files').split()
    assert sorted(files) == ['.gitignore', 'rej/source.c', 'upper/source.c',
                             'upper/tests/one.in', 'upper/tests/one.out'], files
    assert git(procs, 'status', '--porcelain') == ''
    # .git is never a type: not in ask/, kept as plain files in the store.
    assert '.git' not in os.listdir(a.path('ask'))
    assert not os.path.exists(a.path('ask', '.git'))
    assert os.path.isfile(os.path.join(a.store, 'procs', '.git', 'HEAD'))
    assert '.git' in os.listdir(procs)
    # Roll back an edit with git.
    with open(os.path.join(procs, 'upper', 'source.c'), 'a') as f:
        f.write('/* edited */\n')
    git(procs, 'checkout', '--', 'upper/source.c')
    assert git(procs, 'status', '--porcelain') == ''
    assert a.ask('upper', 'hi') == b'HI\n'
    # A fresh, empty mount gets the procedures by cloning.
    b = mounts(name='b')
    git(b.mnt, 'clone', '-q', procs, b.path('procs'))
    assert b.ask('upper', 'clone') == b'CLONE\n'
    assert b.ask_errno('rej', 'x2') == errno.EINVAL
    assert git(b.path('procs'), 'log', '--format=%s') == 'procedures\n'


def test_history_survives_restart_and_report_draws_it(mounts, llm, tmp_path):
    import xml.etree.ElementTree as ET
    m = mounts(env=llm.env(), options=['-o', 'price_in=2', '-o', 'price_out=10'])
    for i in range(5):
        assert m.ask('double', str(i)) == f'{2 * i}\n'.encode()
    calls = m.stats()['llm_calls']
    m.stop()
    # Day 1 of another host sharing the store: many LLM calls, few hits.
    with open(os.path.join(m.store, 'usage', 'otherhost'), 'w') as f:
        for day in range(3):
            t = time.gmtime(time.time() - (30 - day) * 86400)
            f.write(time.strftime('%Y-%m-%dT%H:%M:%SZ', t) +
                    ' asks=10 answers=9 rejected=1 errors=0 llm_calls=8 tokens_in=8000'
                    ' tokens_out=2000 cost_micro=36000\n')
    m.start()
    svg = str(tmp_path / 'r.svg')
    r = m.seglam('report', '-o', svg)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert 'LLM calls %d ' % (3 * 8 + calls) in text, text  # otherhost's + ours
    assert 'asks 35' in text, text
    assert 'hottest types (hits):\n  double' in text, text
    assert 'most expensive types' in text and 'double' in text.split('most expensive')[1], text
    root = ET.parse(svg).getroot()
    assert root.tag.endswith('svg')
    assert len(root.findall('.//{http://www.w3.org/2000/svg}rect')) > 4
    assert 'per day' in open(svg).read() and '%%' not in open(svg).read()


def test_ask_shows_progress_on_a_terminal_only(mounts, llm):
    import pty
    llm.script([{'kind': 'slow', 'delay': 3, 'then': {'kind': 'auto'}},
                {'kind': 'slow', 'delay': 3, 'then': {'kind': 'auto'}}])
    m = mounts(env=llm.env())
    # Not a terminal: only the answer, nothing on stderr.
    r = m.seglam('ask', 'double', '4')
    assert (r.returncode, r.stdout, r.stderr) == (0, b'8\n', b'')
    # stderr on a terminal: the elapsed time and what is happening.
    master, slave = pty.openpty()
    env = dict(os.environ, SEGLAM_MOUNT=m.mnt)
    p = subprocess.Popen([os.path.join(ROOT, 'scripts', 'seglam'), 'ask', 'add-one', '5'],
                         stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    out, _ = p.communicate(timeout=120)
    seen = b''
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert (p.returncode, out) == (0, b'6\n')
    assert b'add-one: ' in seen and b'asking the LLM' in seen, seen


def test_mount_checks_fsname_dates_and_no_thread_warning(mounts, tmp_path):
    m = mounts(name='a')
    assert 'Ignoring invalid max threads' not in m.daemon_log()
    src = subprocess.run(['findmnt', '-n', '-o', 'SOURCE,FSTYPE', '--mountpoint', m.mnt],
                         capture_output=True, text=True).stdout.split()
    assert src == [os.path.realpath(m.store), 'fuse.seglamfs'], src
    for name in ('', 'ask', 'procs', 'query', 'stats'):
        assert os.stat(m.path(name)).st_mtime > 1e9, name  # the mount time, not 1970
    # A second daemon on the same mount point is refused, not stacked.
    other = tmp_path / 'other-store'
    other.mkdir()
    r = subprocess.run([SEGLAMFS, '-f', '-o', 'llm=none', str(other), m.mnt],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and 'already a mount point' in r.stderr, r.stderr
    assert os.path.isdir(m.path('ask'))
    # A regular file is not a mount point.
    f = tmp_path / 'file'
    f.write_text('x')
    r = subprocess.run([SEGLAMFS, '-f', '-o', 'llm=none', str(other), str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and 'not a directory' in r.stderr, r.stderr


def test_fstab_style_mount_through_mount_fuse3(tmp_path):
    """What `mount -a` does for the README's fstab line: mount.fuse3 runs seglamfs."""
    mount_fuse = shutil.which('mount.fuse3') or '/usr/sbin/mount.fuse3'
    if not os.path.exists(mount_fuse):
        pytest.skip('mount.fuse3 not installed')
    store, mnt = tmp_path / 'store', tmp_path / 'mnt'
    store.mkdir()
    mnt.mkdir()
    env = dict(os.environ, PATH=os.path.dirname(SEGLAMFS) + ':' + os.environ['PATH'])
    # mount(8) runs exactly this for the fstab line (with a PATH of its own, hence
    # mount.fuse3 directly here: seglamfs is not installed on the test machine).
    r = subprocess.run([mount_fuse, str(store), str(mnt), '-t', 'fuse.seglamfs', '-o',
                        'llm=none,library=' + os.path.join(ROOT, 'library') + ',revalidate=500'],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        with open(mnt / 'ask' / 'roman-to-int' / 'MCMXCIV') as f:
            assert f.read() == '1994\n'
        src = subprocess.run(['findmnt', '-n', '-o', 'SOURCE,FSTYPE', '--mountpoint', str(mnt)],
                             capture_output=True, text=True).stdout.split()
        assert src == [str(store), 'fuse.seglamfs'], src
    finally:
        subprocess.run(['fusermount3', '-u', str(mnt)], check=False)


def test_install_holds_manuals_completion_and_unit(tmp_path):
    build = MESON_BUILD
    dest = tmp_path / 'dest'
    r = subprocess.run(['meson', 'install', '-C', build, '--destdir', str(dest), '--quiet'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    found = {os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs}
    man8 = [p for p in found if p.endswith('man8/seglamfs.8')]
    man1 = [p for p in found if p.endswith('man1/seglam.1')]
    comp = [p for p in found if p.endswith('bash-completion/completions/seglam')]
    unit = [p for p in found if p.endswith('systemd/system/seglamfs@.service')]
    assert man8 and man1 and comp and unit, sorted(found)
    for page, words in ((man8[0], ['price_in', 'fsname', 'query/.status', 'EINTR', 'fstab']),
                        (man1[0], ['report', 'EXIT STATUS', 'SEGLAM_QUIET'])):
        r = subprocess.run(['man', '-l', str(dest / page)], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH='100', MAN_KEEP_FORMATTING=''))
        assert r.returncode == 0, r.stderr
        text = r.stdout.replace('\u2010', '-').replace('\u2212', '-')
        for w in words:
            assert w in text, (page, w)
    # The unit names the installed binary, and is a valid unit.
    body = (dest / unit[0]).read_text()
    assert '@BINDIR@' not in body and '/bin/seglamfs -f' in body
    if shutil.which('systemd-analyze'):
        inst = tmp_path / 'seglamfs@seglam.service'
        exe = [p for p in found if p.endswith('bin/seglamfs')][0]
        bindir = os.path.dirname('/' + exe)
        inst.write_text(body.replace(bindir + '/seglamfs', str(dest / exe)))
        r = subprocess.run(['systemd-analyze', 'verify', '--man=no', str(inst)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    # An installed daemon uses the installed headers, never the source checkout's.
    exe = dest / [p for p in found if p.endswith('bin/seglamfs')][0]
    store, mnt = tmp_path / 's', tmp_path / 'm'
    store.mkdir()
    mnt.mkdir()
    r = subprocess.run([str(exe), '-f', '-o', 'llm=none', str(store), str(mnt)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and os.path.join(ROOT, 'include') not in r.stderr
    assert '/share/seglamfs/include' in r.stderr or 'libexec/seglam-worker' in r.stderr, r.stderr


def test_bash_completion_offers_commands_and_types(mount):
    mount.put_proc('upper', UPPER)
    comp = os.path.join(ROOT, 'dist', 'seglam.bash-completion')
    script = ('source %s; COMP_WORDS=(seglam ask u); COMP_CWORD=2; _seglam; echo "${COMPREPLY[@]}"; '
              'COMP_WORDS=(seglam re); COMP_CWORD=1; _seglam; echo "${COMPREPLY[@]}"' % comp)
    r = subprocess.run(['bash', '--norc', '-c', script], capture_output=True, text=True,
                       env=dict(os.environ, SEGLAM_MOUNT=mount.mnt))
    assert r.stdout.splitlines() == ['upper', 'report'], (r.stdout, r.stderr)
