"""Procedures as ordinary files: real editors and tools, each save followed at once
by a read that shows the new procedure (issue 4)."""
import errno
import os
import shutil
import subprocess
import time

import pytest

from conftest import UPPER, write

LOWER = UPPER.replace('toupper', 'tolower')
VIM = shutil.which('vim') or shutil.which('vim.tiny') or shutil.which('vi')


def src_path(m, t='t'):
    return m.path('procs', t, 'source.c')


@pytest.fixture
def upper(mount):
    mount.put_proc('t', UPPER)
    assert mount.ask('t', 'AbC') == b'ABC\n'
    return mount


def run(*cmd, **kw):
    r = subprocess.run(list(cmd), capture_output=True, timeout=60, **kw)
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


def test_sed_i(upper):
    run('sed', '-i', 's/toupper/tolower/', src_path(upper))
    assert upper.ask('t', 'AbC') == b'abc\n'
    run('sed', '-i', 's/tolower/toupper/', src_path(upper))
    assert upper.ask('t', 'AbC') == b'ABC\n'


@pytest.mark.parametrize('settings', [[], ['-c', 'set backupcopy=yes'], ['-c', 'set backupcopy=no']],
                         ids=['default', 'backupcopy-yes', 'backupcopy-no'])
def test_vim_ex_mode(upper, settings):
    assert VIM, 'vim is not installed (apt-get install vim-tiny)'
    run(VIM, '-E', '-s', '-u', 'NONE', '-i', 'NONE', *settings, '-c', '%s/toupper/tolower/',
        '-c', 'wq', src_path(upper))
    assert upper.ask('t', 'AbC') == b'abc\n'
    # editor litter never becomes a procedure file, and none is left behind
    left = os.listdir(upper.path('procs', 't'))
    assert not [f for f in left if f.endswith(('~', '.swp')) or f == '4913'], left


def test_ed_writes_in_place(upper):
    assert shutil.which('ed'), 'ed is not installed'
    run('ed', '-s', src_path(upper), input=b',s/toupper/tolower/\nw\nq\n')
    assert upper.ask('t', 'AbC') == b'abc\n'


def test_shell_redirect_truncates_in_place(upper):
    with open(src_path(upper), 'w') as f:
        f.write(LOWER)
    assert upper.ask('t', 'AbC') == b'abc\n'


def test_cp_over_and_mv_over(upper, tmp_path):
    lower = tmp_path / 'lower.c'
    lower.write_text(LOWER)
    run('cp', str(lower), src_path(upper))
    assert upper.ask('t', 'AbC') == b'abc\n'
    other = upper.path('procs', 't', 'new.c')
    write(other, UPPER)
    run('mv', other, src_path(upper))
    assert upper.ask('t', 'AbC') == b'ABC\n'
    assert not os.path.exists(other)


def test_emacs_style_backup_rename(upper):
    # emacs' default: rename the original to NAME~, then write a new NAME.
    os.rename(src_path(upper), src_path(upper) + '~')
    write(src_path(upper), LOWER)
    assert upper.ask('t', 'AbC') == b'abc\n'
    # the backup is litter, not a procedure or a test
    assert os.path.exists(src_path(upper) + '~')
    os.unlink(src_path(upper) + '~')


def test_broken_edit_is_eio_then_fix_restores(upper):
    run('sed', '-i', 's/return seglam_write/return nonsense + seglam_write/', src_path(upper))
    assert upper.ask_errno('t', 'x') == errno.EIO
    log = upper.proc_log('t')
    assert "'nonsense' undeclared" in log and 'line ' in log
    run('sed', '-i', 's/return nonsense + seglam_write/return seglam_write/', src_path(upper))
    assert upper.ask('t', 'x') == b'X\n'
    assert upper.meta('t')['author'] == 'human'


def test_failing_test_case_offline_names_the_case(upper):
    d = upper.path('procs', 't', 'tests')
    os.mkdir(d)
    write(os.path.join(d, 'good.in'), 'ab')
    write(os.path.join(d, 'good.out'), 'AB\n')
    assert upper.ask('t', 'q') == b'Q\n'
    write(os.path.join(d, 'wants-lower.in'), 'ab')
    write(os.path.join(d, 'wants-lower.out'), 'ab\n')
    assert upper.ask_errno('t', 'q') == errno.EIO
    assert 'test wants-lower failed' in upper.proc_log('t')
    os.unlink(os.path.join(d, 'wants-lower.out'))
    assert upper.ask('t', 'q') == b'Q\n'


def test_history_and_rollback_with_cp(upper):
    run('sed', '-i', 's/toupper/tolower/', src_path(upper))
    assert upper.ask('t', 'AbC') == b'abc\n'
    hist = upper.path('procs', 't', 'history')
    kept = sorted(os.listdir(hist))
    assert kept, 'replaced source not kept in history/'
    with open(os.path.join(hist, kept[-1])) as f:
        assert f.read() == UPPER
    run('cp', os.path.join(hist, kept[-1]), src_path(upper))
    assert upper.ask('t', 'AbC') == b'ABC\n'


def test_rm_source_and_rm_r_evict(upper):
    os.unlink(src_path(upper))
    assert upper.ask_errno('t', 'x') == errno.ENOENT
    write(src_path(upper), UPPER)
    assert upper.ask('t', 'x') == b'X\n'
    run('rm', '-r', upper.path('procs', 't'))
    assert upper.ask_errno('t', 'x') == errno.ENOENT
    assert 't' not in os.listdir(upper.path('procs'))


def test_posix_operations(upper):
    d = upper.path('procs', 't')
    p = os.path.join(d, 'notes.txt')
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, b'hello')
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    assert os.stat(p).st_size == 5 and (os.stat(p).st_mode & 0o777) == 0o600
    os.chmod(p, 0o644)
    assert os.stat(p).st_mode & 0o777 == 0o644
    os.utime(p, (1000000000, 1000000000))
    assert os.stat(p).st_mtime == 1000000000
    os.truncate(p, 2)
    with open(p, 'rb') as f:
        assert f.read() == b'he'
    # unlink while open: the open descriptor still reads
    f = open(p, 'rb')
    os.unlink(p)
    assert f.read() == b'he'
    f.close()
    assert not os.path.exists(p)
    # a write through a descriptor whose name was unlinked does not resurrect it
    fd = os.open(os.path.join(d, 'gone'), os.O_CREAT | os.O_WRONLY)
    os.unlink(os.path.join(d, 'gone'))
    os.write(fd, b'x')
    os.close(fd)
    assert not os.path.exists(os.path.join(d, 'gone'))
    os.symlink('source.c', os.path.join(d, 'link'))
    assert os.readlink(os.path.join(d, 'link')) == 'source.c'
    os.mkdir(os.path.join(d, 'sub'))
    write(os.path.join(d, 'sub', 'f'), 'x')
    with pytest.raises(OSError) as e:
        os.rmdir(os.path.join(d, 'sub'))
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(os.path.join(d, 'sub', 'f'))
    os.rmdir(os.path.join(d, 'sub'))
    fd = os.open(os.path.join(d, 'synced'), os.O_CREAT | os.O_WRONLY)
    os.write(fd, b'abc')
    os.fsync(fd)
    with open(os.path.join(d, 'synced'), 'rb') as f:
        assert f.read() == b'abc'
    os.write(fd, b'def')
    os.close(fd)
    with open(os.path.join(d, 'synced'), 'rb') as f:
        assert f.read() == b'abcdef'
    # the procedure itself is untouched by all this litter
    assert upper.ask('t', 'ok') == b'OK\n'


def test_writes_are_atomic_in_the_store(upper):
    """While a writer holds unsaved data, the store still has the old file whole."""
    fd = os.open(src_path(upper), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, LOWER[:40].encode())
    store_src = [os.path.join(dp, 'source.c') for dp, _, fs in os.walk(upper.store)
                 if 'source.c' in fs and dp.endswith('/t')][0]
    with open(store_src) as f:
        assert f.read() == UPPER
    os.write(fd, LOWER[40:].encode())
    os.close(fd)
    with open(store_src) as f:
        assert f.read() == LOWER
    assert upper.ask('t', 'AbC') == b'abc\n'


def test_git_in_procs(upper):
    assert shutil.which('git'), 'git is not installed'
    d = upper.path('procs', 't')
    env = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@t', GIT_COMMITTER_NAME='t',
               GIT_COMMITTER_EMAIL='t@t', HOME=d)
    run('git', 'init', '-q', d, env=env)
    run('git', '-C', d, 'add', 'source.c', env=env)
    run('git', '-C', d, 'commit', '-qm', 'upper', env=env)
    run('sed', '-i', 's/toupper/tolower/', src_path(upper))
    assert upper.ask('t', 'AbC') == b'abc\n'
    run('git', '-C', d, 'checkout', '--', 'source.c', env=env)
    assert upper.ask('t', 'AbC') == b'ABC\n'
    run('rm', '-rf', os.path.join(d, '.git'))


def test_rsync_through_the_mount_both_ways(mounts, tmp_path):
    a = mounts(name='a', library=True)
    backup = tmp_path / 'procs-backup'
    run('rsync', '-a', a.path('procs') + '/', str(backup) + '/')
    assert (backup / 'roman-to-int' / 'source.c').exists()
    b = mounts(name='b')
    run('rsync', '-a', str(backup) + '/', b.path('procs') + '/')
    assert b.ask('roman-to-int', 'MCMXCIV') == b'1994\n'
    assert b.ask('weekday', '2026-11-26') == a.ask('weekday', '2026-11-26')
    # rsync's temp files never became procedure files
    assert not [f for f in os.listdir(b.path('procs', 'upper')) if f.startswith('.')]


def test_store_backup_with_rsync_while_mounted(mounts, tmp_path):
    a = mounts(name='a', library=True)
    answers = {t: a.ask(t, i) for t, i in [('roman-to-int', 'XLII'), ('upper', 'abc'),
                                          ('is-prime', '97')]}
    backup = str(tmp_path / 'store-backup')
    run('rsync', '-a', a.store + '/', backup + '/')
    b = mounts(name='b', store=backup)
    for (t, i), want in zip([('roman-to-int', 'XLII'), ('upper', 'abc'), ('is-prime', '97')],
                            answers.values()):
        assert b.ask(t, i) == want


TWICE = UPPER.replace('return seglam_write(out, "\\n", 1);',
                      'seglam_write(out, in, len);\n\treturn seglam_write(out, "\\n", 1);')


def test_answer_size_change_after_edit_is_never_cut(upper):
    """Answers are read through the kernel's page cache when that is safe: an edit
    that makes the answer longer or shorter must show in full at the next read of
    the same (cached) name, with an exact st_size, never cut to the old size or
    padded."""
    p = upper.path('ask', 't', 'AbC')
    assert os.stat(p).st_size == 4
    for i in range(3):
        write(src_path(upper), TWICE)
        assert upper.ask('t', 'AbC') == b'ABCAbC\n', i
        assert os.stat(p).st_size == 7
        assert upper.ask('t', 'AbC') == b'ABCAbC\n', i  # again, from the page cache
        write(src_path(upper), UPPER)
        assert upper.ask('t', 'AbC') == b'ABC\n', i
        assert os.stat(p).st_size == 4


def test_open_descriptor_reads_its_own_version(upper):
    """A descriptor opened before an edit reads the answer it opened, whole, while
    a descriptor opened after it reads the new one: pages of one version never
    leak into a read of another."""
    p = upper.path('ask', 't', 'xyz')
    assert upper.ask('t', 'xyz') == b'XYZ\n'
    old = os.open(p, os.O_RDONLY)
    try:
        assert os.pread(old, 2, 0) == b'XY'
        write(src_path(upper), LOWER)
        assert upper.ask('t', 'xyz') == b'xyz\n'
        assert os.pread(old, 64, 0) == b'XYZ\n'
        assert os.fstat(old).st_size == 4
        write(src_path(upper), TWICE)
        new = os.open(p, os.O_RDONLY)
        try:
            assert os.read(new, 64) == b'XYZxyz\n'
            assert os.pread(old, 64, 0) == b'XYZ\n'
        finally:
            os.close(new)
    finally:
        os.close(old)
    assert upper.ask('t', 'xyz') == b'XYZxyz\n'


def test_answer_pages_mmap_and_offsets(upper):
    """An answer pushed into the page cache at open reads the same through mmap,
    at any offset, and across a same-size edit (no stale page survives it)."""
    import mmap
    loop = 'for (int k = 0; k < 500; k++)\n\t\tfor (size_t i = 0; i < len; i++) {'
    rep_upper = UPPER.replace('for (size_t i = 0; i < len; i++) {', loop)
    rep_lower = rep_upper.replace('toupper', 'tolower')
    name = 'Hello-World-'  # answers of 6 KiB: two pages
    p = upper.path('ask', 't', name)
    for expect, src in ((name.upper() * 500, rep_upper), (name.lower() * 500, rep_lower),
                        (name.upper() * 500, rep_upper)):
        expect = expect.encode() + b'\n'
        write(src_path(upper), src)
        fd = os.open(p, os.O_RDONLY)
        try:
            assert os.fstat(fd).st_size == len(expect)
            assert os.pread(fd, 100, 4090) == expect[4090:4190]
            with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mm:
                assert mm[:] == expect
        finally:
            os.close(fd)
        assert upper.ask('t', name) == expect
