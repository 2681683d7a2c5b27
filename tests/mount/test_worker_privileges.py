"""What a pooled seglam-worker really runs with, read from /proc (SECURITY.md, "What
the sandbox does", points 1-3 and 7): uid/gid nobody without capabilities or groups,
no_new_privs, a seccomp filter, not dumpable, only its two pipes and /dev/null open,
an empty environment, and the rlimits sandbox/worker/confine.c sets.

A worker is pooled only after it has answered "compiled", which it sends after
installing seccomp (sandbox/worker/main.c step 6), so every worker found here after the asks
returned must be fully locked down: there is no "still starting" state to wait for.
"""
import os
import time

import pytest

from conftest import UPPER

NOBODY = 65534
ROOT = os.geteuid() == 0
SECRET = 'sk-SEGLAM-PRIV-TEST-4b1d9e'

# sandbox/worker/confine.c worker_set_limits(): (soft, hard) as /proc/PID/limits
# prints them.  RLIMIT_AS is -o worker_mem, checked per test below.
FIXED_LIMITS = {
    'Max open files': ('16', '16'),  # WORKER_MAX_FDS
    'Max file size': ('0', '0'),
    'Max processes': ('4096', '4096'),  # WORKER_MAX_PROCS: the worker forks a child per run
    'Max core file size': ('0', '0'),
    'Max locked memory': ('0', '0'),
}

# confine.c worker_limit_cpu(): the CPU backstop of each process that runs tcc or
# procedure code (a worker's compile and run children), not of the zygote, whose
# CPU time grows with every run it serves.  300 s (+10 hard), or twice -o timeout
# and 10 s when that is more (sandbox.h cpu_backstop_s): never before the time limit.
CHILD_CPU = ('300', '310')
LONG_TIMEOUT_MS = 400000
LONG_TIMEOUT_CPU = ('810', '820')

REVERSE = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = len; i > 0; i--)
		seglam_write(out, &in[i - 1], 1);
	return seglam_write(out, "\n", 1);
}
'''

LENGTH = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	return seglam_printf(out, "%zu\n", len);
}
'''

PROCS = {
    'upper': (UPPER, 'abc', b'ABC\n'),
    'reverse': (REVERSE, 'abc', b'cba\n'),
    'length': (LENGTH, 'abcd', b'4\n'),
}


def status(pid):
    """/proc/PID/status as {field: value}."""
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            out[k] = v.strip()
    return out


def child_status(parent):
    """(pid, /proc/PID/status) of each process whose parent is @parent."""
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            st = status(d)
        except OSError:
            continue
        if st.get('PPid') == str(parent):
            yield int(d), st


def daemon_workers(daemon):
    """seglam-worker processes whose parent is @daemon, found via /proc/*/status."""
    return sorted(pid for pid, st in child_status(daemon) if st.get('Name') == 'seglam-worker')


def children(pid):
    """The live processes whose parent is @pid."""
    return [kid for kid, st in child_status(pid) if not st.get('State', '').startswith('Z')]


def limits(pid):
    """/proc/PID/limits as {name: (soft, hard)}; the name column is 26 wide."""
    out = {}
    with open(f'/proc/{pid}/limits') as f:
        next(f)  # header
        for line in f:
            soft, hard = line[26:].split()[:2]
            out[line[:26].strip()] = (soft, hard)
    return out


@pytest.fixture(params=[None, 200], ids=['defaults', 'worker_mem=200,timeout=400000'])
def workers(request, mounts):
    """A mount (the API key in its environment) with its pooled workers; yields
    (mount, worker pids, expected RLIMIT_AS in bytes).  With the default options
    one worker holds every type (one owner: -o worker_types); with worker_mem=200
    also -o worker_types=1, a worker per type, and a time limit longer than the
    default CPU backstop (m.child_cpu: the backstop its children must have)."""
    mem_mb = request.param
    options = []
    if mem_mb:
        options = ['-o', f'worker_mem={mem_mb}', '-o', 'worker_types=1',
                   '-o', f'timeout={LONG_TIMEOUT_MS}']
    m = mounts(options=options, env={'SEGLAM_LLM_API_KEY': SECRET})
    m.child_cpu = LONG_TIMEOUT_CPU if mem_mb else CHILD_CPU
    for name, (src, inp, want) in PROCS.items():
        m.put_proc(name, src)
        assert m.ask(name, inp) == want, m.proc_log(name)
    pids = daemon_workers(m.proc.pid)
    # One for all, or at least one per type (a type may have more: the admission
    # run's worker).
    assert len(pids) >= (len(PROCS) if mem_mb else 1), f'pooled workers: {pids}'
    yield m, pids, (mem_mb or 256) << 20


def test_identity(workers):
    """Point 2: setuid/setgid nobody, groups dropped, so no capability left."""
    if not ROOT:
        pytest.skip('the daemon is not root: workers keep its uid by design')
    _, pids, _ = workers
    for pid in pids:
        st = status(pid)
        assert st['Uid'].split() == [str(NOBODY)] * 4, (pid, st['Uid'])
        assert st['Gid'].split() == [str(NOBODY)] * 4, (pid, st['Gid'])
        assert st['Groups'] == '', (pid, st['Groups'])
        for cap in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb'):
            assert int(st[cap], 16) == 0, (pid, cap, st[cap])


def test_no_new_privs_seccomp_not_dumpable(workers):
    """Points 3 and 7: no_new_privs, seccomp in filter mode with the worker's own
    filter on top of whatever the daemon inherited, PR_SET_DUMPABLE 0."""
    _, pids, _ = workers
    inherited = int(status('self').get('Seccomp_filters', '0'))
    for pid in pids:
        st = status(pid)
        assert st['NoNewPrivs'] == '1', pid
        assert st['Seccomp'] == '2', pid  # SECCOMP_MODE_FILTER
        if 'Seccomp_filters' in st:  # Linux >= 5.9
            assert int(st['Seccomp_filters']) == inherited + 1, (pid, st['Seccomp_filters'])
        # The files of a non-dumpable process's /proc directory belong to root
        # whatever its uid (fs/proc/base.c task_dump_owner; /proc/PID itself
        # keeps the euid), so a dumpable worker would show its own uid here.
        assert os.stat(f'/proc/{pid}/status').st_uid == 0, pid
        assert os.stat(f'/proc/{pid}/environ').st_uid == 0, pid


def test_fds(workers):
    """Point 1: fd 0 and 1 are the request and response pipes, fd 2 is /dev/null,
    fds 3 and 4 the zygote's ends of the two pipes to the current run's child (its
    answers, and call answers to it), fds 5 and 6 those to the child forked ahead
    for the next run, fds 7 and 8 those to the compile child waiting for the
    next load (the source to it, the image back), and fd 15 the load pipe (the
    daemon's loads, which the zygote reads itself); nothing else: no file (the
    arena's memfd is mapped and closed; sandbox/spawn.c spawns with closefrom,
    confine.c close_range; the Landlock ruleset fd is closed before the first
    request, and tcc's include and libtcc1.a fds are the compile child's)."""
    _, pids, _ = workers
    for pid in pids:
        if not ROOT:
            # Not dumpable: even its own uid may not look (which is the point).
            with pytest.raises(PermissionError):
                os.listdir(f'/proc/{pid}/fd')
            continue
        # The children's pipes are closed for a moment between one run and the
        # next, and the zygote sets up the next compile child's pipes (above fd
        # 8, then moved down) after an answer: look again until it is between
        # such steps.  An fd kept for good still fails.
        for _ in range(100):
            fds = sorted(os.listdir(f'/proc/{pid}/fd'), key=int)
            if set(fds[3:]) <= {'3', '4', '5', '6', '7', '8', '15'}:
                break
            time.sleep(0.02)
        assert fds[:3] == ['0', '1', '2'] and '15' in fds, (pid, fds)
        assert set(fds[3:]) <= {'3', '4', '5', '6', '7', '8', '15'}, (pid, fds)
        targets = [os.readlink(f'/proc/{pid}/fd/{fd}') for fd in fds]
        assert targets[0].startswith('pipe:'), (pid, targets)
        assert targets[1].startswith('pipe:'), (pid, targets)
        assert len({targets[0], targets[1], targets[-1]}) == 3, (pid, targets)
        assert targets[2] == '/dev/null', (pid, targets)
        for extra in targets[3:]:
            assert extra.startswith('pipe:'), (pid, targets)
            assert extra not in targets[:2], (pid, targets)
        assert len(set(targets[3:])) == len(targets[3:]), (pid, targets)


def test_empty_environment(workers):
    """The API key is in the daemon's environment but in no worker's: sandbox/spawn.c
    spawns with envp = {NULL}."""
    m, pids, _ = workers
    with open(f'/proc/{m.proc.pid}/environ', 'rb') as f:
        assert SECRET.encode() in f.read()  # the check below means something
    for pid in pids:
        if not ROOT:
            with pytest.raises(PermissionError):
                open(f'/proc/{pid}/environ', 'rb').close()
            continue
        with open(f'/proc/{pid}/environ', 'rb') as f:
            assert f.read() == b'', pid


def test_rlimits(workers):
    """Point 3: RLIMIT_AS is -o worker_mem (default 256 MiB); NOFILE 16, FSIZE,
    NPROC, CORE and MEMLOCK 0; CPU 300 s soft / 310 s hard in every compile and
    run child (the zygote's children), more with a longer -o timeout, the daemon's
    in the zygote itself."""
    m, pids, mem = workers
    daemon_cpu = limits(m.proc.pid)['Max cpu time']
    for pid in pids:
        lim = limits(pid)
        assert lim['Max address space'] == (str(mem), str(mem)), (pid, lim['Max address space'])
        for name, want in FIXED_LIMITS.items():
            assert lim[name] == want, (pid, name, lim[name])
        assert lim['Max cpu time'] == daemon_cpu, (pid, lim['Max cpu time'])
        # the compile child and the next run's child, forked after an answer
        for _ in range(100):
            kids = children(pid)
            if len(kids) >= 2:
                break
            time.sleep(0.02)
        assert len(kids) >= 2, (pid, kids)
        for kid in kids:
            lim = limits(kid)
            assert lim['Max cpu time'] == m.child_cpu, (pid, kid, lim['Max cpu time'])
            assert lim['Max address space'] == (str(mem), str(mem)), (kid, lim)
            for name, want in FIXED_LIMITS.items():
                assert lim[name] == want, (kid, name, lim[name])
