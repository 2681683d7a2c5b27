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
