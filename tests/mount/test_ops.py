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

from conftest import ROOT, SEGLAMFS, UPPER
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
