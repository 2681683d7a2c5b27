"""fs/ against races and hostile store entries (review of fs/, defects 1-6).

Each test reproduces one defect of that review on a real mount: a name given
another file between the kernel's permission check and the daemon's open, a
procs node that outlives the type it was looked up in, a FIFO planted in STORE
where a create lands, the daemon's umask on top of the caller's, writes after a
failed write, and directory chains too deep for a store path.  The multi-user
ones run a real user 65534 on an `allow_other` mount, as test_security.py does.
"""
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

from conftest import Mount, write
from test_security import NOBODY, as_nobody, shared_mounts, type_dir  # noqa: F401

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (allow_other, other users)')


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
