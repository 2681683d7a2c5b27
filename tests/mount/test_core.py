"""Core: procedures written through procs/ answer through ask/ (issue 2)."""
import errno
import os
import random
import shutil
import string
import subprocess
import tempfile

import pytest

from conftest import ROOT, UPPER, write

REJECT_X = r'''#include <seglam.h>
#include <string.h>

/* Upper-cases; rejects inputs that start with 'x'. */
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	if (len && in[0] == 'x') {
		seglam_printf(out, "inputs may not start with x: '%s'\n", in);
		return 1;
	}
	for (size_t i = 0; i < len; i++)
		seglam_printf(out, "%c", in[i] >= 'a' && in[i] <= 'z' ? in[i] - 32 : in[i]);
	seglam_write(out, "\n", 1);
	return 0;
}
'''

LENGTH = r'''#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in;
	return seglam_printf(out, "%zu\n", len);
}
'''


def test_write_source_then_ask(mount):
    mount.put_proc('upper', UPPER)
    assert mount.ask('upper', 'hello') == b'HELLO\n'
    assert 'upper' in os.listdir(mount.path('ask'))
    assert 'upper' in os.listdir(mount.path('procs'))


def test_2000_distinct_inputs_with_exact_size(mount):
    mount.put_proc('upper', UPPER)
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + '-_.,;=+ '
    seen = set()
    while len(seen) < 2000:
        seen.add(''.join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))))
    for s in seen:
        p = mount.path('ask', 'upper', s)
        want = (s.upper() + '\n').encode()
        assert os.stat(p).st_size == len(want), s
        with open(p, 'rb') as f:
            assert f.read() == want, s


def test_percent_decoding(mount):
    mount.put_proc('upper', UPPER)
    assert mount.ask('upper', 'a%2Fb') == b'A/B\n'
    assert mount.ask('upper', '100%25') == b'100%\n'
    assert mount.ask('upper', '50%') == b'50%\n'
    assert mount.ask('upper', '%zz') == b'%ZZ\n'


def test_rejected_input_is_einval_with_reason_in_log(mount):
    mount.put_proc('picky', REJECT_X)
    assert mount.ask('picky', 'abc') == b'ABC\n'
    assert mount.ask_errno('picky', 'xyz') == errno.EINVAL
    assert 'inputs may not start with x' in mount.proc_log('picky')
    r = mount.seglam('ask', 'picky', 'xylophone')
    assert r.returncode == 1
    assert b'inputs may not start with x' in r.stderr
    # cat reports it to scripts the usual way
    r = subprocess.run(['cat', mount.path('ask', 'picky', 'xx')], capture_output=True)
    assert r.returncode != 0 and b'Invalid argument' in r.stderr


def test_unknown_type_is_enoent_without_llm(mount):
    assert mount.ask_errno('no-such-type', 'x') == errno.ENOENT
    for bad in ('.hidden', 'a b', 'x' * 129, 'semi;colon'):
        assert mount.ask_errno(bad, 'x') == errno.ENOENT, bad
    r = mount.seglam('ask', 'no-such-type', 'x')
    assert r.returncode == 2 and b'unknown type' in r.stderr
    # a bad type name never touches the store
    os.mkdir(mount.path('procs', 'fine'))
    with pytest.raises(OSError) as e:
        os.mkdir(mount.path('procs', 'bad name'))
    assert e.value.errno == errno.EINVAL


def test_compile_error_is_eio_and_logged(mount):
    mount.put_proc('broken', '#include <seglam.h>\nint seglam_run(const char *in, size_t len, seglam_out *out)\n{\n\treturn x;\n}\n')
    assert mount.ask_errno('broken', 'a') == errno.EIO
    log = mount.proc_log('broken')
    assert 'compile failed' in log and 'line 4' in log and "'x' undeclared" in log
    r = mount.seglam('ask', 'broken', 'a')
    assert r.returncode == 3 and b'compile failed' in r.stderr
    assert mount.meta('broken')['compile'] == 'failed'


def test_store_survives_remount(mounts):
    m = mounts(name='a')
    m.put_proc('upper', UPPER)
    assert m.ask('upper', 'one') == b'ONE\n'
    store = m.store
    m.stop()
    m2 = mounts(name='b', store=store)
    assert m2.ask('upper', 'two') == b'TWO\n'
    with open(m2.path('procs', 'upper', 'source.c')) as f:
        assert f.read() == UPPER
    assert os.path.exists(os.path.join(store, 'seglamfs-store'))


def test_admission_on_record_without_tests(mounts):
    """A type with no tests/ is admitted on record after a remount too: its first
    read writes neither meta.json nor a log line (no store write on the read path);
    adding tests/ later changes the record's identity."""
    m = mounts(name='a')
    m.put_proc('upper', UPPER)
    assert m.ask('upper', 'one') == b'ONE\n'
    assert m.meta('upper')['tests_id'] == '0' * 16
    store = m.store
    m.stop()
    tdir = [d for d, _, files in os.walk(os.path.join(store, 'procs'))
            if os.path.basename(d) == 'upper' and 'meta.json' in files][0]
    meta_before = os.stat(os.path.join(tdir, 'meta.json'))
    with open(os.path.join(tdir, 'log')) as f:
        log_before = f.read()
    m2 = mounts(name='b', store=store)
    assert m2.ask('upper', 'two') == b'TWO\n'
    st = m2.stats()
    assert st['admissions'] == 1 and st['admissions_on_record'] == 1
    meta_after = os.stat(os.path.join(tdir, 'meta.json'))
    assert (meta_after.st_ino, meta_after.st_mtime_ns) == (meta_before.st_ino,
                                                           meta_before.st_mtime_ns)
    with open(os.path.join(tdir, 'log')) as f:
        assert f.read() == log_before
    os.mkdir(m2.path('procs', 'upper', 'tests'))
    write(m2.path('procs', 'upper', 'tests', 'c.in'), 'q')
    write(m2.path('procs', 'upper', 'tests', 'c.out'), 'WRONG\n')
    assert m2.ask_errno('upper', 'three') == errno.EIO
    assert m2.stats()['admissions_on_record'] == 1


def test_admission_on_record_is_not_redone_after_remount(mounts):
    """A first read after a remount compiles (with its input: one compile) but does not
    run tests that meta.json records as passed by this very source; a change of the
    tests runs them again."""
    tests = {'a': ('abc', 'ABC\n'), 'b': ('x y', 'X Y\n')}
    m = mounts(name='a')
    m.put_proc('upper', UPPER, tests=tests)
    assert m.ask('upper', 'one') == b'ONE\n'
    assert m.meta('upper')['tests'] == 'passed'
    store = m.store
    m.stop()
    m2 = mounts(name='b', store=store)
    assert m2.ask('upper', 'two') == b'TWO\n'
    st = m2.stats()
    assert st['admissions'] == 1 and st['admissions_on_record'] == 1
    assert st['worker_runs'] == 1  # the read itself: no test case ran
    # The compile is left to that read, whose input goes with the load: the process
    # that compiled the type answers it; the next inputs run in run children.
    assert st['worker_compiles'] == 1
    for word in ('three', 'two', 'Four'):
        assert m2.ask('upper', word) == word.upper().encode() + b'\n'
    assert m2.stats()['worker_compiles'] == 1
    # A new case changes the tests' identity: the next read runs them all again.
    write(m2.path('procs', 'upper', 'tests', 'c.in'), 'q')
    write(m2.path('procs', 'upper', 'tests', 'c.out'), 'WRONG\n')
    assert m2.ask_errno('upper', 'three') == errno.EIO
    st = m2.stats()
    assert st['admissions'] == 2 and st['admissions_on_record'] == 1
    assert 'failed' in m2.meta('upper')['tests']


def test_a_source_on_record_that_no_longer_compiles_is_refused(mounts, request):
    """Bytes admitted on record that do not compile with this seglamfs's headers: the
    first read (which compiles them, with its input) gets EIO, and the type is
    refused as any source that does not compile: the compiler's reason in its log
    and in meta.json, one admission more.  Other types go on."""
    m = mounts(name='a')
    m.put_proc('upper', UPPER, tests={'a': ('abc', 'ABC\n')})
    m.put_proc('length', LENGTH)
    assert m.ask('upper', 'one') == b'ONE\n'
    assert m.ask('length', 'one') == b'3\n'
    assert m.meta('upper')['tests'] == 'passed'
    store = m.store
    m.stop()
    # another seglamfs: its ctype.h (which upper includes and length does not)
    # refuses; in a directory the workers (user nobody) can read
    top = tempfile.mkdtemp(prefix='seglam-include-')
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    os.chmod(top, 0o755)
    include = os.path.join(top, 'include')
    shutil.copytree(os.path.join(ROOT, 'include'), include)
    with open(os.path.join(include, 'ctype.h'), 'a') as f:
        f.write('\n#error this ctype.h is not the one upper was admitted with\n')
    m2 = mounts(name='b', store=store, options=['-o', 'include=' + include])
    assert m2.ask('length', 'three') == b'5\n'
    assert m2.ask_errno('upper', 'two') == errno.EIO
    assert 'not the one upper was admitted with' in m2.proc_log('upper')
    assert m2.meta('upper')['tests'] != 'passed'
    st = m2.stats()
    assert st['admissions_on_record'] == 2 and st['admissions'] == 3
    # refused from then on, without a compile per read; the mount goes on
    assert m2.ask_errno('upper', 'two') == errno.EIO
    assert m2.stats()['admissions'] == 3
    assert m2.ask('length', 'four') == b'4\n'


def test_store_layout_is_hashed_plain_files(mount):
    mount.put_proc('upper', UPPER)
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(mount.store, 'procs')):
        if 'source.c' in filenames:
            found.append(os.path.relpath(dirpath, mount.store))
    assert len(found) == 1
    parts = found[0].split('/')
    assert parts[0] == 'procs' and len(parts[1]) == 2 and len(parts[2]) == 2 and parts[3] == 'upper'


def test_long_and_binary_inputs_through_seglam_ask(mount):
    mount.put_proc('length', LENGTH)
    big = os.urandom(1 << 20)
    r = mount.seglam('ask', 'length', input=big)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b'1048576\n'
    r = mount.seglam('ask', 'length', input=b'a\0b\nc')
    assert r.stdout == b'5\n'
    mount.put_proc('upper', UPPER)
    r = mount.seglam('ask', 'upper', 'x' * 1000)
    assert r.stdout == b'X' * 1000 + b'\n'
    # the mechanism: write the input, read the answer from the same descriptor
    fd = os.open(mount.path('query', 'upper'), os.O_RDWR)
    try:
        os.write(fd, b'line one\nline/two')
        assert os.read(fd, 4096) == b'LINE ONE\nLINE/TWO\n'
    finally:
        os.close(fd)


def test_stats_counts(mount):
    mount.put_proc('upper', UPPER)
    before = mount.stats()
    for i in range(5):
        mount.ask('upper', f'w{i}')
    after = mount.stats()
    assert after['asks'] >= before['asks'] + 5
    assert after['answers'] >= before['answers'] + 5
    r = mount.seglam('stats')
    assert r.returncode == 0 and b'asks ' in r.stdout


def test_bad_tests_make_the_procedure_unused(mount):
    mount.put_proc('upper', UPPER, tests={'a': ('abc', 'ABC\n'), 'b': ('q', 'wrong\n')})
    assert mount.ask_errno('upper', 'x') == errno.EIO
    assert 'test b failed' in mount.proc_log('upper')


def test_meta_json_counts_hits_and_tolerates_garbage(mount):
    mount.put_proc('upper', UPPER)
    assert mount.ask('upper', 'a') == b'A\n'
    meta = mount.meta('upper')
    assert meta['type'] == 'upper' and meta['author'] == 'human' and meta['tests'] == 'passed'
    write(mount.path('procs', 'upper', 'meta.json'), '{not json')
    assert mount.ask('upper', 'b') == b'B\n'


def test_help_and_version():
    from conftest import SEGLAMFS
    r = subprocess.run([SEGLAMFS, '--version'], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith('seglamfs ')
    r = subprocess.run([SEGLAMFS, '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'STORE MOUNTPOINT' in r.stdout and 'revalidate=MS' in r.stdout
    r = subprocess.run([SEGLAMFS, '/nonexistent-store', '/tmp'], capture_output=True, text=True)
    assert r.returncode != 0 and '/nonexistent-store' in r.stderr
    r = subprocess.run([SEGLAMFS, '-o', 'llm=bogus', '/tmp', '/tmp'], capture_output=True, text=True)
    assert r.returncode != 0 and 'unknown provider' in r.stderr


def test_not_a_store_is_refused(tmp_path):
    from conftest import SEGLAMFS
    d = tmp_path / 'notastore'
    d.mkdir()
    (d / 'precious.txt').write_text('keep me')
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    r = subprocess.run([SEGLAMFS, '-f', str(d), str(mnt)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and 'not a seglamfs store' in r.stderr
    assert (d / 'precious.txt').read_text() == 'keep me'


def test_read_only_mount(mounts):
    m = mounts(name='rw')
    m.put_proc('upper', UPPER)
    store = m.store
    m.stop()
    ro = mounts(name='ro', store=store, options=['-o', 'ro'])
    assert ro.ask('upper', 'abc') == b'ABC\n'
    with pytest.raises(OSError) as e:
        write(ro.path('procs', 'upper', 'source.c'), 'x')
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError) as e:
        os.mkdir(ro.path('procs', 'new'))
    assert e.value.errno == errno.EROFS
    assert ro.ask('upper', 'def') == b'DEF\n'


def test_answers_reach_kernel_cache_and_are_dropped_on_edit(mount):
    mount.put_proc('upper', UPPER)
    p = mount.path('ask', 'upper', 'cached')
    for _ in range(3):
        with open(p, 'rb') as f:
            assert f.read() == b'CACHED\n'
    with open(mount.path('procs', 'upper', 'source.c'), 'w') as f:
        f.write(UPPER.replace('return seglam_write(out, "\\n", 1);', 'return seglam_write(out, "!\\n", 2);'))
    with open(p, 'rb') as f:
        assert f.read() == b'CACHED!\n'
    assert os.stat(p).st_size == 8
