"""Hostile procedures through a real mount: each read ends in one of the outcomes its
`expect:` line allows (grammar: tests/unit/hostile/README.md), nothing leaks, nothing
is written outside, and the mount keeps serving (issues 2 and 10).  Outcomes are
"contained", never one kernel's signal; elapsed time is never asserted."""
import errno
import glob
import os
import re
import time

import pytest

from conftest import HOSTILE, UPPER, alive, store_contents, worker_pids

SECRET = 'sk-SEGLAM-SECRET-7f3a9c1e5b'
CASES = sorted(glob.glob(os.path.join(HOSTILE, '*.c')))
PWNED = ['/tmp/pwned', '/tmp/seglam-pwned', '/tmp/pwned-system', '/tmp/pwned-dlopen',
         '/tmp/seglam-pwned-execve', '/tmp/seglam-pwned-system', '/tmp/seglam-pwned-dlopen']


def expectation(path):
    """(allowed kinds, allowed reasons) from the case's `expect:` line.  ENOEXEC
    (the sandbox's "does not compile") reaches a reader as EIO."""
    with open(path) as f:
        m = re.search(r'expect:\s*((?:EIO|EINVAL|ENOEXEC|OK)(?:\|(?:EIO|EINVAL|ENOEXEC|OK))*)'
                      r'(.*?)\s*(\*/)?$', f.read(), re.M)
    assert m, f'{path}: no valid expect: line'
    reasons = [r.strip() for r in m.group(2).split(' | ') if r.strip()]
    return ['EIO' if k == 'ENOEXEC' else k for k in m.group(1).split('|')], reasons


@pytest.fixture(scope='module')
def hostile_mount(tmp_path_factory):
    from conftest import Mount
    m = Mount(str(tmp_path_factory.mktemp('hostile')), options=['-o', 'llm=none', '-o', 'timeout=1500'],
              env={'SEGLAM_LLM_API_KEY': SECRET})
    m.start()
    m.put_proc('upper', UPPER)
    yield m
    # A new input, so that a worker runs it: the last case may have ended its
    # worker (a timeout kills it), and the memo answers 'still-here' without one.
    assert m.ask('upper', 'before-unmount') == b'BEFORE-UNMOUNT\n'
    workers = worker_pids(parent=m.proc.pid)
    assert workers, 'expected live pooled workers before unmount'
    m.stop()
    time.sleep(0.2)
    assert not [p for p in workers if alive(p)], 'stray worker processes after unmount'


@pytest.mark.parametrize('path', CASES, ids=[os.path.basename(c)[:-2] for c in CASES])
def test_hostile(hostile_mount, path):
    m = hostile_mount
    kinds, reasons = expectation(path)
    name = 'h-' + os.path.basename(path)[:-2].replace('_', '-')
    with open(path) as f:
        m.put_proc(name, f.read())
    try:
        answer = m.ask(name, 'input')
        err = 0
    except OSError as e:
        answer, err = b'', e.errno
    got = 'OK' if err == 0 else errno.errorcode.get(err, str(err))
    log = m.proc_log(name)
    assert got in kinds, f'expected {"|".join(kinds)}, got {got}: {answer[:300]!r} {log[-500:]}'
    # EINVAL's reason is in the log too (the rejection is logged); OK's in the answer
    text = answer.decode(errors='replace') if err == 0 else log
    assert not reasons or any(r in text for r in reasons), f'none of {reasons} in {text[-500:]!r}'
    # nothing leaks: not into the answer, the log, the daemon log or the store
    assert SECRET.encode() not in answer
    assert SECRET not in m.proc_log(name)
    assert SECRET not in m.daemon_log()
    for path, data in store_contents(m.store):
        assert SECRET.encode() not in data, path
    assert b'root:' not in answer and 'root:x:' not in m.proc_log(name)
    # compiler text is quoted: no terminal escape or bell reaches the log
    assert '\x1b' not in m.proc_log(name) and '\x07' not in m.proc_log(name)
    assert '\x1b' not in m.daemon_log() and '\x07' not in m.daemon_log()
    for p in PWNED:
        assert not os.path.exists(p), p
    # the mount and every other procedure keep working
    assert m.ask('upper', 'still-here') == b'STILL-HERE\n'
    assert m.proc.poll() is None


def test_workers_are_bounded(hostile_mount):
    assert 0 < len(worker_pids(parent=hostile_mount.proc.pid)) <= 64


@pytest.mark.parametrize('case', ['remember', 'reply_early_late'])
def test_no_caller_gets_another_callers_input(hostile_mount, case):
    """Issue 10 item 6: each run is a fresh child of the compiled worker, so neither
    a procedure's static memory nor a forged early reply (with the real one, holding
    the input, sent late) can hand one read's input to a later read."""
    m = hostile_mount
    name = 'iso-' + case.replace('_', '-')
    with open(os.path.join(HOSTILE, case + '.c')) as f:
        m.put_proc(name, f.read())
    for i in range(5):
        try:
            answer = m.ask(name, f'secret-of-caller-{i}')
        except OSError as e:
            assert e.errno == errno.EIO, e
            answer = b''
        for j in range(i):
            assert f'secret-of-caller-{j}'.encode() not in answer, (i, answer)
        if case == 'remember':
            assert answer == b'remembered: []\n', answer
    assert m.ask('upper', 'still-here') == b'STILL-HERE\n'
