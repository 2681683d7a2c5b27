"""Composition: procedures call procedures with seglam_call (docs/DESIGN.md, "Composition").

Real mounts: composed answers, edits of a callee reaching its callers, cycles, depth,
unknown and failing callees, the worker cap, and synthesis of a type that calls
an existing one.
"""
import errno
import os
import subprocess
import time

import pytest

from conftest import UPPER, write

# CALLER(callee): asks CALLEE for the input and answers "<" + its answer without
# the newline + ">"; a NULL from seglam_call is a rejection naming the callee.
CALLER = r'''#include <seglam.h>
#include <string.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t n;
	const char *a = seglam_call("%s", in, len, &n);

	if (!a) {
		seglam_printf(out, "call to %s failed\n");
		return 1;
	}
	if (n && a[n - 1] == '\n')
		n--;
	seglam_printf(out, "<");
	seglam_write(out, a, n);
	return seglam_printf(out, ">\n");
}
'''

EXCLAIM = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	seglam_write(out, in, len);
	return seglam_printf(out, "!\n");
}
'''


def caller(callee):
    return CALLER.replace('%s', callee)


def test_composed_answers(mount):
    mount.put_proc('upper', UPPER)
    mount.put_proc('shout', caller('upper'))
    assert mount.ask('shout', 'hello') == b'<HELLO>\n'
    # a call is an ask: the callee's answer is memoized and served like one
    assert mount.ask('upper', 'hello') == b'HELLO\n'
    st = mount.stats()
    assert st['calls'] >= 1
    assert st['call_failures'] == 0
    assert mount.meta('shout')['calls'] == ['upper']
    with open(mount.path('procs', 'upper', 'callers')) as f:
        assert f.read() == 'shout\n'


def test_edit_of_callee_reaches_callers(mount):
    """Editing, replacing (sed -i, cp) and deleting a callee changes what its
    callers answer on the very next read, transitively, memo and kernel cache
    notwithstanding."""
    mount.put_proc('upper', UPPER)
    mount.put_proc('shout', caller('upper'))
    mount.put_proc('shout2', caller('shout'))
    assert mount.ask('shout2', 'abc') == b'<<ABC>>\n'
    assert mount.ask('shout2', 'abc') == b'<<ABC>>\n'  # memo / kernel cache hit
    src = mount.path('procs', 'upper', 'source.c')
    subprocess.run(['sed', '-i', 's/toupper/tolower/', src], check=True)
    assert mount.ask('shout', 'AbC') == b'<abc>\n'
    assert mount.ask('shout2', 'abc') == b'<<abc>>\n'
    assert mount.ask('shout2', 'AbC') == b'<<abc>>\n'
    # replaced by cp
    other = os.path.join(os.path.dirname(mount.mnt), 'exclaim.c')
    write(other, EXCLAIM)
    subprocess.run(['cp', other, src], check=True)
    assert mount.ask('shout2', 'abc') == b'<<abc!>>\n'
    # deleted: offline the call fails, and the caller says so
    subprocess.run(['rm', '-r', mount.path('procs', 'upper')], check=True)
    assert mount.ask_errno('shout2', 'abc') == errno.EINVAL
    assert mount.ask_errno('shout', 'abc') == errno.EINVAL
    assert 'call to upper failed' in mount.proc_log('shout')
    # and back
    mount.put_proc('upper', UPPER)
    assert mount.ask('shout2', 'abc') == b'<<ABC>>\n'


def test_callee_edited_in_store_reaches_callers(mounts):
    """An edit made in STORE directly (another daemon, NFS) reaches the caller
    within the revalidation delay, like any edit."""
    m = mounts()
    m.put_proc('upper', UPPER)
    m.put_proc('shout', caller('upper'))
    assert m.ask('shout', 'abc') == b'<ABC>\n'
    found = []
    for root, dirs, files in os.walk(os.path.join(m.store, 'procs')):
        if os.path.basename(root) == 'upper' and 'source.c' in files:
            found.append(os.path.join(root, 'source.c'))
    assert len(found) == 1
    tmp = found[0] + '.new'
    write(tmp, EXCLAIM)
    os.rename(tmp, found[0])
    # revalidate is 1 s: poll well past it (a loaded machine), no timing asserted
    for _ in range(200):
        got = m.ask('shout', 'abc')
        if got != b'<ABC>\n':
            break
        time.sleep(0.05)
    assert got == b'<abc!>\n'


def test_cycle_fails_the_call(mount):
    mount.put_proc('ping', caller('pong'))
    mount.put_proc('pong', caller('ping'))
    mount.put_proc('self', caller('self'))
    assert mount.ask_errno('ping', 'x') == errno.EINVAL
    assert 'a cycle: ping -> pong -> ping' in mount.proc_log('pong')
    assert mount.ask_errno('self', 'x') == errno.EINVAL
    assert 'a cycle: self -> self' in mount.proc_log('self')
    assert mount.stats()['call_failures'] >= 2
    # the mount keeps working
    mount.put_proc('upper', UPPER)
    assert mount.ask('upper', 'ok') == b'OK\n'


def test_depth_over_8_fails(mount):
    """chain-0 answers; chain-N calls chain-(N-1).  Reading chain-8 runs 9
    procedures (8 calls deep): allowed.  chain-9 would call at depth 9."""
    mount.put_proc('chain-0', EXCLAIM)
    for i in range(1, 10):
        mount.put_proc(f'chain-{i}', caller(f'chain-{i - 1}'))
    assert mount.ask('chain-8', 'x') == b'<' * 8 + b'x!' + b'>' * 8 + b'\n'
    # (a new input: chain-8's answer for x is memoized, and a hit calls nothing)
    assert mount.ask_errno('chain-9', 'y') == errno.EINVAL
    assert 'calls nest deeper than 8' in mount.proc_log('chain-1')


def test_unknown_callee_offline(mount):
    mount.put_proc('asks-ghost', caller('no-such-type'))
    mount.put_proc('asks-bad', caller('bad/name'))
    assert mount.ask_errno('asks-ghost', 'x') == errno.EINVAL
    assert 'no-such-type: no such type' in mount.proc_log('asks-ghost')
    assert mount.ask_errno('asks-bad', 'x') == errno.EINVAL
    assert 'not a type name' in mount.proc_log('asks-bad')
    assert not os.path.exists(mount.path('procs', 'no-such-type'))


PICKY = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	if (len && in[0] == 'x') {
		seglam_printf(out, "no x please\n");
		return 1;
	}
	seglam_write(out, in, len);
	return seglam_printf(out, "\n");
}
'''

# Calls "picky" and says whether it accepted, so a rejection is visible.
TRY_PICKY = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t n;
	const char *a = seglam_call("picky", in, len, &n);

	if (!a)
		return seglam_printf(out, "picky said no (n=%zu)\n", n);
	return seglam_printf(out, "picky said %s", a);
}
'''


def test_callee_rejecting_its_input(mount):
    mount.put_proc('picky', PICKY)
    mount.put_proc('try-picky', TRY_PICKY)
    assert mount.ask('try-picky', 'abc') == b'picky said abc\n'
    assert mount.ask('try-picky', 'xyz') == b'picky said no (n=0)\n'
    assert mount.ask_errno('picky', 'xyz') == errno.EINVAL
    assert 'picky rejected the input: no x please' in mount.proc_log('try-picky')


LOOP = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	volatile unsigned long i = 0;

	if (len && in[0] == 'l')
		for (;;)
			i++;
	seglam_write(out, in, len);
	return seglam_printf(out, "\n");
}
'''


def test_callee_timing_out(mounts):
    """The time limit covers the whole chain: a callee that loops uses up the
    top-level read's time, and that read fails with EIO, not the mount."""
    m = mounts(options=['-o', 'timeout=500'])
    m.put_proc('loopy', LOOP)
    m.put_proc('calls-loopy', caller('loopy'))
    assert m.ask('calls-loopy', 'ok') == b'<ok>\n'
    assert m.ask_errno('calls-loopy', 'loop') == errno.EIO
    assert 'timed out' in m.proc_log('calls-loopy')
    assert m.stats()['worker_timeouts'] >= 1
    assert m.ask('calls-loopy', 'fine') == b'<fine>\n'


# Calls "upper" on each half of its input: two calls per run.
HALVES = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t h = len / 2, n1, n2;
	const char *a = seglam_call("upper", in, h, &n1);
	const char *b;

	if (!a)
		return 1;
	b = seglam_call("upper", in + h, len - h, &n2);
	if (!b)
		return 1;
	seglam_write(out, a, n1 - 1);
	seglam_write(out, "|", 1);
	return seglam_write(out, b, n2);
}
'''


def test_worker_cap_2_no_deadlock(mounts):
    """With -o workers=2, chains 5 deep, read by several readers at once, all
    answer: a caller waiting on its callee does not hold a slot of the cap."""
    m = mounts(options=['-o', 'workers=2'])
    m.put_proc('upper', UPPER)
    m.put_proc('halves', HALVES)
    m.put_proc('c1', caller('halves'))
    m.put_proc('c2', caller('c1'))
    m.put_proc('c3', caller('c2'))
    m.put_proc('c4', caller('c3'))
    script = ('for i in 1 2 3 4 5 6; do cat "$1/ask/c4/in$i" > "$2/$i" & done; '
              'cat "$1/ask/c2/zz" > "$2/zz" & cat "$1/ask/halves/ab" > "$2/ab" & wait')
    outdir = os.path.join(os.path.dirname(m.mnt), 'out')
    os.mkdir(outdir)
    subprocess.run(['sh', '-c', script, 'sh', m.mnt, outdir], check=True, timeout=120)
    for i in range(1, 7):
        with open(os.path.join(outdir, str(i)), 'rb') as f:
            assert f.read() == f'<<<<I|N{i}>>>>\n'.encode()
    with open(os.path.join(outdir, 'zz'), 'rb') as f:
        assert f.read() == b'<<Z|Z>>\n'
    with open(os.path.join(outdir, 'ab'), 'rb') as f:
        assert f.read() == b'A|B\n'
    st = m.stats()
    assert st['call_failures'] == 0
    assert st['workers_parked_max'] >= 1


def test_synthesis_of_a_type_calling_an_existing_one(mounts, llm):
    """The prompt offers the nearest existing types (name, spec, one example);
    the test LLM's compose responder writes code calling upper only if offered."""
    m = mounts(env=llm.env())
    m.put_proc('upper', UPPER, tests={'a': ('abc', 'ABC\n')},
               spec='Input: any text. Answer: the text in upper case.\n')
    m.put_proc('reverse-words', EXCLAIM, spec='Answer: the words in reverse order.\n')
    os.mkdir(m.path('procs', 'shout-upper'))
    write(m.path('procs', 'shout-upper', 'spec'),
          'Answer: the input in upper case, between angle brackets.\n')
    llm.script([{'kind': 'compose', 'callee': 'upper', 'code': caller('upper'),
                 'tests': [['hi', '<HI>']]}])
    assert m.ask('shout-upper', 'hello') == b'<HELLO>\n'
    calls = llm.calls()['calls']
    assert len(calls) == 1
    prompt = calls[0]['prompt']
    assert '### upper\nInput: any text. Answer: the text in upper case.' in prompt
    assert 'returns "ABC\\n"' in prompt
    assert '### shout-upper' not in prompt  # never itself
    assert '### reverse-words' not in prompt  # no word in common
    meta = m.meta('shout-upper')
    assert meta['author'] == 'llm'
    assert meta['calls'] == ['upper']
    with open(m.path('procs', 'upper', 'callers')) as f:
        assert f.read() == 'shout-upper\n'
    # it inherits upper's fixes
    subprocess.run(['sed', '-i', 's/toupper/tolower/', m.path('procs', 'upper', 'source.c')],
                   check=True)
    write(m.path('procs', 'upper', 'tests', 'a.out'), 'abc\n')
    assert m.ask('shout-upper', 'HeLLo') == b'<hello>\n'


def test_nearest_types_follow_new_types(mounts, llm):
    """The types a prompt offers come from a walk of the store kept for a second
    (a walk per synthesis made each cost more the bigger the store): a type made
    through this mount after that walk is offered at once, one another daemon
    made in the shared store once that second is over."""
    m = mounts(env=llm.env())

    def composed(type_, spec, callee, test, ask):
        """Synthesize TYPE (SPEC); the test LLM calls CALLEE only if offered."""
        os.mkdir(m.path('procs', type_))
        write(m.path('procs', type_, 'spec'), spec)
        llm.script([{'kind': 'compose', 'callee': callee, 'code': caller(callee),
                     'tests': [test]}])
        assert m.ask(type_, ask[0]) == ask[1]
        assert '### %s\n' % callee in llm.calls()['calls'][-1]['prompt']

    llm.script([{'kind': 'code', 'code': UPPER}])
    assert m.ask('first-upper', 'ab') == b'AB\n'  # its synthesis walked the store
    m.put_proc('upper', UPPER, tests={'a': ('abc', 'ABC\n')},
               spec='Input: any text. Answer: the text in upper case.\n')
    composed('shout-upper', 'Answer: the input in upper case.\n', 'upper', ['hi', '<HI>'],
             ('hello', b'<HELLO>\n'))
    # another daemon on the same store makes a type: not through this mount
    other = mounts(name='other', store=m.store)
    other.put_proc('exclaim', EXCLAIM, tests={'a': ('hi', 'hi!\n')},
                   spec='Answer: the input and an exclamation mark.\n')
    time.sleep(1.2)  # past the second the names are kept (no timing asserted)
    composed('loud-exclaim', 'Answer: the input exclaimed.\n', 'exclaim', ['hi', '<hi!>'],
             ('hey', b'<hey!>\n'))


def test_library_composed_types(mounts):
    """The bundled composed types answer through the mount, record their calls,
    and show in their callees' callers."""
    m = mounts(library=True)
    assert m.ask('days-until-weekday', '2024-03-01 Monday') == b'3\n'
    assert m.ask('weeks-between', '2024-01-01 2024-03-01') == b'8 weeks 4 days\n'
    assert m.ask('roman-add', 'XII + IX') == b'XXI\n'
    assert m.ask_errno('roman-add', 'MMM + M') == errno.EINVAL
    assert m.meta('roman-add')['calls'] == ['int-to-roman', 'roman-to-int']
    assert m.meta('weeks-between')['calls'] == ['days-between']
    with open(m.path('procs', 'weekday', 'callers')) as f:
        assert f.read() == 'days-until-weekday\n'


# Calls five types nobody wrote; counts the NULLs.
CALLS_FIVE = r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static const char *const names[] = {"made-up-1", "made-up-2", "made-up-3",
					    "made-up-4", "made-up-5"};
	int nulls = 0;
	size_t n;

	for (int i = 0; i < 5; i++)
		nulls += seglam_call(names[i], in, len, &n) == NULL;
	return seglam_printf(out, "%d NULL\n", nulls);
}
'''


def test_calls_of_one_read_start_few_syntheses(mounts, llm):
    """A procedure calling made-up names in a loop does not become a stream of
    LLM requests: the calls of one read may start at most 2 syntheses."""
    m = mounts(env=llm.env(), options=['-o', 'repair_rounds=0'])
    m.put_proc('calls-five', CALLS_FIVE)
    llm.script([], default={'kind': 'text', 'text': 'no idea'})
    assert m.ask('calls-five', 'x') == b'5 NULL\n'
    assert llm.count() == 2
    assert 'may start at most 2 syntheses' in m.proc_log('calls-five')


def test_callers_follow_the_callers_source(mount):
    """callers lists who calls TYPE now: a caller edited to call something else, or
    removed, leaves it."""
    mount.put_proc('upper', UPPER)
    mount.put_proc('exclaim', EXCLAIM)
    mount.put_proc('shout', caller('upper'))
    mount.put_proc('other', caller('upper'))
    assert mount.ask('shout', 'a') == b'<A>\n'
    assert mount.ask('other', 'a') == b'<A>\n'
    callers = mount.path('procs', 'upper', 'callers')
    with open(callers) as f:
        assert f.read() == 'other\nshout\n'
    subprocess.run(['sed', '-i', 's/"upper"/"exclaim"/', mount.path('procs', 'shout', 'source.c')],
                   check=True)
    assert mount.ask('shout', 'a') == b'<a!>\n'
    assert mount.meta('shout')['calls'] == ['exclaim']
    with open(callers) as f:
        assert f.read() == 'other\n'
    with open(mount.path('procs', 'exclaim', 'callers')) as f:
        assert f.read() == 'shout\n'
    subprocess.run(['rm', '-r', mount.path('procs', 'other')], check=True)
    mount.put_proc('third', caller('upper'))
    assert mount.ask('third', 'b') == b'<B>\n'
    with open(callers) as f:
        assert f.read() == 'third\n'


def test_identical_callers_do_not_share_stale_answers(mount):
    """Types with the same source share memoized answers, but not callers: a twin
    read for the first time after its callee changed runs against the new callee."""
    mount.put_proc('upper', UPPER)
    mount.put_proc('twin-a', caller('upper'))
    mount.put_proc('twin-b', caller('upper'))
    assert mount.ask('twin-a', 'q') == b'<Q>\n'
    subprocess.run(['sed', '-i', 's/toupper/tolower/', mount.path('procs', 'upper', 'source.c')],
                   check=True)
    assert mount.ask('twin-b', 'q') == b'<q>\n'  # same input: not twin-a's old answer
    assert mount.ask('twin-a', 'q') == b'<q>\n'
