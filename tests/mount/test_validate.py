"""Verified crystallization (issue 17): every synthesis is checked against answers
the LLM gives without seeing code, optionally against independent versions."""
import errno
import glob
import os
import threading

import pytest

from conftest import UPPER, write

KEY = 'sk-test-validate-0123456789'
PROVIDERS = ['openai', 'anthropic']

ADD_ONE = r'''#include <seglam.h>
#include <stdlib.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char *end;
	long long v;

	if (len == 0) {
		seglam_printf(out, "empty input");
		return 1;
	}
	v = strtoll(in, &end, 10);
	if (end != in + len) {
		seglam_printf(out, "not an integer");
		return 1;
	}
	seglam_printf(out, "%lld\n", v + STEP);
	return 0;
}
'''
RIGHT = ADD_ONE.replace('STEP', '1')
OFF_BY_ONE = ADD_ONE.replace('STEP', '2')
# Right on short numbers, wrong from three digits on: the direct answers (short
# inputs) do not see it; an independent version does on derived inputs.
WRONG_LONG = ADD_ONE.replace('STEP', '(len >= 3 ? 2 : 1)')


def mount_llm(mounts, llm, provider, options=(), **kw):
    return mounts(env=llm.env(provider, KEY), options=list(options), **kw)


def llm_cases(m, type_):
    """{input: answer} of tests/llm-*."""
    out = {}
    for f in glob.glob(m.path('procs', type_, 'tests', 'llm-*.in')):
        with open(f, 'rb') as a, open(f[:-3] + '.out', 'rb') as b:
            out[a.read()] = b.read()
    return out


@pytest.mark.parametrize('provider', PROVIDERS)
def test_miss_input_shown_and_direct_answers_kept(mounts, llm, provider):
    m = mount_llm(mounts, llm, provider)
    assert m.ask('add-one', '41') == b'42\n'
    calls = llm.calls()
    assert calls['count'] == 1 and calls['answers_count'] == 1
    # The synthesis prompt shows the input that caused the miss.
    assert '"41"' in calls['calls'][0]['prompt']
    ans = calls['answers_calls'][0]['prompt']
    assert '"41"' in ans and 'pick 5 more inputs' in ans
    assert 'seglam_run' not in ans and '```c' not in ans  # never shows code
    kept = llm_cases(m, 'add-one')
    assert kept[b'41'] == b'42\n' and kept[b'-7'] == b'-6\n' and len(kept) >= 3
    v = m.meta('add-one')['validation']
    assert v['sources']['llm-direct'] >= 6 and v['llm_calls'] == {'synthesis': 1, 'answers': 1}
    assert v['disagreements'] == []
    r = m.seglam('log', 'add-one')
    assert r.returncode == 0
    assert b'cases checked' in r.stdout and b'1 synthesis, 1 direct-answer' in r.stdout


@pytest.mark.parametrize('provider', PROVIDERS)
def test_wrong_procedure_is_caught_and_repaired(mounts, llm, provider):
    llm.script([{'kind': 'code', 'code': OFF_BY_ONE}, {'kind': 'code', 'code': RIGHT}])
    m = mount_llm(mounts, llm, provider)
    assert m.ask('add-one', '41') == b'42\n'
    calls = llm.calls()
    assert calls['count'] == 2 and calls['answers_count'] == 1
    repair = calls['calls'][1]['prompt']
    assert "input '41': the procedure said '43\\n', the direct answer was '42\\n'" in repair
    assert '```c' not in calls['answers_calls'][0]['prompt']
    assert 'withdraw' in repair
    v = m.meta('add-one')['validation']
    assert v['disagreements'] and all(e['kind'] == 'direct' and e['resolution'].startswith('repaired')
                                      for e in v['disagreements'])
    assert m.ask('add-one', '99') == b'100\n'
    assert 'the direct answer was' in m.proc_log('add-one')


@pytest.mark.parametrize('provider', PROVIDERS)
def test_withdrawn_expectation_is_logged_not_kept(mounts, llm, provider):
    reason = 'upper-casing x gives X; that direct answer was a slip'
    llm._post('/_script', {'responses': [{'kind': 'code', 'code': UPPER},
                                         {'kind': 'code', 'code': UPPER,
                                          'withdraw': [['x', reason]]}],
                           'answers': [{'kind': 'answers',
                                        'answers': [['abc', 'ABC'], ['x', 'WRONG']]}]})
    m = mount_llm(mounts, llm, provider)
    assert m.ask('shout', 'abc') == b'ABC\n'
    assert llm.count() == 2
    log = m.proc_log('shout')
    assert 'expectation withdrawn' in log and reason in log
    kept = llm_cases(m, 'shout')
    assert kept == {b'abc': b'ABC\n'}  # the withdrawn one is not kept
    v = m.meta('shout')['validation']
    assert v['withdrawn'] == 1
    assert any(e['resolution'].startswith('withdrawn') for e in v['disagreements'])
    assert b'withdrawn' in m.seglam('log', 'shout').stdout


@pytest.mark.parametrize('provider', PROVIDERS)
def test_human_test_overrules_llm_one(mounts, llm, provider):
    # A direct answer that contradicts a person's case is not used.
    llm._post('/_script', {'responses': [{'kind': 'code', 'code': UPPER}],
                           'answers': [{'kind': 'answers',
                                        'answers': [['x', 'WRONG'], ['abc', 'ABC']]}]})
    m = mount_llm(mounts, llm, provider)
    d = m.path('procs', 'caps')
    os.makedirs(os.path.join(d, 'tests'))
    write(os.path.join(d, 'tests', 'mine.in'), 'x')
    write(os.path.join(d, 'tests', 'mine.out'), 'X\n')
    assert m.ask('caps', 'abc') == b'ABC\n'
    assert llm.count() == 1
    assert 'tests/mine, which wins' in m.proc_log('caps')
    assert llm_cases(m, 'caps') == {b'abc': b'ABC\n'}

    # A person's later case for the same input as an llm- case wins over it: a
    # source that answers differently for 'abc' is admitted with no LLM call.
    special = UPPER.replace('int seglam_run(const char *in, size_t len, seglam_out *out)\n{',
                            'int seglam_run(const char *in, size_t len, seglam_out *out)\n{\n'
                            '\tif (len == 3 && in[0] == \'a\' && in[1] == \'b\' && in[2] == \'c\')\n'
                            '\t\treturn seglam_printf(out, "ABC!\\n"), 0;')
    write(os.path.join(d, 'tests', 'abc.in'), 'abc')
    write(os.path.join(d, 'tests', 'abc.out'), 'ABC!\n')
    write(os.path.join(d, 'source.c'), special)
    before = llm.count()
    assert m.ask('caps', 'abc') == b'ABC!\n'
    assert m.ask('caps', 'def') == b'DEF\n'
    assert llm.count() == before


def test_deleting_an_llm_case_overrules_it(mounts, llm):
    m = mount_llm(mounts, llm, 'openai')
    assert m.ask('upper', 'abc') == b'ABC\n'
    kept = llm_cases(m, 'upper')
    assert kept.get(b'a') == b'A\n'
    # A second daemon on the same store, without an LLM: a person's edit that
    # contradicts an llm- case fails until that case is deleted.
    h = mounts(name='h', store=m.store)
    d = h.path('procs', 'upper')
    lower_a = UPPER.replace('int seglam_run(const char *in, size_t len, seglam_out *out)\n{',
                            'int seglam_run(const char *in, size_t len, seglam_out *out)\n{\n'
                            '\tif (len == 1 && in[0] == \'a\')\n'
                            '\t\treturn seglam_printf(out, "a\\n"), 0;')
    write(os.path.join(d, 'source.c'), lower_a)
    assert h.ask_errno('upper', 'zz') == errno.EIO
    assert 'test llm-' in h.proc_log('upper')
    for f in glob.glob(os.path.join(d, 'tests', 'llm-*.in')):
        with open(f, 'rb') as fh:
            if fh.read() == b'a':
                os.unlink(f)
                os.unlink(f[:-3] + '.out')
    assert h.ask('upper', 'zz') == b'ZZ\n'
    assert h.ask('upper', 'a') == b'a\n'


@pytest.mark.parametrize('provider', PROVIDERS)
def test_versions_catch_what_direct_answers_miss(mounts, llm, provider):
    # With direct answers alone, the wrong procedure gets in.
    llm.script([{'kind': 'code', 'code': WRONG_LONG}])
    one = mount_llm(mounts, llm, provider, name='one')
    assert one.ask('add-one', '41') == b'42\n'
    assert one.ask('add-one', '100') == b'102\n'  # wrong, and admitted

    # With two independent versions, they disagree on a derived input; a direct
    # answer for it settles the matter and the wrong version is repaired.
    llm.server.state.reset()
    llm.script([{'kind': 'code', 'code': WRONG_LONG}, {'kind': 'code', 'code': RIGHT},
                {'kind': 'code', 'code': RIGHT}])
    two = mount_llm(mounts, llm, provider, name='two', options=['-o', 'versions=2'])
    assert two.ask('add-one', '41') == b'42\n'
    assert two.ask('add-one', '100') == b'101\n'
    calls = llm.calls()
    assert calls['count'] == 3 and calls['answers_count'] == 2
    # The second version was written without seeing the first one's code.
    assert 'len >= 3' not in calls['calls'][1]['prompt']
    v = two.meta('add-one')['validation']
    assert v['versions'] == 2 and v['compared_inputs'] > 10
    ev = [e for e in v['disagreements'] if e['kind'] == 'versions']
    assert ev and ev[0]['resolution'].startswith('repaired')
    assert 'versions disagree on input' in two.proc_log('add-one')
    assert b'versions compared: 2' in two.seglam('log', 'add-one').stdout


@pytest.mark.parametrize('provider', PROVIDERS)
def test_budget_counts_validation_calls(mounts, llm, provider):
    m = mount_llm(mounts, llm, provider, options=['-o', 'llm_calls_per_hour=1'])
    assert m.ask_errno('add-one', '1') == errno.EIO
    calls = llm.calls()
    assert calls['count'] == 1 and calls['answers_count'] == 0
    assert 'budget spent' in m.proc_log('add-one')
    assert not os.path.exists(m.path('procs', 'add-one', 'source.c'))
    assert m.stats()['llm_calls'] == 1

    llm.server.state.reset()
    m2 = mount_llm(mounts, llm, provider, name='m2', options=['-o', 'llm_calls_per_hour=2'])
    assert m2.ask('add-one', '1') == b'2\n'
    assert m2.stats()['llm_calls'] == 2


def test_inputs_of_all_waiting_readers_are_shown(mounts, llm):
    # The synthesis takes 3 s: the other readers start waiting long before the
    # direct-answer request goes out.
    llm.script([{'kind': 'slow', 'delay': 3, 'then': {'kind': 'auto'}}])
    m = mount_llm(mounts, llm, 'openai')
    results = {}

    def reader(i):
        # seglam ask (query/): the readers wait in the daemon, not on a lookup
        r = m.seglam('ask', 'double', str(10 + i))
        results[i] = r.stdout

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: f'{2 * (10 + i)}\n'.encode() for i in range(4)}
    calls = llm.calls()
    assert calls['count'] == 1
    # The first direct-answers request goes out with the synthesis request, with
    # the input of the reader that caused the miss; the inputs of the readers that
    # began waiting after it are asked in one more request.
    assert 1 <= calls['answers_count'] <= 2
    asked = ''.join(c['prompt'] for c in calls['answers_calls'])
    assert all(f'"{10 + i}"' in asked for i in range(4))


@pytest.mark.parametrize('provider', PROVIDERS)
def test_direct_answers_go_out_beside_the_synthesis(mounts, llm, provider):
    """The direct-answers request needs no code: it goes out with the synthesis
    request, not after its reply, so a new type waits for one LLM latency rather
    than two.  The server holds the synthesis reply until the answers request of
    the same type has arrived (one after the other, the synthesis would get no
    code and the read would fail)."""
    llm.script([{'kind': 'after_answers', 'max': 60, 'then': {'kind': 'auto'}}])
    m = mount_llm(mounts, llm, provider)
    assert m.ask('add-one', '41') == b'42\n'
    calls = llm.calls()
    assert calls['count'] == 1 and calls['answers_count'] == 1
    assert '"41"' in calls['answers_calls'][0]['prompt']
    assert '```c' not in calls['answers_calls'][0]['prompt']
    v = m.meta('add-one')['validation']
    assert v['llm_calls'] == {'synthesis': 1, 'answers': 1}
    assert llm_cases(m, "add-one")[b"41"] == b"42\n"


def test_validation_off_admits_on_tests_only(mounts, llm):
    llm.script([{'kind': 'code', 'code': OFF_BY_ONE}])
    m = mount_llm(mounts, llm, 'openai', options=['-o', 'validate=0'])
    assert m.ask('add-one', '41') == b'43\n'
    assert llm.calls()['answers_count'] == 0


def test_bench_validate_tiny(tmp_path):
    """bench/validate.py --tiny runs and catches the planted bugs it should.  Counts
    only, no timing."""
    import json
    import subprocess
    import sys

    from conftest import BUILD, ROOT
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'bench', 'validate.py'), '--tiny',
                        '--build', BUILD, '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = {x['setting']: x for x in json.load(open(tmp_path / 'validate.json'))}
    off = res['no validation (before)']
    assert off['wrong_admitted'] == off['planted'] > 0
    direct = res['direct answers']
    assert direct['caught_four'] == direct['planted_four'] > 0
    assert res['versions=2 (and direct answers)']['wrong_admitted'] == 0
    assert '## Validation' in (tmp_path / 'validate.md').read_text()
