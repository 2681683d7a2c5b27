"""NFS export of the mount itself: nfs-ganesha (FSAL VFS, NFSv4) on 127.0.0.1 serving a
seglamfs MOUNT, read and written with libnfs's client tools (nfs-ls, nfs-cat, nfs-cp).

Needs the Debian packages nfs-ganesha, nfs-ganesha-vfs, rpcbind and libnfs-utils (a
missing one fails the test, naming it).  Skips only when /dev/fuse or rpcbind cannot
run.  ganesha runs as our child with its own config, pid file, log and state in the
test's temp dir (tests/nfs/ganesha.py), and is stopped at teardown.

The kernel server's equivalent, for /etc/exports:
    MOUNT 127.0.0.1(rw,fsid=1,no_subtree_check,no_root_squash)
"""
import os
import sys
import time

import pytest

from conftest import UPPER, ROOT, write

sys.path.insert(0, os.path.join(ROOT, 'tests', 'nfs'))
import ganesha  # noqa: E402

# One NFS server at a time: each registers with the one rpcbind of the machine
# (scripts/test runs the mount tests on several xdist workers, --dist loadgroup).
pytestmark = pytest.mark.xdist_group('nfs')

SHOUT = r'''#include <seglam.h>
#include <ctype.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = 0; i < len; i++)
		seglam_printf(out, "%c", toupper((unsigned char)in[i]));
	return seglam_printf(out, "!\n");
}
'''

REVERSED = r'''#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	seglam_printf(out, "reversed:");
	while (len--)
		seglam_write(out, &in[len], 1);
	return seglam_write(out, "\n", 1);
}
'''


@pytest.fixture
def nfs(mounts, tmp_path):
    if not os.path.exists('/dev/fuse'):
        pytest.skip('/dev/fuse is absent: no FUSE, nothing to export')
    missing = ganesha.missing_packages()
    if missing:
        pytest.fail('NFS test needs the Debian packages: ' + ' '.join(missing)
                    + ' (scripts/install-deps installs them)')
    rpc = ganesha.Rpcbind()
    why = rpc.ensure()
    if why:
        pytest.skip('rpcbind cannot run: ' + why)
    # allow_other: ganesha acts with the NFS client's credentials.
    m = mounts(library=True, options=['-o', 'allow_other'])
    workdir = tmp_path / 'nfs'
    workdir.mkdir()
    g = ganesha.Ganesha(str(workdir), m.mnt)
    try:
        g.start()
        yield m, g
    finally:
        pid = g.proc.pid if g.proc else None
        g.stop()
        rpc.stop()
        if pid:
            assert not os.path.exists(f'/proc/{pid}'), 'ganesha.nfsd still running after teardown'


def nfs_cat_retry(g, rel, want, seconds=3.0):
    """nfs-cat until it returns want (NFS attribute caches may lag a little)."""
    deadline = time.time() + seconds
    while True:
        r = g.cat(rel, check=False)
        if r.returncode == 0 and r.stdout == want:
            return
        if time.time() > deadline:
            raise AssertionError(f'nfs-cat {rel}: exit {r.returncode}, got {r.stdout!r}, want {want!r}; '
                                 f'{r.stderr.decode(errors="replace")}')
        time.sleep(0.2)


def test_nfs_reads_answers_sources_and_lists(nfs):
    m, g = nfs
    # The first ask of a type on this mount goes through NFS.
    assert g.cat('ask/roman-to-int/MCMXCIV') == b'1994\n'
    assert g.cat('ask/roman-to-int/XLII') == b'42\n'
    assert g.cat('ask/roman-to-int/MCMXCIV') == b'1994\n'
    # The same through FUSE, then through NFS again.
    assert m.ask('gcd', '12 18') == g.cat('ask/gcd/12 18')
    with open(m.path('procs', 'roman-to-int', 'source.c'), 'rb') as f:
        assert g.cat('procs/roman-to-int/source.c') == f.read()
    procs = sorted(os.listdir(m.path('procs')))
    assert len(procs) == 37  # library/ (34, and the 3 composed types)
    assert sorted(g.ls('procs')) == procs
    assert sorted(g.ls('ask')) == sorted(os.listdir(m.path('ask')))
    assert set(g.ls('procs/roman-to-int')) >= {'source.c', 'tests', 'spec'}
    assert set(g.ls('')) == {'ask', 'map', 'procs', 'q', 'query', 'stats'}


def test_nfs_writes_new_source(nfs, tmp_path):
    m, g = nfs
    local = tmp_path / 'shout.c'
    local.write_text(SHOUT)
    # nfs-cp cannot create directories (and libnfs-utils has no mkdir): mkdir through FUSE.
    r = g.run('nfs-cp', str(local), g.url('procs/shout/source.c'), check=False)
    assert r.returncode != 0
    os.mkdir(m.path('procs', 'shout'))
    g.cp_to(str(local), 'procs/shout/source.c')
    assert g.cat('procs/shout/source.c') == SHOUT.encode()
    with open(m.path('procs', 'shout', 'source.c')) as f:
        assert f.read() == SHOUT
    # It answers through NFS first, then FUSE, then NFS again.
    assert g.cat('ask/shout/hello') == b'HELLO!\n'
    assert m.ask('shout', 'nfs') == b'NFS!\n'
    assert g.cat('ask/shout/nfs') == b'NFS!\n'
    assert 'shout' in g.ls('ask')
    assert 'shout' in g.ls('procs')


def test_nfs_writes_source_asked_first_through_fuse(nfs, tmp_path):
    m, g = nfs
    local = tmp_path / 'upper.c'
    local.write_text(UPPER)
    os.mkdir(m.path('procs', 'up'))
    g.cp_to(str(local), 'procs/up/source.c')
    assert m.ask('up', 'abc') == b'ABC\n'
    assert g.cat('ask/up/abc') == b'ABC\n'
    assert g.cat('ask/up/xyz') == b'XYZ\n'


def test_nfs_sees_edits_made_through_fuse(nfs):
    m, g = nfs
    m.put_proc('flip', UPPER)
    assert m.ask('flip', 'ab') == b'AB\n'
    assert g.cat('ask/flip/ab') == b'AB\n'
    # An edit saved through the mount: NFS readers get the new answer (a different
    # size, so a stale st_size would truncate or pad it).
    write(m.path('procs', 'flip', 'source.c'), REVERSED)
    assert m.ask('flip', 'ab') == b'reversed:ba\n'
    nfs_cat_retry(g, 'ask/flip/ab', b'reversed:ba\n')
    nfs_cat_retry(g, 'procs/flip/source.c', REVERSED.encode())
    # And back.
    write(m.path('procs', 'flip', 'source.c'), UPPER)
    nfs_cat_retry(g, 'ask/flip/ab', b'AB\n')
