"""The long tail (issue 16): more types than live workers, on a real mount.

Workers are forked per type by one "mother" process (sandbox/worker/mother.c,
worker_mother) and kept in an LRU pool of `-o workers`; these tests ask more types
than that, round-robin, and check that every answer is right, that `stats` shows the
evictions, spawns and pool misses that cost, and that a type edited or deleted while
its compiled code still lives in a worker is never answered from that old code.
They also read /proc of the mother: it is confined like a worker (nobody, no
environment, no fd but its socket and /dev/null) and does not outlive the daemon.
"""
import errno
import os
import shutil
import time

from conftest import UPPER, alive, worker_pids, write
from test_shared import poll_answer

NOBODY = 65534
ROOT = os.geteuid() == 0
TYPES = 5
SECRET = 'sk-SEGLAM-LONGTAIL-7c2e'


def tagged(tag):
    """A procedure answering TAG:INPUT."""
    return (r'''#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	seglam_printf(out, "%s:", "''' + tag + r'''");
	seglam_write(out, in, len);
	return seglam_write(out, "\n", 1);
}
''')


def mothers(daemon, name='seglam-mother'):
    """PIDs of seglam-mother processes (or spares, name='seglam-spare') whose
    parent is @daemon."""
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
        comm = stat[stat.index('(') + 1:stat.rindex(')')]
        if comm == name and ppid == daemon and alive(int(d)):
            out.append(int(d))
    return out


def test_round_robin_over_the_worker_cap(mounts):
    """Five types through two workers, four rounds, new inputs each time (no memo
    hit): every answer right, at most two workers, and the churn shows in stats."""
    m = mounts(options=['-o', 'workers=2'])
    for i in range(TYPES):
        m.put_proc(f'rr{i}', tagged(f't{i}'))
    before = m.stats()
    for r in range(4):
        for i in range(TYPES):
            assert m.ask(f'rr{i}', f'in{r}') == f't{i}:in{r}\n'.encode()
            assert len(worker_pids(parent=m.proc.pid)) <= 2
    st = m.stats()
    assert st['workers_live'] <= 2
    # each ask of a type not among the last two asked is a cold start
    assert st['worker_pool_misses'] - before['worker_pool_misses'] >= 4 * TYPES - 2
    assert st['worker_spawns'] - before['worker_spawns'] >= 4 * TYPES - 2
    assert st['worker_evictions'] - before['worker_evictions'] >= 4 * TYPES - 4
    assert st['worker_compiles'] >= st['worker_spawns']
    # spawned by forking the mother, not one exec per type
    assert st['worker_forks'] >= 4 * TYPES - 2
    assert st['worker_mother_spawns'] == 1
    assert st['workers_max'] == 2
    assert 0 <= st['worker_pool_hit_permille'] <= 1000
    assert 0 <= st['memo_hit_permille'] <= 1000


def test_reuse_after_eviction_and_pool_hits(mounts):
    """One worker: A, B, A again (evicted and started anew, right answer), then A
    on new inputs is a pool hit each time."""
    m = mounts(options=['-o', 'workers=1'])
    m.put_proc('ea', tagged('a'))
    m.put_proc('eb', tagged('b'))
    assert m.ask('ea', 'x') == b'a:x\n'
    assert m.ask('eb', 'x') == b'b:x\n'
    mid = m.stats()
    assert m.ask('ea', 'y') == b'a:y\n'
    st = m.stats()
    assert st['worker_evictions'] > mid['worker_evictions']
    assert st['worker_pool_misses'] == mid['worker_pool_misses'] + 1
    for i in range(5):
        assert m.ask('ea', f'z{i}') == f'a:z{i}\n'.encode()
    end = m.stats()
    assert end['worker_pool_hits'] >= st['worker_pool_hits'] + 5
    assert end['worker_pool_misses'] == st['worker_pool_misses']
    assert end['worker_pool_hit_permille'] > 0
    # memo: the same input again is a memo hit, not a run
    runs = end['worker_runs']
    assert m.ask('ea', 'z0') == b'a:z0\n'
    again = m.stats()
    assert again['worker_runs'] == runs
    assert again['memo_hits'] > end['memo_hits']


def test_edit_while_code_is_cached_in_a_live_worker(mounts):
    """The old code stays compiled in a live worker (idle, in the pool), and the old
    answer in the memo: the next read after the edit sees the edit, for a new input
    and for one asked before."""
    m = mounts(options=['-o', 'workers=2'])
    m.put_proc('ed', tagged('old'))
    m.put_proc('other', tagged('o'))
    assert m.ask('ed', 'abc') == b'old:abc\n'
    assert m.ask('other', 'abc') == b'o:abc\n'  # 'ed' stays live: cap 2
    with open(m.path('procs', 'ed', 'source.c'), 'w') as f:
        f.write(tagged('new'))
    assert m.ask('ed', 'abc') == b'new:abc\n'
    assert m.ask('ed', 'fresh') == b'new:fresh\n'
    # the other type's worker and answers are untouched
    assert m.ask('other', 'def') == b'o:def\n'
    # editing back to the first source (its worker may have been forgotten or
    # still be there): the old answers again, not the in-between ones
    shutil.copyfile(m.path('procs', 'other', 'source.c'), m.path('procs', 'ed', 'source.c'))
    assert m.ask('ed', 'abc') == b'o:abc\n'
    assert len(worker_pids(parent=m.proc.pid)) <= 2


def test_edit_elsewhere_while_cached(mounts):
    """A second daemon on the same store edits a type whose code A holds compiled
    in a live worker: A answers with the edit once it revalidates (-o revalidate)."""
    a = mounts(name='a', options=['-o', 'workers=2'])
    b = mounts(name='b', store=a.store)
    a.put_proc('shared-lt', tagged('v1'))
    assert a.ask('shared-lt', 'q') == b'v1:q\n'
    poll_answer(b, 'shared-lt', 'q', b'v1:q\n')
    write(b.path('procs', 'shared-lt', 'source.c'), tagged('v2'))
    assert b.ask('shared-lt', 'q') == b'v2:q\n'
    poll_answer(a, 'shared-lt', 'q', b'v2:q\n')
    assert a.ask('shared-lt', 'never-asked') == b'v2:never-asked\n'


def test_delete_while_cached(mounts):
    """A type deleted while its code lives in a worker: the next read is ENOENT (no
    answer from the worker or the memo); made again with other code, that code
    answers."""
    m = mounts(options=['-o', 'workers=2'])
    m.put_proc('gone', tagged('g1'))
    assert m.ask('gone', 'x') == b'g1:x\n'
    shutil.rmtree(m.path('procs', 'gone'))
    assert m.ask_errno('gone', 'x') == errno.ENOENT
    assert m.ask_errno('gone', 'new') == errno.ENOENT
    m.put_proc('gone', tagged('g2'))
    assert m.ask('gone', 'x') == b'g2:x\n'


def test_mother_is_confined_and_ends_with_the_daemon(mounts):
    """The mother runs no procedure code, but every worker starts as a copy of it:
    it has no environment (the API key is in the daemon's), runs as nobody under
    the workers' limits, holds only its socket, its spare's and /dev/null, is not
    dumpable, and is gone (reaped) after unmount, with every worker.  Its spare
    (the next worker, forked ahead) is confined the same way and holds nothing of
    the daemon: not its socket to the mother."""
    m = mounts(options=['-o', 'workers=2'], env={'SEGLAM_LLM_API_KEY': SECRET})
    m.put_proc('mo', UPPER)
    assert m.ask('mo', 'abc') == b'ABC\n'
    found = mothers(m.proc.pid)
    assert len(found) == 1
    pid = found[0]
    with open(f'/proc/{pid}/environ', 'rb') as f:
        assert f.read() == b''
    fds = sorted(int(x) for x in os.listdir(f'/proc/{pid}/fd'))
    assert fds == [0, 1, 2, 3]
    daemon_socket = os.readlink(f'/proc/{pid}/fd/0')
    assert daemon_socket.startswith('socket:')
    assert os.readlink(f'/proc/{pid}/fd/1') == '/dev/null'
    assert os.readlink(f'/proc/{pid}/fd/2') == '/dev/null'
    assert os.readlink(f'/proc/{pid}/fd/3').startswith('socket:')
    # the spare is forked after the answer: give it a moment to appear
    for _ in range(500):
        spares = mothers(m.proc.pid, name='seglam-spare')
        if spares:
            break
        time.sleep(0.01)
    assert len(spares) == 1
    spare = spares[0]
    assert os.getpgid(spare) == pid  # reaped with the mother's group
    with open(f'/proc/{spare}/environ', 'rb') as f:
        assert f.read() == b''
    links = [os.readlink(f'/proc/{spare}/fd/{x}') for x in os.listdir(f'/proc/{spare}/fd')]
    # /dev/null on 0-2 and one socket, its own end of the mother's, never the daemon's
    assert daemon_socket not in links
    assert sorted(links)[:3] == ['/dev/null'] * 3
    assert len(links) == 4 and sorted(links)[3].startswith('socket:')
    for p in (pid, spare):
        st = {}
        with open(f'/proc/{p}/status') as f:
            for line in f:
                k, _, v = line.partition(':')
                st[k] = v.strip()
        assert st['NoNewPrivs'] == '1'
        assert st['CapEff'] == '0000000000000000'
        if ROOT:
            assert st['Uid'].split() == [str(NOBODY)] * 4
            assert st['Gid'].split() == [str(NOBODY)] * 4
        with open(f'/proc/{p}/limits') as f:
            limits = f.read()
        assert 'Max file size' in limits
        line = [ln for ln in limits.splitlines() if ln.startswith('Max file size')][0]
        assert line.split()[3:5] == ['0', '0']
    # workers are the daemon's children (forked with CLONE_PARENT), not the mother's
    workers = worker_pids(parent=m.proc.pid)
    assert workers
    assert not worker_pids(parent=pid)
    daemon = m.proc.pid
    m.stop()
    assert not alive(pid)
    assert not [w for w in workers if alive(w)]
    assert not mothers(daemon)
    assert not alive(spare)


def gone(pid):
    """Neither running nor a zombie: reaped."""
    return not os.path.exists(f'/proc/{pid}')


def wait_for_spare(daemon):
    for _ in range(500):
        spares = mothers(daemon, name='seglam-spare')
        if spares:
            return spares[0]
        time.sleep(0.01)
    raise AssertionError('no spare worker appeared')


def test_spare_is_the_next_worker_and_a_killed_one_is_reaped(mounts):
    """A cold start takes the spare the mother forked ahead (its pid becomes the
    new worker's); a spare killed from outside is found dead at the next cold
    start, which still answers, and the daemon reaps it (no zombie is left)."""
    m = mounts(options=['-o', 'workers=4'])
    for t in ('s1', 's2', 's3'):
        m.put_proc(t, tagged(t))
    assert m.ask('s1', 'a') == b's1:a\n'
    spare = wait_for_spare(m.proc.pid)
    assert m.ask('s2', 'b') == b's2:b\n'
    assert spare in worker_pids(parent=m.proc.pid)
    with open(f'/proc/{spare}/comm') as f:
        assert f.read().strip() == 'seglam-worker'
    victim = wait_for_spare(m.proc.pid)
    os.kill(victim, 9)
    assert m.ask('s3', 'c') == b's3:c\n'
    for _ in range(500):
        if gone(victim):
            break
        time.sleep(0.01)
    assert gone(victim)
    assert m.ask('s1', 'd') == b's1:d\n'
    assert m.proc.poll() is None


def test_memory_budget_evicts_by_what_workers_hold(mounts):
    """-o workers_mem=MB bounds what the live workers hold together (each counted
    by its private pages, measured once compiled): past it the least recently used
    idle workers go, whatever -o workers allows; answers stay right, and stats
    show the memory held and the budget.  Without a budget nothing is measured."""
    n = 40
    m = mounts(name='budget', options=['-o', 'workers_mem=1'])
    for i in range(n):
        m.put_proc(f'mb{i}', tagged(f'm{i}'))
    for i in range(n):
        assert m.ask(f'mb{i}', 'x') == f'm{i}:x\n'.encode()
    st = m.stats()
    assert st['workers_mem_budget_kb'] == 1024
    assert 0 < st['workers_mem_kb']
    # within the budget, unless one worker alone is over it (the one just used
    # is never evicted for the budget)
    assert st['workers_mem_kb'] <= 1024 or st['workers_live'] == 1
    assert st['workers_live'] < n and st['worker_evictions'] >= 1
    # evicted workers exit on their own, just after: then only the live ones remain
    for _ in range(500):
        if len(worker_pids(parent=m.proc.pid)) <= st['workers_live']:
            break
        time.sleep(0.01)
    assert len(worker_pids(parent=m.proc.pid)) <= st['workers_live']
    # a type whose worker was evicted is a cold start again, and right
    assert m.ask('mb0', 'y') == b'm0:y\n'
    m.stop()
    free = mounts(name='free', options=['-o', 'workers=64'])
    for i in range(8):
        free.put_proc(f'mf{i}', tagged(f'f{i}'))
        assert free.ask(f'mf{i}', 'x') == f'f{i}:x\n'.encode()
    st = free.stats()
    assert st['workers_live'] == 8 and st['workers_mem_kb'] == 0
    assert st['workers_mem_budget_kb'] == 0


def test_killed_mother_is_replaced(mounts):
    """A mother killed from outside: the next cold start gets a new one (or a
    spawned worker), and every answer is right."""
    m = mounts(options=['-o', 'workers=1'])
    m.put_proc('k1', tagged('k1'))
    m.put_proc('k2', tagged('k2'))
    assert m.ask('k1', 'a') == b'k1:a\n'
    for pid in mothers(m.proc.pid):
        os.kill(pid, 9)
    # the dead mother is found (and reaped) when next asked for a worker: that
    # worker is spawned on its own, the one after comes from a new mother
    assert m.ask('k2', 'b') == b'k2:b\n'
    assert m.ask('k1', 'c') == b'k1:c\n'
    assert m.ask('k2', 'd') == b'k2:d\n'
    st = m.stats()
    assert st['worker_mother_spawns'] >= 2
    assert m.proc.poll() is None
