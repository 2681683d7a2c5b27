"""Resource bounds (issue 6, item 5): many distinct types and long inputs keep the
daemon's memory and worker count within the documented caps.

- SEGLAM_BOUNDS_TYPES (default 10000) types, each with its own source, written
  straight into the store layout (procs/HH/HH/TYPE, HH from XXH3_64 of the name)
  before mounting, then each asked once: live seglam-worker children never exceed
  -o workers (default 64) and the daemon's RSS stays under RSS_CAP_MIB (plain
  build) or RSS_CAP_ASAN_MIB (sanitizer build: shadow memory and quarantine).
- 1 MiB inputs through `scripts/seglam ask` (query/TYPE): right answers, RSS growth
  bounded, and an answer over max_answer (1 MiB) fails cleanly with EIO.
"""
import ctypes
import os
import subprocess
import threading
import time
import zlib

import pytest

from conftest import BUILD, worker_count_frozen, worker_pids

RSS_CAP_MIB = 160        # plain build: memo (64 MiB) + records + slack
RSS_CAP_ASAN_MIB = 1024  # ASan+UBSan: shadow memory and 256 MiB quarantine on top
NTYPES = int(os.environ.get('SEGLAM_BOUNDS_TYPES', '10000'))

_xxh = ctypes.CDLL('libxxhash.so.0')
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def type_dir(store, name):
    h = _xxh.XXH3_64bits(name.encode(), len(name))
    return os.path.join(store, 'procs', '%02x' % (h >> 56), '%02x' % ((h >> 48) & 0xff), name)


def sanitized():
    with open(os.path.join(BUILD, 'seglamfs'), 'rb') as f:
        return b'__asan_init' in f.read()


def rss_mib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0


def source(k):
    return ('#include <seglam.h>\nint seglam_run(const char *in, size_t len, seglam_out *out)\n'
            '{\n\t(void)in;\n\treturn seglam_printf(out, "%d %%zu\\n", len);\n}\n') % k


@pytest.mark.long
def test_10000_types_touched_once(mounts, tmp_path):
    store = tmp_path / 'store'
    store.mkdir()
    (store / 'seglamfs-store').write_text('seglamfs-store 1\n')
    t0 = time.time()
    for k in range(NTYPES):
        d = type_dir(str(store), 'b-%d' % k)
        os.makedirs(d)
        with open(os.path.join(d, 'source.c'), 'w') as f:
            f.write(source(k))
    create_s = time.time() - t0
    m = mounts(store=str(store))
    pid = m.proc.pid
    cap = RSS_CAP_ASAN_MIB if sanitized() else RSS_CAP_MIB
    peak = {'rss': 0.0, 'workers': 0}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.5):
            peak['rss'] = max(peak['rss'], rss_mib(pid))
            peak['workers'] = max(peak['workers'], worker_count_frozen(pid))
    s = threading.Thread(target=sample)
    s.start()
    bad = []
    nthreads = 4

    def touch(i):
        for k in range(i, NTYPES, nthreads):
            try:
                got = m.ask('b-%d' % k, 'abc')
                if got != b'%d 3\n' % k:
                    bad.append((k, got))
            except OSError as e:
                bad.append((k, e.errno))
    t1 = time.time()
    ts = [threading.Thread(target=touch, args=(i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    touch_s = time.time() - t1
    stop.set()
    s.join()
    final = rss_mib(pid)
    print(f'bounds: {NTYPES} types, created on disk in {create_s:.1f} s, touched in '
          f'{touch_s:.1f} s ({NTYPES / touch_s:.0f}/s), peak RSS {peak["rss"]:.1f} MiB, final '
          f'{final:.1f} MiB (cap {cap}), peak workers {peak["workers"]}, stats '
          f'{ {k: v for k, v in m.stats().items() if k.startswith(("worker", "memo", "inodes"))} }')
    assert not bad, bad[:10]
    assert peak['workers'] <= 64, peak
    assert len(worker_pids(parent=pid)) <= 64
    assert max(peak['rss'], final) <= cap, peak


def test_1mib_inputs_through_seglam_ask(mounts):
    m = mounts(library=True)
    pid = m.proc.pid
    m.ask('crc32', 'warm')
    base = rss_mib(pid)
    for i in range(20):
        data = os.urandom(1 << 20)
        r = m.seglam('ask', 'crc32', input=data)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b'%08x\n' % zlib.crc32(data)
    r = m.seglam('ask', 'line-count', input=b'a\n' * (1 << 19))
    assert r.returncode == 0 and r.stdout == b'%d\n' % (1 << 19), r
    # an answer over max_answer (1 MiB): a clean failure, the mount keeps working
    r = m.seglam('ask', 'upper', input=b'a' * (1 << 20) + b'b')
    assert r.returncode == 3, r
    assert b'answer exceeds' in r.stderr, r.stderr
    assert m.ask('upper', 'ok') == b'OK\n'
    grew = rss_mib(pid) - base
    print(f'bounds: 1 MiB inputs: RSS {base:.1f} -> {rss_mib(pid):.1f} MiB')
    assert grew < (256 if sanitized() else 64), grew
    assert len(worker_pids(parent=pid)) <= 64
