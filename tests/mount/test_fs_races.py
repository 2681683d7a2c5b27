"""fs/ against races and hostile store entries (review of fs/, defects 1-6).

Each test reproduces one defect of that review on a real mount: a name given
another file between the kernel's permission check and the daemon's open, a
procs node that outlives the type it was looked up in, a FIFO planted in STORE
where a create lands, the daemon's umask on top of the caller's, writes after a
failed write, and directory chains too deep for a store path.  The multi-user
ones run a real user 65534 on an `allow_other` mount, as test_security.py does.
"""
import ctypes
import errno
import glob
import os
import resource
import signal
import stat
import subprocess
import sys
import time

import pytest

from conftest import UPPER, Mount, write
from test_security import NOBODY, as_nobody, shared_mounts, type_dir  # noqa: F401

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (allow_other, other users)')


# drop_caches is machine-wide: the tests that use it run on one xdist worker, one
# at a time, so that none drops what another is counting on the kernel to hold
# (test_names_looked_up_but_not_stored_are_not_kept counts its nodes before it
# drops them; a concurrent drop once left 2687 of its 3000).
drops_caches = pytest.mark.xdist_group('drop_caches')


def drop_caches():
    """Make the kernel forget the dentries and inodes of the mount (FORGET)."""
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('2\n')


# ---- 2: a procs node outlives its type ------------------------------------------


@needs_root
def test_file_survives_rename_of_its_type(mount):
    """A file node under procs/TYPE/ borrowed its type's name string: renaming the
    type freed it, and the next OPEN of the file read freed memory (ASan aborts the
    daemon; the fixture fails on the report)."""
    os.mkdir(mount.path('procs', 'AA'))
    write(mount.path('procs', 'AA', 'spec'), 'hello\n')
    os.stat(mount.path('procs', 'AA', 'spec'))
    os.rename(mount.path('procs', 'AA'), mount.path('procs', 'CC'))
    with open(mount.path('procs', 'CC', 'spec')) as f:
        assert f.read() == 'hello\n'


@needs_root
@drops_caches
def test_file_moved_out_of_a_removed_type(mount):
    """A held file moved into another type outlives the type it came from."""
    os.mkdir(mount.path('procs', 'AA'))
    os.mkdir(mount.path('procs', 'BB'))
    write(mount.path('procs', 'AA', 'spec'), 'hello\n')
    with open(mount.path('procs', 'AA', 'spec')) as held:
        os.rename(mount.path('procs', 'AA', 'spec'), mount.path('procs', 'BB', 'spec'))
        os.rmdir(mount.path('procs', 'AA'))
        drop_caches()
        with open(mount.path('procs', 'BB', 'spec')) as f:
            assert f.read() == 'hello\n'
        assert held.read() == 'hello\n'
    drop_caches()
    with open(mount.path('procs', 'BB', 'spec')) as f:
        assert f.read() == 'hello\n'


# ---- 6: chains too deep for a store path -----------------------------------------


def test_too_deep_is_no_path(mount):
    """Past 256 levels below a type, the store path of an entry was
    TYPE/.seglam-too-deep: a real name, which anyone can create, so the mount
    served its files in place of the real ones.  Now such an entry has no path."""
    os.mkdir(mount.path('procs', 'T'))
    tdir = type_dir(mount.store, 'T')
    deep = os.path.join(*(['a'] * 257))
    os.makedirs(os.path.join(tdir, deep, 'real'))
    os.makedirs(os.path.join(tdir, '.seglam-too-deep'))
    write(os.path.join(tdir, '.seglam-too-deep', 'planted'), 'planted\n')
    # 256 levels are served as they are in the store
    assert os.path.isdir(mount.path('procs', 'T', *(['a'] * 256)))
    for p in (mount.path('procs', 'T', deep), mount.path('procs', 'T', deep, 'planted'),
              mount.path('procs', 'T', deep, 'real')):
        with pytest.raises(OSError) as e:
            os.stat(p)
        assert e.value.errno == errno.ENAMETOOLONG, p
    # Nothing is made below the limit, and nothing at the made-up name.
    with pytest.raises(OSError) as e:
        os.mkdir(mount.path('procs', 'T', *(['a'] * 256), 'new'))
    assert e.value.errno == errno.ENAMETOOLONG
    assert not os.path.exists(os.path.join(tdir, *(['a'] * 256), 'new'))
    assert os.listdir(os.path.join(tdir, '.seglam-too-deep')) == ['planted']


# ---- 1: a name given another file between the kernel's check and the open ----

# Run as nobody: in a directory everyone may write (but not read each other's
# files in), swap another user's 0600 file in and out under our own file's name,
# while opening that name (or linking it) as fast as we can.  The kernel checks
# our access on the attributes it has for the name's node; the daemon (root)
# opens by name a moment later, and must check again what it opened.
SWAP_RACE = r'''
import ctypes, os, sys, time
d, what, opens, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
secret, mine = d + '/secret', d + '/mine'
fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b'mine\n')
os.close(fd)
pid = os.fork()
if pid == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    while True:  # RENAME_EXCHANGE: "mine" is ours, then theirs, then ours...
        libc.renameat2(-100, mine.encode(), -100, secret.encode(), 2)
end = time.time() + seconds
n = 0
try:
    while n < opens and time.time() < end:
        n += 1
        try:
            if what == 'read':
                fd = os.open(mine, os.O_RDONLY)
                data = os.read(fd, 64)
                os.close(fd)
                if data and not data.startswith(b'mine'):
                    print('LEAK', n, data)
                    break
            else:
                # into another directory: a link holds its target directory's
                # lock, which the renames in @d would wait for
                os.link(mine, d + '/../other/copy')
                os.unlink(d + '/../other/copy')
        except OSError:
            pass
finally:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print('opens', n)
'''


def swap_race_setup(m):
    os.mkdir(m.path('procs', 'T'))
    shared = m.path('procs', 'T', 'shared')
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    os.mkdir(m.path('procs', 'T', 'other'))
    os.chmod(m.path('procs', 'T', 'other'), 0o777)
    write(os.path.join(shared, 'secret'), 'TOPSECRET\n')
    os.chmod(os.path.join(shared, 'secret'), 0o600)
    return shared


@needs_root
def test_open_is_of_the_checked_file(shared_mounts):
    """OPEN opened the node's store path by name, as root: a user who swapped
    another user's 0600 file under their own name between GETATTR and OPEN read
    it.  Now the daemon checks the caller's access on the file it opened."""
    m = shared_mounts(options=['-o', 'allow_other'])
    shared = swap_race_setup(m)
    r = as_nobody(SWAP_RACE, shared, 'read', 5000, 15)
    assert r.returncode == 0, r.stderr
    assert 'LEAK' not in r.stdout, r.stdout
    assert 'TOPSECRET' not in r.stdout


@needs_root
def test_link_is_of_the_checked_file(shared_mounts):
    """LINK linked the node's store path by name, as root: the same swap got a
    hard link to another user's 0600 file under a name of the attacker's choice
    (the kernel refuses that link: fs.protected_hardlinks).  Now the daemon links
    by descriptor, and only what the caller may link."""
    m = shared_mounts(options=['-o', 'allow_other'])
    shared = swap_race_setup(m)
    stored = type_dir(m.store, 'T')
    secret_ino = os.lstat(os.path.join(stored, 'shared', 'secret')).st_ino
    code = SWAP_RACE.replace("os.unlink(d + '/../other/copy')",
                             "st = os.lstat(d + '/../other/copy')\n"
                             "                if st.st_uid != os.getuid():\n"
                             "                    print('LEAK linked', st.st_uid)\n"
                             "                    break\n"
                             "                os.unlink(d + '/../other/copy')")
    r = as_nobody(code, shared, 'link', 5000, 15)
    assert r.returncode == 0, r.stderr
    assert 'LEAK' not in r.stdout, r.stdout
    for root, dirs, files in os.walk(stored):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if st.st_ino == secret_ino:
                assert st.st_nlink == 1, f'{name}: a link to the secret, {st.st_nlink} names'


# ---- 3: what a create or mkdir finds at its name ---------------------------------


@needs_root
def test_create_over_a_planted_fifo(shared_mounts):
    """A FIFO planted in STORE is hidden from LOOKUP, so `echo hi > f` reaches the
    daemon as CREATE: the daemon opened it for writing as root (waking a reader
    blocked on it) and would have chowned it to the caller.  Now the create fails
    with EACCES and the FIFO is left alone."""
    m = shared_mounts(options=['-o', 'allow_other'])
    os.mkdir(m.path('procs', 'T'))
    os.chmod(m.path('procs', 'T'), 0o777)
    fifo = os.path.join(type_dir(m.store, 'T'), 'f')
    os.mkfifo(fifo, 0o600)
    # open(O_RDONLY) of a FIFO blocks until a writer opens it
    reader = subprocess.Popen(['cat', fifo], stdout=subprocess.PIPE)
    try:
        time.sleep(0.3)
        r = as_nobody(r'''
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b'hi\n')
    os.close(fd)
    print('created')
except OSError as e:
    print('error', errno.errorcode[e.errno])
''', m.path('procs', 'T', 'f'))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == 'error EACCES', r.stdout
        time.sleep(0.5)
        assert reader.poll() is None, 'the daemon opened the FIFO: its reader was woken'
    finally:
        reader.kill()
        reader.wait()
    st = os.lstat(fifo)
    assert stat.S_ISFIFO(st.st_mode) and st.st_uid == 0, (oct(st.st_mode), st.st_uid)
    # The same for a type directory's mkdir, which a user gets only if it is new.
    with pytest.raises(OSError) as e:
        os.mkdir(m.path('procs', 'T'))
    assert e.value.errno == errno.EEXIST


@needs_root
def test_created_entries_belong_to_their_maker(shared_mounts):
    """Files, directories, symlinks and types made through the mount are given to
    the user who made them (by descriptor now), and nothing else is."""
    m = shared_mounts(options=['-o', 'allow_other'])
    r = as_nobody(r'''
import os, sys
d = os.path.join(sys.argv[1], 'procs', 'mine')
os.mkdir(d)
with open(os.path.join(d, 'f'), 'w') as f:
    f.write('x')
os.mkdir(os.path.join(d, 'sub'))
os.symlink('f', os.path.join(d, 'l'))
os.mknod(os.path.join(d, 'n'), 0o644)
''', m.mnt)
    assert r.returncode == 0, r.stderr
    tdir = type_dir(m.store, 'mine')
    for name in ('', 'f', 'sub', 'l', 'n'):
        assert os.lstat(os.path.join(tdir, name)).st_uid == NOBODY, name


# ---- 4: the daemon's umask on top of the caller's --------------------------------


def test_modes_are_the_callers(mounts):
    """The kernel masks a new entry's mode with the caller's umask; the daemon, at
    umask 022, masked it again: a caller at 002 got 0644 files and 0755
    directories, a type directory was always 0755, and every save of a 0664 file
    made it 0644."""
    old = os.umask(0o022)
    try:
        m = mounts()
    finally:
        os.umask(old)
    r = subprocess.run(['sh', '-c', 'umask 002 && mkdir "$1/procs/U" && echo v1 > "$1/procs/U/spec" '
                        '&& mkdir "$1/procs/U/sub" && : > "$1/procs/U/sub/f"', 'sh', m.mnt],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tdir = type_dir(m.store, 'U')

    def mode(*p):
        return stat.S_IMODE(os.lstat(os.path.join(tdir, *p)).st_mode)
    assert mode() == 0o775
    assert mode('spec') == 0o664
    assert mode('sub') == 0o775
    assert mode('sub', 'f') == 0o664
    # a save (shadow and rename) and a truncate keep the file's mode
    r = subprocess.run(['sh', '-c', 'umask 002 && echo v2 > "$1" && truncate -s 1 "$1"', 'sh',
                        m.path('procs', 'U', 'spec')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert mode('spec') == 0o664
    with open(m.path('procs', 'U', 'spec')) as f:
        assert f.read() == 'v'
    os.chmod(m.path('procs', 'U', 'spec'), 0o660)
    write(m.path('procs', 'U', 'spec'), 'v3\n')
    assert mode('spec') == 0o660


# ---- 5: writes after a failed write ----------------------------------------------


def test_a_failed_write_fails_the_handle(mounts, monkeypatch):
    """After a write failed, an fsync dropped the shadow (with the writes before the
    failure) and cleared the error; the next write made a new shadow from the old
    file and the close committed the old data patched with it.  Now every later
    write, fsync and close of that handle fails and the file stays as it was.  The
    failure is real: the daemon runs with RLIMIT_FSIZE 1 MiB (SIGXFSZ ignored),
    so a write past 1 MiB is EFBIG."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    popen = subprocess.Popen

    def keep_signals(*args, **kw):  # Popen resets SIGXFSZ to its default, which kills
        return popen(*args, **dict(kw, restore_signals=False))
    monkeypatch.setattr(subprocess, 'Popen', keep_signals)
    try:
        m = mounts()  # inherits both
    finally:
        monkeypatch.undo()
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    os.mkdir(m.path('procs', 'T'))
    spec = m.path('procs', 'T', 'spec')
    write(spec, 'old data\n')
    fd = os.open(spec, os.O_WRONLY)
    outcomes = []
    try:
        os.pwrite(fd, b'NEW', 0)
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b'x', 2 << 20)
        assert e.value.errno == errno.EFBIG
        for what, fn in (('fsync', lambda: os.fsync(fd)),
                         ('write', lambda: os.pwrite(fd, b'LATER', 0)),
                         ('fsync again', lambda: os.fsync(fd))):
            try:
                fn()
                outcomes.append((what, 'ok'))
            except OSError as e:
                outcomes.append((what, errno.errorcode[e.errno]))
    finally:
        try:
            os.close(fd)
            outcomes.append(('close', 'ok'))
        except OSError as e:
            outcomes.append(('close', errno.errorcode[e.errno]))
    assert outcomes == [('fsync', 'EFBIG'), ('write', 'EFBIG'), ('fsync again', 'EFBIG'),
                        ('close', 'EFBIG')]
    with open(spec) as f:
        assert f.read() == 'old data\n'
    # the next handle works as ever
    write(spec, 'new data\n')
    with open(spec) as f:
        assert f.read() == 'new data\n'


# ---- lookups of names the store does not hold -----------------------------------


@needs_root
@drops_caches
def test_names_looked_up_but_not_stored_are_not_kept(mounts, llm):
    """With an LLM every valid name under ask/ and query/ is a type one may ask,
    so a loop of stat query/T$i makes a node for each.  Those of names the store
    does not hold go once the kernel forgets them (before, each was kept for the
    life of the mount: 200,000 names took the daemon from 8 to 90 MB); a stored
    type's node is kept, and answers after."""
    m = mounts(env=llm.env())
    m.put_proc('kept', UPPER)
    assert m.ask('kept', 'a') == b'A\n'
    for i in range(3000):
        os.stat(m.path('query', f'nokeep{i}'))
    assert m.stats()['inodes'] >= 3000
    for _ in range(50):
        drop_caches()
        if m.stats()['inodes'] < 500:
            break
        time.sleep(0.1)
    assert m.stats()['inodes'] < 500, m.stats()['inodes']
    assert m.ask('kept', 'b') == b'B\n'



class _FileHandle(ctypes.Structure):
    _fields_ = [('handle_bytes', ctypes.c_uint), ('handle_type', ctypes.c_int),
                ('f_handle', ctypes.c_ubyte * 128)]


_libc = ctypes.CDLL(None, use_errno=True)


def name_to_handle(path):
    """The file handle an NFS server keeps for @path (name_to_handle_at)."""
    fh = _FileHandle(handle_bytes=128)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, path.encode(), ctypes.byref(fh), ctypes.byref(mount_id), 0):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return fh


def handle_errno(mnt, fh, read=False):
    """0 if @fh still opens on the mount @mnt (open_by_handle_at), else its errno;
    with @read, (0, what the file holds) or (errno, None)."""
    mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = _libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
        if fd < 0:
            return (ctypes.get_errno(), None) if read else ctypes.get_errno()
        try:
            return (0, os.read(fd, 1 << 20)) if read else 0
        finally:
            os.close(fd)
    finally:
        os.close(mfd)


def replace_in_store(store_path, text):
    """Another file under the same name, as an NFS peer's editor leaves it."""
    tmp = store_path + '.peer-tmp'
    write(tmp, text)
    os.rename(tmp, store_path)


def forget_until_stale(mnt, handles, control):
    """Drop the kernel's caches until the handle @control (of a node the daemon
    does not keep) is ESTALE, which shows the kernel forgot the mount's inodes;
    then what each of @handles gives (0 or an errno)."""
    errs = {}
    for _ in range(50):
        drop_caches()
        errs = {p: handle_errno(mnt, fh) for p, fh in handles.items()}
        if errs[control]:
            break
        time.sleep(0.1)
    assert errs[control] == errno.ESTALE, f'the kernel never forgot {control}: nothing shown'
    return errs


@needs_root
@drops_caches
def test_a_type_directory_handle_survives_the_kernel_forgetting_it(mount):
    """NFS export: the server keeps handles, the kernel forgets inodes.  To open
    a directory handle again it looks the node up by number, then finds its
    name in the parent's listing by st_ino; the listing gave a stand-in d_ino,
    so every handle to a type directory turned ESTALE once forgotten.  (The
    control: a file an NFS peer replaced in the store, whose handle must go.)"""
    mount.put_proc('st', UPPER)
    write(mount.path('procs', 'st', 'notes'), 'old\n')
    paths = [mount.path('procs', 'st'), mount.path('ask', 'st'), mount.path('query', 'st'),
             mount.path('procs', 'st', 'notes')]
    handles = {p: name_to_handle(p) for p in paths}
    for p in paths[:2]:
        assert {e.name: e.inode() for e in os.scandir(os.path.dirname(p))}['st'] == os.stat(p).st_ino
    replace_in_store(os.path.join(type_dir(mount.store, 'st'), 'notes'), 'new\n')
    errs = forget_until_stale(mount.mnt, handles, paths[3])
    assert [errs[p] for p in paths[:3]] == [0, 0, 0], {p: os.strerror(e) for p, e in errs.items()}
    assert mount.ask('st', 'after') == b'AFTER\n'


def settled_ghosts(m):
    """The daemon's count of forgotten inodes once the kernel's FORGETs (sent after
    it evicts, and served by the daemon in its own time) stop coming."""
    last = None
    for _ in range(50):
        drop_caches()
        now = m.stats()['inodes_forgotten']
        if now == last:
            return now
        last = now
        time.sleep(0.1)
    return last


@needs_root
@drops_caches
def test_file_and_answer_handles_survive_the_kernel_forgetting_them(mount):
    """NFS export: a handle to a file in procs/T/ (or below a directory there)
    or to an answer went ESTALE once the kernel forgot its inode, since the
    daemon freed the node and its number with it, and an NFS client holding it
    got errors (kernel nfsd; ganesha looks names up again).  A forgotten node
    leaves its number behind, and the handle finds its file again, through its
    directory if the kernel forgot that too.  A handle to a file deleted (through
    the mount, or in the store after the kernel forgot it), or replaced behind the
    daemon (an NFS peer), goes ESTALE, as on a local filesystem, also when the
    store's filesystem gives the new file the old one's st_ino."""
    mount.put_proc('fh', UPPER)
    os.mkdir(mount.path('procs', 'fh', 'notes'))
    write(mount.path('procs', 'fh', 'notes', 'a.txt'), 'note a\n')
    for name in ('gone', 'replaced', 'replaced2', 'later-gone', 'recycled'):
        write(mount.path('procs', 'fh', name), name + '\n')
    a_txt = mount.path('procs', 'fh', 'notes', 'a.txt')
    keep = {a_txt: b'note a\n', mount.path('procs', 'fh', 'notes'): None,
            mount.path('procs', 'fh', 'source.c'): UPPER.encode(),
            mount.path('ask', 'fh', 'hello'): b'HELLO\n'}
    fh = {n: mount.path('procs', 'fh', n) for n in
          ('gone', 'replaced', 'replaced2', 'later-gone', 'recycled')}
    inos = {p: os.stat(p).st_ino for p in keep}
    handles = {p: name_to_handle(p) for p in list(keep) + list(fh.values())}
    in_store = {n: os.path.join(type_dir(mount.store, 'fh'), n) for n in fh}

    os.unlink(fh['gone'])
    replace_in_store(in_store['replaced'], 'peer\n')
    phase_a = {p: handles[p] for p in list(keep) + [fh['gone'], fh['replaced']]}
    errs = forget_until_stale(mount.mnt, phase_a, fh['replaced'])
    assert errs[fh['gone']] == errno.ESTALE, os.strerror(errs[fh['gone']])
    for p, want in keep.items():
        err, data = (handle_errno(mount.mnt, handles[p], read=True) if want is not None
                     else (handle_errno(mount.mnt, handles[p]), None))
        assert err == 0, f'{p}: {os.strerror(err)}'
        assert data == want, p
        assert os.stat(p).st_ino == inos[p], p
    assert mount.ask('fh', 'after') == b'AFTER\n'
    with open(fh['replaced']) as f:
        assert f.read() == 'peer\n'

    # The kernel forgets again, and nothing opens the others meanwhile: a.txt's
    # handle then brings back its directory too (two ghosts claimed).
    replace_in_store(in_store['replaced2'], 'peer\n')
    forget_until_stale(mount.mnt, {fh['replaced2']: handles[fh['replaced2']]}, fh['replaced2'])
    ghosts = settled_ghosts(mount)
    mfd = os.open(mount.mnt, os.O_RDONLY | os.O_DIRECTORY)
    fd = _libc.open_by_handle_at(mfd, ctypes.byref(handles[a_txt]), os.O_RDONLY)
    os.close(mfd)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        # (held open: the kernel forgets a file opened by handle at its close)
        assert os.read(fd, 100) == b'note a\n'
        assert ghosts - mount.stats()['inodes_forgotten'] >= 2, 'a.txt came back without notes/'
    finally:
        os.close(fd)
    # Deleted in the store while forgotten; deleted and made anew.
    os.unlink(in_store['later-gone'])
    old_ino = os.stat(in_store['recycled']).st_ino
    os.unlink(in_store['recycled'])
    write(in_store['recycled'], 'new\n')
    # (ext4 holds a number back for a while after its file is deleted, so here the
    # new file usually gets another: test_ghost covers the same number made anew)
    print('recycled st_ino', 'reused' if os.stat(in_store['recycled']).st_ino == old_ino
          else 'not reused')
    for n in ('later-gone', 'recycled'):
        err = handle_errno(mount.mnt, handles[fh[n]])
        assert err == errno.ESTALE, f'{n}: {os.strerror(err) if err else "opened"}'
    with open(fh['recycled']) as f:
        assert f.read() == 'new\n'


@needs_root
@drops_caches
def test_a_type_made_after_its_lookup_keeps_its_handle(mounts, llm):
    """An NFS server looks ask/T up before T exists, and the client's first read
    makes T (a synthesis).  The node was marked "not in the store" at that lookup
    and went when the kernel forgot it, so the server's handle turned ESTALE
    although T is a stored type now.  A type node that answered is kept as one
    found in the store.  (A name only looked up still goes: the control.)"""
    llm.script([], default={'kind': 'code', 'code': UPPER})
    m = mounts(env=llm.env())
    late, query, never = m.path('ask', 'late'), m.path('query', 'lateq'), m.path('ask', 'never')
    handles = {p: name_to_handle(p) for p in (late, query, never)}
    assert m.ask('late', 'x') == b'X\n'
    with open(query, 'r+b', buffering=0) as f:
        f.write(b'y')
        assert f.read() == b'Y\n'
    errs = forget_until_stale(m.mnt, handles, never)
    assert errs[late] == 0, os.strerror(errs[late])
    assert errs[query] == 0, os.strerror(errs[query])

# ---- what the access re-check must leave alone ------------------------------------


@needs_root
def test_a_creator_writes_what_it_made_whatever_its_mode(shared_mounts):
    """The kernel lets a creator write through the descriptor its O_CREAT gave,
    whatever mode it asked for (git writes every object 0444 that way; cp and tar
    make read-only copies so).  The daemon's own check of what it opened must not
    refuse it: that file is the one the kernel checked."""
    m = shared_mounts(options=['-o', 'allow_other'])
    os.mkdir(m.path('procs', 'cr'))
    os.chmod(m.path('procs', 'cr'), 0o777)
    src = os.path.join(os.path.dirname(m.mnt), 'ro-src')
    write(src, 'read only\n')
    os.chmod(src, 0o444)
    r = as_nobody(r'''
import os, subprocess, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, 'ro'), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o444)
os.write(fd, b'made\n')
os.close(fd)
print(open(os.path.join(d, 'ro')).read().strip(), oct(os.stat(os.path.join(d, 'ro')).st_mode & 0o777))
r = subprocess.run(['cp', sys.argv[2], os.path.join(d, 'copied')], capture_output=True, text=True)
print('cp', r.returncode, r.stderr.strip(), open(os.path.join(d, 'copied')).read().strip())
''', m.path('procs', 'cr'), src)
    assert r.returncode == 0, r.stderr
    assert 'made 0o444' in r.stdout, r.stdout
    assert 'cp 0  read only' in r.stdout, r.stdout


@needs_root
def test_access_through_a_supplementary_group(shared_mounts):
    """A file readable through a group the caller is in (here the 71st of 71):
    the kernel grants it, and the daemon must not refuse it afterwards (it read
    only the first 64 groups)."""
    m = shared_mounts(options=['-o', 'allow_other'])
    os.mkdir(m.path('procs', 'grp'))
    write(m.path('procs', 'grp', 'secret'), 'for the group\n')
    os.chown(m.path('procs', 'grp', 'secret'), 0, 2070)
    os.chmod(m.path('procs', 'grp', 'secret'), 0o640)

    def drop():
        os.setgroups(list(range(2000, 2071)))
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    r = subprocess.run(['cat', m.path('procs', 'grp', 'secret')], preexec_fn=drop,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == 'for the group\n', r.stderr


def test_cp_a_keeps_mode_owner_and_times(mount, tmp_path):
    """cp -a writes, then sets times, owner and mode through the descriptor
    (futimens, fchown, fchmod: the kernel sends those without the handle), then
    closes; the close commits the handle's writes, and must not put back the mode,
    owner and times the file had when it was opened."""
    src = tmp_path / 'src'
    src.mkdir()
    f = src / 'spec'
    f.write_text('restored\n')
    os.chmod(f, 0o640)
    os.chown(f, NOBODY, NOBODY)
    os.utime(f, (1_000_000_000, 1_000_000_000))
    os.mkdir(mount.path('procs', 'cpa'))
    r = subprocess.run(['cp', '-a', str(f), mount.path('procs', 'cpa', 'spec')],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    st = os.stat(mount.path('procs', 'cpa', 'spec'))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == \
        (0o640, NOBODY, NOBODY, 1_000_000_000)
    st = os.stat(os.path.join(type_dir(mount.store, 'cpa'), 'spec'))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, int(st.st_mtime)) == (0o640, NOBODY, 1_000_000_000)
