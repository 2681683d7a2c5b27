"""seglam map and MOUNT/map/TYPE (issue 14): many inputs through one descriptor.

Real mount, the real `seglam map` command (scripts/seglam + seglam-map) in sh
pipes, and the framing used directly as README shows it from Python."""
import errno
import fcntl
import os
import select
import struct
import subprocess
import threading

import pytest

from conftest import SEGLAM, UPPER

# Rejects inputs starting with 'x'; answers 'two' with two lines; loops forever on
# 'loop' and crashes on 'crash' (one specific input each).
TRICKY = r'''#include <seglam.h>
#include <string.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	if (len == 4 && !memcmp(in, "loop", 4))
		for (;;)
			;
	if (len == 5 && !memcmp(in, "crash", 5))
		*(volatile int *)0 = 1;
	if (len && in[0] == 'x') {
		seglam_printf(out, "no x please\n");
		return 1;
	}
	if (len == 3 && !memcmp(in, "two", 3))
		return seglam_printf(out, "a\nb\n");
	return seglam_printf(out, "<%s>\n", in);
}
'''


def env_for(m):
    return dict(os.environ, SEGLAM_MOUNT=m.mnt)


def sh(m, script, timeout=600):
    """Run a shell pipeline with $SEGLAM (the seglam command) and $MNT set."""
    env = env_for(m)
    env['SEGLAM'] = SEGLAM
    env['MNT'] = m.mnt
    return subprocess.run(['sh', '-c', script], capture_output=True, env=env, timeout=timeout)


# README's Python client of MOUNT/map/TYPE, verbatim.
def seglam_map(mount, type_, inputs, window=1 << 20):
    """Yield (kind, bytes) for each input (bytes), in order."""
    fd = os.open(f'{mount}/map/{type_}', os.O_RDWR)
    try:
        inputs = iter(inputs)
        while True:
            frames, size = [], 0  # about `window` bytes of inputs, then their answers
            for x in inputs:
                frames.append(struct.pack('<I', len(x)) + x)
                size += 4 + len(x)
                if size >= window:
                    break
            if not frames:
                break
            data = b''.join(frames)
            if os.write(fd, data) != len(data):
                raise OSError('map: short write')
            buf = b''
            for _ in frames:
                while len(buf) < 8 or len(buf) < 8 + struct.unpack_from('<I', buf, 4)[0]:
                    more = os.read(fd, 1 << 20)
                    if not more:
                        raise EOFError('map: answers ended early')
                    buf += more
                kind, n = struct.unpack_from('<II', buf)
                yield kind, buf[8:8 + n]
                buf = buf[8 + n:]
    finally:
        os.close(fd)


def test_map_lines_aligned_with_input(mount):
    mount.put_proc('upper', UPPER)
    r = sh(mount, 'printf "abc\\n\\nhello world\\nlast" | $SEGLAM map upper')
    assert r.returncode == 0, r.stderr
    assert r.stdout == b'ABC\n\nHELLO WORLD\nLAST\n'
    assert r.stderr == b''
    # FILE argument, and the mount's counters saw every input
    with open(os.path.join(os.path.dirname(mount.mnt), 'lines.txt'), 'w') as f:
        f.write(''.join(f'line {i}\n' for i in range(5000)))
    r = mount.seglam('map', 'upper', f.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == [f'LINE {i}' for i in range(5000)]
    assert mount.stats()['answers'] >= 5004


def test_map_rejected_and_multiline_answers_give_empty_lines(mount):
    mount.put_proc('tricky', TRICKY)
    r = sh(mount, 'printf "a\\nxbad\\nb\\ntwo\\nc\\n" | $SEGLAM map tricky')
    assert r.returncode == 1
    assert r.stdout == b'<a>\n\n<b>\n\n<c>\n'
    err = r.stderr.decode()
    assert 'line 2: rejected: no x please' in err
    assert 'line 4:' in err and 'newline' in err
    assert 'line 1:' not in err and 'line 3:' not in err and 'line 5:' not in err
    assert 'rejected' in mount.proc_log('tricky')


def test_map_nul_separated_answers_verbatim(mount):
    mount.put_proc('tricky', TRICKY)
    r = sh(mount, 'printf "a\\nb\\0two\\0xno\\0c" | $SEGLAM map -0 tricky')
    assert r.returncode == 1
    assert r.stdout == b'<a\nb>\n\0a\nb\n\0\0<c>\n\0'
    assert 'input 3: rejected' in r.stderr.decode()


def test_map_unknown_type_and_not_a_mount(mount, tmp_path):
    r = sh(mount, 'echo a | $SEGLAM map no-such-type')
    assert r.returncode == 2
    assert b'no-such-type: unknown type' in r.stderr
    r = subprocess.run([SEGLAM, '-m', str(tmp_path), 'map', 'upper'], input=b'a\n',
                       capture_output=True, timeout=60)
    assert r.returncode == 2 and b'not a seglamfs mount' in r.stderr


def test_map_streams_answers_before_input_ends(mount):
    mount.put_proc('upper', UPPER)
    p = subprocess.Popen([SEGLAM, 'map', 'upper'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_for(mount))
    try:
        for word in (b'first', b'second', b'third'):
            p.stdin.write(word + b'\n')
            p.stdin.flush()
            # stdin stays open: the answer must come anyway (the select only
            # guards against a hang, it measures nothing)
            ready, _, _ = select.select([p.stdout], [], [], 120)
            assert ready, 'no answer while the input is still open'
            assert p.stdout.readline() == word.upper() + b'\n'
        p.stdin.close()
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_map_looping_and_crashing_inputs_fail_their_line_only(mounts):
    m = mounts(options=['-o', 'timeout=1000'])
    m.put_proc('tricky', TRICKY)
    r = sh(m, 'printf "a\\nloop\\nb\\ncrash\\nc\\n" | $SEGLAM map tricky')
    assert r.returncode == 1
    assert r.stdout == b'<a>\n\n<b>\n\n<c>\n'
    err = r.stderr.decode()
    assert 'line 2: failed: timed out after 1000 ms' in err
    assert 'line 4: failed: crashed: SIGSEGV' in err
    log = m.proc_log('tricky')
    assert "input 'loop'" in log and "input 'crash'" in log
    # the mount and a new stream go on as before
    assert m.ask('tricky', 'z') == b'<z>\n'
    r = sh(m, 'printf "d\\ne\\n" | $SEGLAM map tricky')
    assert r.returncode == 0 and r.stdout == b'<d>\n<e>\n'


def test_map_python_framing_as_in_readme(mount):
    mount.put_proc('tricky', TRICKY)
    inputs = [b'a', b'xy', b'', b'bin\0ary\n', b'crash'] + [b'%d' % i for i in range(10000)]
    got = list(seglam_map(mount.mnt, 'tricky', inputs))
    assert len(got) == len(inputs)
    assert got[0] == (0, b'<a>\n')
    assert got[1] == (1, b'no x please\n')
    assert got[2] == (0, b'<>\n')
    assert got[3] == (0, b'<bin>\n')  # %s stops at the NUL: the bytes got there
    assert got[4][0] == 2 and b'SIGSEGV' in got[4][1]
    assert got[5:] == [(0, b'<%d>\n' % i) for i in range(10000)]


def test_map_write_without_reading_gets_eagain_not_memory(mount):
    mount.put_proc('upper', UPPER)
    fd = os.open(mount.path('map', 'upper'), os.O_RDWR)
    try:
        frame = struct.pack('<I', 16) + b'abcdefghijklmnop'
        chunk = frame * (65536 // len(frame))
        sent = 0
        with pytest.raises(OSError) as e:
            while sent < 64 << 20:
                os.write(fd, chunk)
                sent += len(chunk)
        assert e.value.errno == errno.EAGAIN
        assert 0 < sent < 16 << 20
        # everything accepted is answered, in order, when read
        want = sent // len(frame)
        data = b''
        while len(data) < want * 25:
            more = os.read(fd, 1 << 20)
            assert more
            data += more
        assert data == (struct.pack('<II', 0, 17) + b'ABCDEFGHIJKLMNOP\n') * want
        assert os.read(fd, 1 << 20) == b''  # all caught up
        os.write(fd, frame)  # and writable again
        assert os.read(fd, 100) == struct.pack('<II', 0, 17) + b'ABCDEFGHIJKLMNOP\n'
    finally:
        os.close(fd)


def test_map_oversized_frame_refused_mount_keeps_working(mount):
    mount.put_proc('upper', UPPER)
    fd = os.open(mount.path('map', 'upper'), os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            os.write(fd, struct.pack('<I', 0xfffffff0) + b'x' * 100)
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    assert mount.ask('upper', 'ok') == b'OK\n'


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def stream_with_flat_rss(m, lines):
    """`yes | head | seglam map upper | uniq -c` through a pipe: every answer right,
    and the daemon's RSS flat (sampled while it runs)."""
    m.put_proc('upper', UPPER)
    base = rss_kb(m.proc.pid)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_kb(m.proc.pid))

    t = threading.Thread(target=sample)
    t.start()
    try:
        r = sh(m, f'yes abcdefghijklmnop | head -n {lines} | $SEGLAM map upper | uniq -c',
               timeout=3600)
    finally:
        done.set()
        t.join()
    assert r.returncode == 0, r.stderr
    count, word = r.stdout.split()
    assert (int(count), word) == (lines, b'ABCDEFGHIJKLMNOP')
    # The stream is 50 MB to 1 GB; the daemon holds at most a few MiB of it.
    assert peak[0] - base < 64 * 1024, (base, peak[0])


def test_map_50mb_stream_flat_rss(mount):
    stream_with_flat_rss(mount, 50_000_000 // 17)


@pytest.mark.long
def test_map_1gb_stream_flat_rss(mount):
    stream_with_flat_rss(mount, 1_000_000_000 // 17)


def test_map_miss_synthesized_once_then_streamed(mounts, llm):
    m = mounts(env=llm.env())
    r = sh(m, 'i=0; while [ $i -lt 2000 ]; do echo "w$i"; i=$((i+1)); done | $SEGLAM map upper')
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == [f'W{i}' for i in range(2000)]
    assert llm.count() == 1
    r = sh(m, 'printf "again\\n" | $SEGLAM map upper')
    assert r.stdout == b'AGAIN\n'
    assert llm.count() == 1


def test_map_procedure_that_cannot_run_exits_3_with_reason(mount):
    mount.put_proc('broken', UPPER.replace('return seglam_write', 'return undefined_thing + seglam_write'))
    r = sh(mount, 'printf "a\\nb\\n" | $SEGLAM map broken')
    assert r.returncode == 3
    assert r.stdout == b''
    assert b'broken' in r.stderr and b'undefined_thing' in r.stderr
    # a fixed procedure streams again, through a new descriptor
    mount.put_proc('broken', UPPER)
    r = sh(mount, 'printf "a\\nb\\n" | $SEGLAM map broken')
    assert r.returncode == 0 and r.stdout == b'A\nB\n'


def test_map_file_from_shell_redirections(mount):
    """exec 3<> and a truncating > both open map/TYPE; records come back on fd 3."""
    mount.put_proc('upper', UPPER)
    r = sh(mount, 'exec 3<>"$MNT/map/upper" && printf "\\003\\000\\000\\000abc" >&3 && '
                  'head -c 12 <&3 | od -An -c | tr -s " "; : > "$MNT/map/upper" && echo truncated-ok')
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert 'A B C \\n' in out and 'truncated-ok' in out


def test_map_lines_over_1mib_fail_alone(mount):
    """A line over 1 MiB (the limit of one input) fails its line, in order, however
    the pipe cuts it; one of exactly 1 MiB is an input (here its answer is too large)."""
    mount.put_proc('upper', UPPER)
    r = sh(mount, '(echo a; head -c 3000000 /dev/zero | tr "\\0" x; echo; echo b; '
                  'head -c 1048576 /dev/zero | tr "\\0" y; echo; echo c; '
                  'head -c 1048577 /dev/zero | tr "\\0" z) | $SEGLAM map upper')
    assert r.returncode == 1
    assert r.stdout == b'A\n\nB\n\nC\n\n'
    err = r.stderr.decode()
    assert 'line 2: failed: input longer than 1 MiB' in err
    assert 'line 4: failed: answer exceeds' in err
    assert 'line 6: failed: input longer than 1 MiB' in err


def test_map_millions_of_tiny_lines_from_a_file(mount, tmp_path):
    """A large read of tiny inputs is cut into cycles the daemon's queue takes."""
    mount.put_proc('upper', UPPER)
    f = tmp_path / 'empty-lines'
    f.write_bytes(b'\n' * 3_000_000 + b'q\n')
    r = sh(mount, f'$SEGLAM map upper {f} | uniq -c')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b'3000000', b'1', b'Q']


BIG = r'''#include <seglam.h>
#include <string.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static char block[200000];

	memset(block, in[0], sizeof(block));
	seglam_write(out, block, sizeof(block));
	return seglam_write(out, "\n", 1);
}
'''


def test_map_large_answers_come_in_order_with_bounded_batches(mount):
    """200 kB answers: a batch's answers stop near 1 MiB and the rest are sent again,
    so every input still gets its own answer, in order."""
    mount.put_proc('big', BIG)
    letters = 'abcdefghijklmnopqrstuvwxyz' * 4
    r = sh(mount, 'printf "%s" | $SEGLAM map big | cut -c1-3' % ''.join(c + '\\n' for c in letters))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == [c * 3 for c in letters]


def test_map_streams_share_the_query_mem_budget(mounts):
    """-o query_mem bounds all map/ streams together: 4 MiB reserved per open stream
    plus queued input; past it an open or a write fails with ENOSPC, and closing
    gives it back."""
    m = mounts(options=['-o', 'query_mem=9'])
    m.put_proc('upper', UPPER)
    path = m.path('map', 'upper')
    a = os.open(path, os.O_RDWR)
    b = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            os.close(os.open(path, os.O_RDWR))
        assert e.value.errno == errno.ENOSPC
        frame = struct.pack('<I', 16) + b'abcdefghijklmnop'
        chunk = frame * (65536 // len(frame))
        sent = 0
        with pytest.raises(OSError) as e:
            while sent < 8 << 20:
                os.write(a, chunk)
                sent += len(chunk)
        assert e.value.errno == errno.ENOSPC
        assert sent <= 1 << 20
    finally:
        os.close(a)
    os.close(b)
    r = sh(m, 'printf "x\\n" | $SEGLAM map upper')
    assert r.returncode == 0 and r.stdout == b'X\n'


def test_map_of_a_composed_type(mount):
    """seglam_call inside a batch: the run child's calls go through the zygote
    between its answers, and every line is the composed answer, in order."""
    from test_compose import caller
    mount.put_proc('upper', UPPER)
    mount.put_proc('shout', caller('upper'))
    lines = ''.join(f'w{i}\\n' for i in range(300))
    r = sh(mount, f'printf "{lines}" | $SEGLAM map shout')
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == [f'<W{i}>' for i in range(300)]
    # unknown callee: each line's call fails alone, the stream goes on
    mount.put_proc('asks-ghost', caller('no-such-type'))
    r = sh(mount, 'printf "a\\nb\\n" | $SEGLAM map asks-ghost; printf "c\\n" | $SEGLAM map shout')
    assert r.stdout.endswith(b'<C>\n'), r
    assert mount.ask('shout', 'still') == b'<STILL>\n'


# Keeps every input it sees in static memory and answers with all of them.
REMEMBER = r'''#include <seglam.h>
#include <string.h>

static char seen[4096];
static size_t used;

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	if (len < sizeof(seen) - used - 1) {
		memcpy(seen + used, in, len);
		used += len;
		seen[used++] = ';';
	}
	return seglam_printf(out, "%.*s\n", (int)used, seen);
}
'''


def test_map_batches_do_not_see_each_other(mount):
    """A batch is one reader's: its inputs share one run child, and the next
    stream (another reader) starts from the compiled image."""
    mount.put_proc('remember', REMEMBER)
    r = sh(mount, 'printf "a\\nb\\n" | $SEGLAM map remember')
    assert r.returncode == 0, r.stderr
    r = sh(mount, 'printf "secret\\n" | $SEGLAM map remember')
    assert r.returncode == 0, r.stderr
    r = sh(mount, 'printf "c\\nd\\n" | $SEGLAM map remember')
    assert r.returncode == 0, r.stderr
    assert b'secret' not in r.stdout and b'a;' not in r.stdout, r.stdout
    assert r.stdout.splitlines()[0] == b'c;'
    assert mount.ask('remember', 'q') == b'q;\n'


# Writes a forged answer frame ("ok") on fd 1 itself before its real answer (which
# holds the input): two frames per input, more than the batch has inputs.
FORGER = r'''#include <seglam.h>

static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char early[11] = {0, 0, 0, 0, 3, 0, 0, 0, 'o', 'k', '\n'};

	sys3(1, 1, (long)early, sizeof(early));
	seglam_printf(out, "mine: %.*s\n", (int)len, in);
	return 0;
}
'''


def test_map_more_frames_than_inputs_stay_in_their_batch(mount):
    """The zygote passes on as many answers as the batch has inputs and drops the
    rest with the run's child: a forger's extra frames never become another
    stream's answers."""
    mount.put_proc('forger', FORGER)
    r = sh(mount, 'printf "secret-a\\nsecret-b\\nsecret-c\\n" | $SEGLAM map forger')
    assert len(r.stdout.splitlines()) == 3, r
    for i in range(3):
        r = sh(mount, f'printf "other-{i}\\n" | $SEGLAM map forger')
        assert b'secret' not in r.stdout and b'secret' not in r.stderr, r
        assert r.stdout in (b'ok\n', f'mine: other-{i}\n'.encode()), r
    assert mount.ask('forger', 'q') in (b'ok\n', b'mine: q\n')
    mount.put_proc('upper', UPPER)
    assert mount.ask('upper', 'still') == b'STILL\n'


F_GETPIPE_SZ = 1032


def pipe_sizes(pid):
    """The capacity of every pipe @pid holds, in bytes (each end opened anew through
    /proc: the same pipe, read with F_GETPIPE_SZ)."""
    sizes = []
    for fd in os.listdir(f'/proc/{pid}/fd'):
        path = f'/proc/{pid}/fd/{fd}'
        try:
            if not os.readlink(path).startswith('pipe:'):
                continue
            f = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue  # closed meanwhile
        try:
            sizes.append(fcntl.fcntl(f, F_GETPIPE_SZ))
        finally:
            os.close(f)
    return sizes


def test_map_idle_workers_hold_default_pipes(mounts, tmp_path):
    """A batch enlarges its worker's pipes only while it runs, and sets them back
    after.  Pipe space counts against the daemon's user (fs.pipe-user-pages-soft,
    16384 pages): 40 idle workers holding 1 MiB pipes each way would be 20480
    pages, and an unprivileged user past the limit gets 8 KiB pipes for every new
    worker from then on.  (Root is exempt from the limit, so this checks what the
    pipes hold, not the starvation.)"""
    n = 40
    # worker_types=1: each type in a worker of its own, all kept
    m = mounts(options=['-o', 'workers=48', '-o', 'worker_types=1'])
    before = pipe_sizes(m.proc.pid)
    r, w = os.pipe()
    default = fcntl.fcntl(r, F_GETPIPE_SZ)  # a new pipe's (64 KiB)
    os.close(r)
    os.close(w)
    lines = ''.join(f'{i:06d}\n' for i in range(20000))
    f = tmp_path / 'lines'
    f.write_text(lines)
    for i in range(n):
        # sources differ: identical ones share one compiled type, in one worker
        m.put_proc(f'p{i}', UPPER + f'/* p{i} */\n')
        r = sh(m, f'$SEGLAM map p{i} {f}')
        assert r.returncode == 0, r.stderr
        assert r.stdout == lines.encode(), r.stdout[-200:]
    sizes = pipe_sizes(m.proc.pid)
    # the daemon's two ends of each worker's pipes, and its own
    assert len(sizes) >= len(before) + 2 * n, (before, sizes)
    big = [s for s in sizes if s > default]
    assert not big, (f'{len(big)} of {len(sizes)} pipes enlarged after the batches: '
                     f'{sum(sizes) >> 12} pages held')
    assert min(sizes) == default, sizes
