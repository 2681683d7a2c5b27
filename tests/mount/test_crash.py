"""Crash safety (issue 4, item 10): kill -9 of the daemon at random moments during
edits (cp, sed -i), reads of ask/ and rsync of MOUNT/procs/, at least 50 times.
After each kill the store holds only whole files: every source.c and history entry
is one of the known sources, every test case one of its known contents, meta.json
parses, the log ends with a whole line.  One state of a test case besides those: a
name that did not exist (or was empty) before that mount may be empty, because
`cp` made it with open(O_CREAT) and the daemon died before cp's write and close.
A create shows the name at once, on disk too (POSIX; an O_EXCL create must be
exclusive for every daemon sharing the store), and the data arrives whole at
close: a new file is absent, empty or whole, never torn (README, "Editing works").  Temp files `.seglam-tmp.*` may remain;
the next mount removes those of dead processes when the type is used, and serves
correct answers."""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import Mount, worker_pids

# At least MIN_KILLS (the 50), however long they take (an ASan daemon beside
# other test workers starts slowly); up to KILLS while the budget lasts.
MIN_KILLS = 50
KILLS = 60
BUDGET_S = 75

# sed -i 's/"one:/"two:/' turns V1 into V2 and back: every state sed can leave is whole.
V1 = r'''#include <seglam.h>
#include <ctype.h>
/* crash: upper-cases; "?" asks which version this is */
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	if (len && in[0] == '?')
		return seglam_printf(out, "one:version\n");
	for (size_t i = 0; i < len; i++)
		seglam_printf(out, "%c", toupper((unsigned char)in[i]));
	return seglam_printf(out, "\n");
}
'''
V2 = V1.replace('"one:', '"two:')
SOURCES = {V1.encode(): b'one:version\n', V2.encode(): b'two:version\n'}
TESTS = {'a.in': b'abc', 'a.out': b'ABC\n', 'b.in': b'hello', 'b.out': b'HELLO\n'}
TYPES = ('crash', 'crash2')

# One editing loop per type (two writers of one file through one mount race like on
# any filesystem: sed may read cp's half-written file and save it), plus a reader.
ACTIVITY = r'''
M=$1; T=$2; W=$3; BK=$4; MODE=$5
P=$M/procs/$T
if [ "$MODE" = read ]; then
	while :; do
		cat "$M/ask/crash/abc" "$M/ask/crash2/%3Fq" "$M/ask/crash/x$RANDOM" >/dev/null
		rsync -a "$M/procs/" "$BK/"
		cat "$M/ask/crash2/y$RANDOM" "$M/procs/crash/source.c" >/dev/null
	done 2>/dev/null
	exit 0
fi
while :; do
	cp "$W/v1.c" "$P/source.c"
	cat "$M/ask/$T/abc" "$M/ask/$T/%3Fq" >/dev/null
	sed -i 's/"one:/"two:/' "$P/source.c"
	cp "$W/b.in" "$P/tests/b.in"; cp "$W/b.out" "$P/tests/b.out"
	cat "$M/ask/$T/hello" "$M/ask/$T/%3F$RANDOM" >/dev/null
	sed -i 's/"two:/"one:/' "$P/source.c"
	cp "$W/v2.c" "$P/source.c"
	cat "$M/ask/$T/x$RANDOM" >/dev/null
	cp "$W/a.out" "$P/tests/a.out"
	cp "$W/v1.c" "$P/new.tmp" && mv -f "$P/new.tmp" "$P/source.c"
done 2>/dev/null
'''


def store_type_dirs(store):
    out = {}
    for hh in os.listdir(os.path.join(store, 'procs')):
        for hh2 in os.listdir(os.path.join(store, 'procs', hh)):
            for t in os.listdir(os.path.join(store, 'procs', hh, hh2)):
                out[t] = os.path.join(store, 'procs', hh, hh2, t)
    return out


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def case_files(store):
    """{path: content} of every test case file in the store."""
    out = {}
    for dirpath, dirnames, files in os.walk(store):
        if os.path.basename(dirpath) == 'tests':
            for f in files:
                if not f.startswith('.seglam-tmp.'):
                    out[os.path.join(dirpath, f)] = read(os.path.join(dirpath, f))
    return out


def check_store(store, marker, when, cases_before=None):
    """Every file whole; returns the temp files found.  @cases_before: the test
    cases before the mount that was killed (a new one may be empty: see above)."""
    temps, bad = [], []
    assert read(os.path.join(store, os.path.basename(marker[0]))) == marker[1], f'{when}: store marker changed'
    for dirpath, dirnames, files in os.walk(store):
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, store)
            if f.startswith('.seglam-tmp.'):
                temps.append(p)
                continue
            if p == marker[0]:
                continue
            data = read(p)
            parent = os.path.basename(dirpath)
            if f.startswith('sed') or f == 'new.tmp':
                # Litter of an interrupted sed -i or cp + mv: created empty (its old
                # version), then written whole.
                if data not in SOURCES and data != b'':
                    bad.append(f'{rel}: not a whole source ({len(data)} bytes): {data[:120]!r}')
            elif f == 'source.c' or parent == 'history':
                if data not in SOURCES:
                    bad.append(f'{rel}: not a whole source ({len(data)} bytes): {data[:120]!r}')
            elif parent == 'tests':
                created = cases_before is not None and not cases_before.get(p)
                if TESTS.get(f) != data and not (created and data == b''):
                    bad.append(f'{rel}: not a whole test case: {data!r}')
            elif f == 'meta.json':
                try:
                    json.loads(data)
                except ValueError as e:
                    bad.append(f'{rel}: invalid JSON ({e}): {data[-200:]!r}')
            elif f == 'log' or os.path.dirname(rel) == 'usage':
                # Logs and STORE/usage/HOST: lines appended whole, one write each.
                if data and not data.endswith(b'\n'):
                    bad.append(f'{rel}: log ends in a partial line: {data[-200:]!r}')
            else:
                bad.append(f'{rel}: unexpected file ({len(data)} bytes)')
    assert not bad, f'{when}: store damaged:\n' + '\n'.join(bad[:20])
    return temps


def task_states(pid):
    """Per-thread state, wchan and kernel stack of a process (for a report)."""
    out = []
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return '(gone)'
    for tid in tids:
        base = f'/proc/{pid}/task/{tid}'
        try:
            with open(base + '/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
            with open(base + '/wchan') as f:
                wchan = f.read()
            try:
                with open(base + '/stack') as f:
                    stack = ' < '.join(l.split()[1].split('+')[0] for l in f.read().splitlines())
            except OSError:
                stack = ''
            out.append(f'{tid} {state} {wchan} {stack}')
        except OSError:
            pass
    return '\n'.join(out)


def kill9(m):
    """kill -9 the daemon, lazily unmount, and forget it (Mount.stop would complain).
    Returns None, or a description of a daemon that SIGKILL did not end within 5 s
    (its FUSE connection is then aborted so the test can go on)."""
    pid = m.proc.pid
    conn = os.minor(os.stat(m.mnt).st_dev)
    os.kill(pid, signal.SIGKILL)
    stuck = None
    try:
        m.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stuck = f'daemon {pid} still alive 5 s after SIGKILL:\n{task_states(pid)}'
        try:
            with open(f'/sys/fs/fuse/connections/{conn}/abort', 'w') as f:
                f.write('1')
        except OSError as e:
            stuck += f'\n(abort of fuse connection {conn} failed: {e})'
        m.proc.wait(timeout=20)
    m.proc = None
    m.log.close()
    subprocess.run(['fusermount3', '-u', '-z', m.mnt], check=False, capture_output=True)
    assert not os.path.ismount(m.mnt)
    return stuck


def proc_start(pid):
    """When @pid started (clock ticks since boot), or None when it is gone: a pid
    and its start time name one process, even after the pid is reused."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def children_workers(pid):
    """(pid, start time) of the worker children of @pid."""
    out = []
    for w in worker_pids():
        try:
            with open(f'/proc/{w}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        st = proc_start(w)
        if ppid == pid and st is not None:
            out.append((w, st))
    return out


def ensure_fusectl():
    """/sys/fs/fuse/connections, to abort a connection whose daemon cannot exit."""
    if not os.listdir('/sys/fs/fuse/connections') and os.geteuid() == 0:
        subprocess.run(['mount', '-t', 'fusectl', 'none', '/sys/fs/fuse/connections'],
                       check=False, capture_output=True)


@pytest.mark.long
def test_kill9_loop_leaves_only_whole_files(tmp_path):
    ensure_fusectl()
    tmp = str(tmp_path)
    work = os.path.join(tmp, 'work')
    backup = os.path.join(tmp, 'backup')
    os.makedirs(work)
    os.makedirs(backup)
    for name, data in [('v1.c', V1.encode()), ('v2.c', V2.encode())] + [(k, v) for k, v in TESTS.items()]:
        with open(os.path.join(work, name), 'wb') as f:
            f.write(data)
    script = os.path.join(work, 'activity.sh')
    with open(script, 'w') as f:
        f.write(ACTIVITY)

    m = Mount(tmp, name='c').start()
    store = m.store
    for t in TYPES:
        m.put_proc(t, V1, tests={'a': (TESTS['a.in'], TESTS['a.out'])})
        assert m.ask(t, 'abc') == b'ABC\n'
        assert m.ask(t, '?') == b'one:version\n'
    m.stop()
    marker_files = [f for f in os.listdir(store) if os.path.isfile(os.path.join(store, f))]
    assert len(marker_files) == 1, f'store top level: {os.listdir(store)}'
    marker = (os.path.join(store, marker_files[0]), read(os.path.join(store, marker_files[0])))

    rng = random.Random(int(os.environ.get('SEGLAM_CRASH_SEED', time.time())))
    t0 = time.time()
    kills = 0
    all_workers = []
    temps_seen = 0
    stuck = []
    while kills < MIN_KILLS or (kills < KILLS and time.time() - t0 < BUDGET_S):
        cases_before = case_files(store)
        m = Mount(tmp, name='c', store=store).start()
        acts = [subprocess.Popen(['bash', script, m.mnt, t, work, backup, mode],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                for t, mode in [(TYPES[0], 'edit'), (TYPES[1], 'edit'), ('-', 'read')]]
        try:
            time.sleep(rng.uniform(0.02, 0.6))
            workers = children_workers(m.proc.pid)
            why = kill9(m)
            if why:
                stuck.append(f'kill {kills + 1}: {why}')
        finally:
            for a in acts:
                try:
                    os.killpg(a.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                a.wait(timeout=10)
        kills += 1
        temps_seen += len(check_store(store, marker, f'after kill {kills}', cases_before))
        all_workers += workers
    elapsed = time.time() - t0
    # The killed daemons' workers see their pipes close and exit.
    deadline = time.time() + 30  # (at once, unless the machine is loaded)
    while time.time() < deadline and any(proc_start(w) == st for w, st in all_workers):
        time.sleep(0.05)
    leftover_workers = [w for w, st in all_workers if proc_start(w) == st]
    assert not stuck, f'{len(stuck)} of {kills} kill -9 did not end the daemon:\n' + '\n'.join(stuck[:3])
    assert not leftover_workers, f'workers of killed daemons still running: {leftover_workers}'

    # A final mount serves correct answers and cleans the temp files of dead daemons.
    m = Mount(tmp, name='c', store=store).start()
    dirs = store_type_dirs(store)
    # A case the last kill left empty (see the top) fails the type's tests, as it
    # would on any disk: its user copies it again, as here.
    for path, data in case_files(store).items():
        if data == b'':
            t = next(t for t in TYPES if path.startswith(dirs[t] + os.sep))
            name = os.path.basename(path)
            subprocess.run(['cp', os.path.join(work, name), m.path('procs', t, 'tests', name)],
                           check=True)
    for t in TYPES:
        src = read(os.path.join(dirs[t], 'source.c'))
        assert src in SOURCES
        assert m.ask(t, '?') == SOURCES[src], m.proc_log(t)[-2000:]
        assert m.ask(t, 'abc') == b'ABC\n'
        assert m.ask(t, 'hello') == b'HELLO\n'
        with open(m.path('procs', t, 'source.c'), 'rb') as f:
            assert f.read() == src
    # The sweep a type's first touch asks for runs off the read path, at low
    # priority, and is drained before the daemon exits; the daemon's own writes
    # (meta.json after these reads) are done by then too.  So, once it is gone,
    # no temp file of any daemon is left in the types it used.
    m.stop()
    left = [p for p in check_store(store, marker, 'after remount')
            if any(p.startswith(dirs[t] + os.sep) for t in TYPES)]
    assert not left, f'temp files left after the types were used and the daemon stopped: {left}'
    print(f'{kills} kills in {elapsed:.1f}s, {temps_seen} temp files seen after kills')
