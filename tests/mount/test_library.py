"""The bundled library: every procedure passes its tests through the mount (issue 2)."""
import ctypes
import json
import os
import urllib.parse

import pytest

from conftest import LIBRARY

TYPES = sorted(t for t in os.listdir(LIBRARY) if os.path.isdir(os.path.join(LIBRARY, t)))


@pytest.fixture(scope='module')
def lib_mount(tmp_path_factory):
    from conftest import Mount
    m = Mount(str(tmp_path_factory.mktemp('lib')), library=True)
    m.start()
    yield m
    m.stop()


def test_library_has_at_least_25_procedures():
    assert len(TYPES) >= 25


@pytest.mark.parametrize('type_', TYPES)
def test_library_procedure(lib_mount, type_):
    m = lib_mount
    tdir = os.path.join(LIBRARY, type_, 'tests')
    cases = sorted(f[:-3] for f in os.listdir(tdir) if f.endswith('.in'))
    assert cases, f'{type_} has no tests'
    with open(os.path.join(LIBRARY, type_, 'meta.json')) as f:
        assert '"library"' in f.read()
    assert os.path.getsize(os.path.join(LIBRARY, type_, 'spec')) > 0
    assert m.meta(type_)['author'] == 'library'
    for c in cases:
        with open(os.path.join(tdir, c + '.in'), 'rb') as f:
            inp = f.read()
        with open(os.path.join(tdir, c + '.out'), 'rb') as f:
            want = f.read()
        r = m.seglam('ask', type_, input=inp)
        assert r.returncode == 0, (c, r.stderr)
        assert r.stdout == want, c
        # short one-line inputs also work as file names, percent-encoded
        if inp and len(inp) < 200 and b'\n' not in inp and b'\0' not in inp:
            name = urllib.parse.quote(inp, safe=' !"#$&\'()*+,-.:;<=>?@[\\]^_`{|}~')
            if name not in ('.', '..'):
                assert m.ask(type_, name) == want, c


def test_library_does_not_overwrite(tmp_path):
    from conftest import Mount
    m = Mount(str(tmp_path), library=True).start()
    try:
        p = m.path('procs', 'upper', 'source.c')
        with open(p) as f:
            original = f.read()
        with open(p, 'a') as f:
            f.write('\n/* edited */\n')
    finally:
        m.stop()
    m2 = Mount(str(tmp_path), name='again', store=m.store, library=True).start()
    try:
        with open(m2.path('procs', 'upper', 'source.c')) as f:
            assert f.read() == original + '\n/* edited */\n'
    finally:
        m2.stop()


def test_library_brings_an_older_store_up_to_date(tmp_path):
    """-o library on a store made by an older release: a library type nobody edited
    gets the library's current source and the files it lacks (patterns, questions);
    a type a person edited keeps its source and gets nothing."""
    from conftest import Mount
    import glob
    m = Mount(str(tmp_path), library=True).start()
    try:
        # Admitted once each, so meta.json records the library's source hashes.
        assert m.ask('roman-to-int', 'XIV') == b'14\n'
        assert m.ask('upper', 'ab') == b'AB\n'
        with open(m.path('procs', 'upper', 'source.c'), 'a') as f:
            f.write('\n/* edited */\n')
    finally:
        m.stop()

    def tdir(t):
        return glob.glob(os.path.join(m.store, 'procs', '*', '*', t))[0]
    # What an older release left: no patterns or example questions, an older source.
    for t in ('roman-to-int', 'upper'):
        os.unlink(os.path.join(tdir(t), 'patterns'))
    old = os.path.join(tdir('roman-to-int'), 'source.c')
    with open(old) as f:
        current = f.read()
    older = '/* an older release */\n' + current
    with open(old, 'w') as f:
        f.write(older)
    xxh = ctypes.CDLL('libxxhash.so.0')
    xxh.XXH3_64bits.restype = ctypes.c_uint64
    xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    meta_path = os.path.join(tdir('roman-to-int'), 'meta.json')
    with open(meta_path) as f:
        meta = json.load(f)
    assert meta['author'] == 'library'
    meta['source_hash'] = '%016x' % xxh.XXH3_64bits(older.encode(), len(older.encode()))
    with open(meta_path, 'w') as f:
        json.dump(meta, f)
    m2 = Mount(str(tmp_path), name='again', store=m.store, library=True).start()
    try:
        with open(m2.path('q', 'what is MCMXCIV in decimal?'), 'rb') as f:
            assert f.read() == b'1994\n'
        with open(m2.path('procs', 'roman-to-int', 'source.c')) as f:
            assert f.read() == current
        with open(m2.path('procs', 'upper', 'source.c')) as f:
            assert f.read().endswith('/* edited */\n')
        assert not os.path.exists(m2.path('procs', 'upper', 'patterns'))
    finally:
        m2.stop()
