"""A store on a slow (network) filesystem: while one type is being admitted, with
every file access of its admission slow, reads of another, already loaded type keep
completing (issue 11: no lock other requests need is held across store I/O).

The store is served by tests/slowfs (a FUSE passthrough that sleeps 50 ms per
operation while a flag file exists).  The assertions are about order, not time: N
new-input reads of type A (each runs A's procedure in a worker) all complete while
B's admission (40 test files, each access slow) is still going on.
"""
import os
import subprocess
import threading
import time

import pytest

from conftest import BUILD, UPPER, write

SLOWFS = os.path.join(BUILD, 'tests', 'slowfs')
LOWER = UPPER.replace('toupper', 'tolower')


@pytest.fixture
def slow_store(tmp_path):
    root = tmp_path / 'slow-root'
    mnt = tmp_path / 'slow-store'
    flag = tmp_path / 'slow-flag'
    root.mkdir()
    mnt.mkdir()
    env = dict(os.environ, SLOWFS_MS='50', SLOWFS_FLAG=str(flag))
    log = open(tmp_path / 'slowfs.log', 'wb')
    proc = subprocess.Popen([SLOWFS, '-f', str(root), str(mnt)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while not os.path.ismount(mnt):
        assert proc.poll() is None and time.time() < deadline, 'slowfs did not mount'
        time.sleep(0.02)
    yield str(mnt), str(flag)
    if os.path.exists(flag):
        os.unlink(flag)
    subprocess.run(['fusermount3', '-u', '-z', str(mnt)], check=False)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_reads_of_a_loaded_type_go_on_while_another_is_admitted(slow_store, mounts):
    store, flag = slow_store
    # Revalidation of A stays out of the picture: its reads need only its worker.
    m = mounts(store=store, options=['-o', 'revalidate=600000'])
    m.put_proc('upper', UPPER, tests={'t1': ('ab', 'AB\n')})
    assert m.ask('upper', 'warm') == b'WARM\n'
    # B: 8 cases (16 files) to read, one slow access at a time, in its admission.
    tests = {f'case{i:02d}': (f'X{i}', f'x{i}\n') for i in range(8)}
    m.put_proc('lower', LOWER, tests=tests)

    write(flag, b'')  # from now on every store operation takes 50 ms
    events = []
    lock = threading.Lock()

    def note(what):
        with lock:
            events.append(what)

    def read_b():
        try:
            note(('b', m.ask('lower', 'HELLO')))
        except OSError as e:
            note(('b-error', e.errno))

    tb = threading.Thread(target=read_b)
    tb.start()
    time.sleep(0.5)
    n = 10
    for i in range(n):
        got = m.ask('upper', f'new{i}')
        note(('a', got))
        assert got == f'NEW{i}\n'.encode()
    # An edit of B through the mount only marks B for revalidation: it does not
    # wait for the admission in progress either.
    write(m.path('procs', 'lower', 'spec'), 'lower-case the input\n')
    note(('edit', None))
    # ... all of it while B's admission was still under way (its log says when
    # it ends): order, not time.
    assert 'compiled and passed' not in m.proc_log('lower')
    tb.join(timeout=120)
    assert not tb.is_alive(), 'the read of B never ended'
    os.unlink(flag)
    kinds = [e[0] for e in events]
    # Every read of A, and the edit of B, ended before B's first answer: none
    # waited on B's admission.
    assert kinds == ['a'] * n + ['edit', 'b'], events
    assert events[-1] == ('b', b'hello\n')
