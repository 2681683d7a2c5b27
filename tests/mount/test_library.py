"""The bundled library: every procedure passes its tests through the mount (issue 2)."""
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
