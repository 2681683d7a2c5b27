"""Two daemons on one STORE (docs/DESIGN.md, Store): what one writes the other serves within
`revalidate` (default 1000 ms), and concurrent writers never leave a partial or mixed
file (temp name with host and pid, fsync, rename; no locks)."""
import errno
import os
import threading
import time

from conftest import UPPER

REVALIDATE_S = 1.0
POLL_S = 3.0

REVERSED = r'''#include <seglam.h>
/* reversed: the input backwards */
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	seglam_printf(out, "reversed:");
	while (len--)
		seglam_write(out, &in[len], 1);
	return seglam_write(out, "\n", 1);
}
'''

ANSWERS = {UPPER: b'ABC\n', REVERSED: b'reversed:cba\n'}


def poll_answer(m, type_, name, want, seconds=POLL_S):
    """Ask until the answer is want; returns the seconds it took."""
    t0 = time.time()
    last = None
    while True:
        try:
            got = m.ask(type_, name)
        except OSError as e:
            got = e
        if got == want:
            return time.time() - t0
        last = got
        if time.time() - t0 > seconds:
            raise AssertionError(f'{m.mnt}: ask/{type_}/{name} gave {last!r}, want {want!r} '
                                 f'after {seconds}s\nlog: {m.proc_log(type_)[-2000:]}')
        time.sleep(0.05)


def store_type_dir(store, type_):
    """procs/HH/HH/TYPE in the store."""
    found = []
    for dirpath, dirnames, _ in os.walk(os.path.join(store, 'procs')):
        if os.path.basename(dirpath) == type_ and dirpath.count(os.sep) - store.count(os.sep) == 4:
            found.append(dirpath)
    assert len(found) == 1, f'type dir of {type_} in store: {found}'
    return found[0]


def tmp_files(store):
    out = []
    for dirpath, _, files in os.walk(store):
        out += [os.path.join(dirpath, f) for f in files if f.startswith('.seglam-tmp.')]
    return out


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def test_creation_through_a_is_served_by_b(mounts):
    a = mounts(name='a')
    b = mounts(name='b', store=a.store)
    # B has looked (and missed) before the type exists: its negative caches must expire.
    assert b.ask_errno('shared-new', 'abc') == errno.ENOENT
    a.put_proc('shared-new', UPPER)
    assert a.ask('shared-new', 'abc') == b'ABC\n'
    took = poll_answer(b, 'shared-new', 'abc', b'ABC\n')
    assert took <= REVALIDATE_S + 1.5, f'B saw the new type after {took:.2f}s'
    assert 'shared-new' in os.listdir(b.path('ask'))
    assert read(b.path('procs', 'shared-new', 'source.c')) == UPPER.encode()


def test_edit_through_b_is_seen_by_a(mounts):
    a = mounts(name='a')
    b = mounts(name='b', store=a.store)
    a.put_proc('shared-edit', UPPER)
    assert a.ask('shared-edit', 'abc') == b'ABC\n'
    poll_answer(b, 'shared-edit', 'abc', b'ABC\n')
    # A has the old answer memoized and in the kernel's cache.
    assert a.ask('shared-edit', 'abc') == b'ABC\n'
    with open(b.path('procs', 'shared-edit', 'source.c'), 'w') as f:
        f.write(REVERSED)
    assert b.ask('shared-edit', 'abc') == b'reversed:cba\n'
    took = poll_answer(a, 'shared-edit', 'abc', b'reversed:cba\n')
    assert took <= REVALIDATE_S + 1.5, f'A saw the edit after {took:.2f}s'
    assert read(a.path('procs', 'shared-edit', 'source.c')) == REVERSED.encode()
    # And a new input on A, never asked before, uses the new source too.
    assert a.ask('shared-edit', 'xy') == b'reversed:yx\n'


def test_concurrent_replaces_from_both_sides(mounts):
    a = mounts(name='a')
    b = mounts(name='b', store=a.store)
    T = 'shared-race'
    a.put_proc(T, UPPER)
    assert a.ask(T, 'abc') == b'ABC\n'
    poll_answer(b, T, 'abc', b'ABC\n')

    errors = []
    bad_answers = []
    versions = [UPPER.encode(), REVERSED.encode()]
    stop = threading.Event()

    def by_rename(m, tag, n):
        d = m.path('procs', T)
        for i in range(n):
            tmp = os.path.join(d, f'new-{tag}-{i}.tmp')
            try:
                with open(tmp, 'wb') as f:
                    f.write(versions[i % 2])
                os.rename(tmp, os.path.join(d, 'source.c'))
            except OSError as e:
                errors.append(f'{tag} #{i}: {e!r}')

    def by_truncate(m, tag, n):
        path = m.path('procs', T, 'source.c')
        for i in range(n):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o644)
                try:
                    data = versions[(i + 1) % 2]
                    # Two writes: a reader of a half-saved file would see the first half.
                    os.write(fd, data[:len(data) // 2])
                    os.write(fd, data[len(data) // 2:])
                finally:
                    os.close(fd)
            except OSError as e:
                errors.append(f'{tag} #{i}: {e!r}')

    def reader(m):
        while not stop.is_set():
            try:
                got = m.ask(T, 'abc')
            except OSError as e:
                got = e
            if got not in ANSWERS.values():
                bad_answers.append((m.mnt, got))
            time.sleep(0.005)

    writers = [threading.Thread(target=by_rename, args=(a, 'a-rename', 25)),
               threading.Thread(target=by_truncate, args=(b, 'b-trunc', 25)),
               threading.Thread(target=by_rename, args=(b, 'b-rename', 25)),
               threading.Thread(target=by_truncate, args=(a, 'a-trunc', 25))]
    readers = [threading.Thread(target=reader, args=(m,)) for m in (a, b)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in writers + readers), 'writers or readers hung'
    assert not errors, 'replaces failed:\n' + '\n'.join(errors[:20])
    # Both sources are valid: a reader sees one answer or the other, never an error.
    assert not bad_answers, f'{len(bad_answers)} bad answers during the race, e.g. {bad_answers[:5]}'

    # The store holds exactly one of the two versions, never a mix.
    tdir = store_type_dir(a.store, T)
    final = read(os.path.join(tdir, 'source.c'))
    assert final in versions, f'store source.c is neither version ({len(final)} bytes):\n{final[:400]!r}'
    want = ANSWERS[final.decode()]
    # Both daemons agree on the source and the answer within the revalidation delay.
    for m in (a, b):
        deadline = time.time() + POLL_S
        while read(m.path('procs', T, 'source.c')) != final and time.time() < deadline:
            time.sleep(0.05)
        assert read(m.path('procs', T, 'source.c')) == final, f'{m.mnt} shows another source'
        poll_answer(m, T, 'abc', want)
        assert m.ask(T, 'zz') == (b'ZZ\n' if final == versions[0] else b'reversed:zz\n')
    assert a.ask(T, 'abc') == b.ask(T, 'abc') == want
    # History keeps whole versions only.
    hist = os.path.join(tdir, 'history')
    if os.path.isdir(hist):
        for h in os.listdir(hist):
            if h.startswith('.seglam-tmp.'):
                continue
            assert read(os.path.join(hist, h)) in versions, f'history/{h} is not a whole version'
    # No litter of the writers' temp names was taken for the procedure.
    assert read(os.path.join(tdir, 'source.c')) == final

    a.stop()
    b.stop()
    assert not tmp_files(a.store), f'temp files left in the store: {tmp_files(a.store)}'
