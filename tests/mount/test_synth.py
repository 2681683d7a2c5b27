"""Synthesis on a miss against the scripted test LLM server (issue 3)."""
import errno
import glob
import json
import os
import shutil
import socket
import stat
import threading
import time

import pytest

from conftest import UPPER, store_contents, write

KEY = 'sk-test-SECRET-4c1d2e3f4a5b6c7d'


def llm_mount(mounts, llm, provider='openai', options=(), **kw):
    env = llm.env(provider, KEY)
    return mounts(env=env, options=list(options), **kw)


def assert_no_key(m):
    assert KEY not in m.daemon_log()
    for path, data in store_contents(m.store):
        assert KEY.encode() not in data, path


def test_miss_synthesizes_then_100_hits_without_llm(mounts, llm):
    m = llm_mount(mounts, llm)
    assert m.ask('upper', 'hello') == b'HELLO\n'
    assert llm.count() == 1
    for i in range(100):
        assert m.ask('upper', f'input-{i}') == f'INPUT-{i}\n'.encode()
    assert llm.count() == 1
    assert_no_key(m)
    call = llm.calls()['calls'][0]
    assert call['headers'].get('authorization') == 'Bearer ' + KEY
    assert 'upper' in call['prompt'] and 'seglam_run' in call['prompt']


def test_meta_json_provenance_and_last_exchange(mounts, llm):
    m = llm_mount(mounts, llm)
    assert m.ask('reverse', 'abc') == b'cba\n'
    meta = m.meta('reverse')
    assert meta['author'] == 'llm' and meta['provider'] == 'openai'
    assert meta['model'] == 'test-model' and meta['llm_host'] == '127.0.0.1'
    for k in ('written', 'prompt_hash', 'reply_hash', 'source_hash'):
        assert meta[k], k
    assert meta['tokens_in'] > 0 and meta['tokens_out'] > 0
    assert meta['repair_rounds'] == 0 and meta['tests'] == 'passed' and meta['compile'] == 'ok'
    d = m.path('procs', 'reverse')
    assert 'seglam_run' in open(os.path.join(d, 'last-reply.txt')).read()
    assert 'reverse' in open(os.path.join(d, 'last-prompt.txt')).read()
    assert_no_key(m)


def test_exchange_records_are_there_when_the_answer_is(mounts, llm):
    """The records of a synthesis's LLM exchanges are written after its readers
    have their answer (their fsyncs are off the read path), yet the mount never
    shows procs/TYPE older than the answer: they are there for a read right after
    the first ask.  A type removed right after its first answer is not made again
    by them, and the daemon writes them all before it exits."""
    llm.script([], default={'kind': 'code', 'code': UPPER})
    m = llm_mount(mounts, llm)
    names = {'last-prompt.txt', 'last-reply.txt', 'last-answers-prompt.txt',
             'last-answers-reply.txt'}
    for i in range(16):
        t = 'upper-%d' % i
        with open(m.path('ask', t, 'abc'), 'rb') as f:
            assert f.read() == b'ABC\n'
        if i % 2:
            assert names <= set(os.listdir(m.path('procs', t))), t
        with open(m.path('procs', t, 'last-reply.txt')) as f:
            assert 'seglam_run' in f.read(), t
        with open(m.path('procs', t, 'last-answers-prompt.txt')) as f:
            assert '"abc"' in f.read(), t
    for i in range(16, 24):
        t = 'gone-%d' % i
        with open(m.path('ask', t, 'abc'), 'rb') as f:
            assert f.read() == b'ABC\n'
        shutil.rmtree(m.path('procs', t))
    # The last of them written and the daemon gone: every record is in the store.
    for i in range(24, 32):
        with open(m.path('ask', 'last-%d' % i, 'abc'), 'rb') as f:
            assert f.read() == b'ABC\n'
    m.stop()
    for i in range(16, 24):
        assert not glob.glob(os.path.join(m.store, 'procs', '*', '*', 'gone-%d' % i))
    for i in range(24, 32):
        d = glob.glob(os.path.join(m.store, 'procs', '*', '*', 'last-%d' % i))
        assert len(d) == 1 and names <= set(os.listdir(d[0])), i


def test_a_synthesis_is_admitted_once(mounts, llm):
    """The synthesizer admits the new source against tests/ (its expectations
    included) and records that admission with the tests' identity, so the daemon's
    own first read of the new source.c finds it on record: no second admission, no
    second "compiled and passed" line in the log (issue 11)."""
    m = llm_mount(mounts, llm)
    assert m.ask('reverse', 'abc') == b'cba\n'
    st = m.stats()
    assert st['admissions'] == 1 and st['admissions_on_record'] == 1, st
    meta = m.meta('reverse')
    assert meta['tests'] == 'passed' and meta['tests_id'] != '0' * 16
    with open(m.path('procs', 'reverse', 'log')) as f:
        log = f.read()
    assert 'synthesis: admitted source' in log
    assert 'compiled and passed' not in log, log
    # a person's new case changes the tests: the next read admits again, with it
    write(m.path('procs', 'reverse', 'tests', 'p.in'), 'xy')
    write(m.path('procs', 'reverse', 'tests', 'p.out'), 'yx\n')
    assert m.ask('reverse', 'hello') == b'olleh\n'
    st = m.stats()
    assert st['admissions'] == 2 and st['admissions_on_record'] == 1, st


def test_eight_concurrent_readers_one_call(mounts, llm):
    llm.script([{'kind': 'slow', 'delay': 1, 'then': {'kind': 'auto'}}])
    m = llm_mount(mounts, llm)
    results = [None] * 8

    def reader(i):
        try:
            results[i] = m.ask('double', str(i))
        except OSError as e:
            results[i] = e

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [f'{2 * i}\n'.encode() for i in range(8)]
    assert llm.count() == 1


BROKEN = UPPER.replace('return seglam_write', 'return undefined_thing + seglam_write')
WRONG = UPPER.replace('toupper', 'tolower')


def test_repair_from_compile_error(mounts, llm):
    llm.script([{'kind': 'code', 'code': BROKEN}, {'kind': 'code', 'code': UPPER}])
    m = llm_mount(mounts, llm)
    assert m.ask('shout', 'abc') == b'ABC\n'
    assert llm.count() == 2
    repair_prompt = llm.calls()['calls'][1]['prompt']
    assert 'undefined_thing' in repair_prompt and 'undeclared' in repair_prompt
    assert m.meta('shout')['repair_rounds'] == 1


def test_repair_from_failing_test_case(mounts, llm):
    m = llm_mount(mounts, llm)
    d = m.path('procs', 'caps')
    os.mkdir(d)
    os.mkdir(os.path.join(d, 'tests'))
    write(os.path.join(d, 'spec'), 'Upper-case the input, then a newline.')
    write(os.path.join(d, 'tests', 'one.in'), 'MiXeD')
    write(os.path.join(d, 'tests', 'one.out'), 'MIXED\n')
    llm.script([{'kind': 'code', 'code': WRONG}, {'kind': 'code', 'code': UPPER}])
    assert m.ask('caps', 'abc') == b'ABC\n'
    assert llm.count() == 2
    calls = llm.calls()['calls']
    assert 'Upper-case the input' in calls[0]['prompt'] and 'MiXeD' in calls[0]['prompt']
    assert 'test one failed' in calls[1]['prompt']


def test_reply_without_code_fails_in_bounded_time(mounts, llm):
    llm.script([], default={'kind': 'text', 'text': 'I cannot help with that.'})
    m = llm_mount(mounts, llm, options=['-o', 'repair_rounds=1'])
    t0 = time.monotonic()
    assert m.ask_errno('mystery', 'x') == errno.EIO
    assert time.monotonic() - t0 < 20
    assert llm.count() == 2
    assert 'no C code' in m.proc_log('mystery')
    # the failure is remembered: a loop of cat does not hammer the LLM
    for _ in range(5):
        assert m.ask_errno('mystery', 'x') == errno.EIO
    assert llm.count() == 2
    r = m.seglam('ask', 'mystery', 'x')
    assert r.returncode == 3 and b'synthesis failed' in r.stderr


def test_think_block_is_ignored(mounts, llm):
    text = ('<think>Maybe this?\n```c\nint seglam_run(void) { return 1; }\n```\nNo.</think>\n'
            'Here is the procedure:\n```c\n' + UPPER + '```\n')
    llm.script([{'kind': 'text', 'text': text}])
    m = llm_mount(mounts, llm)
    assert m.ask('thinker', 'ok') == b'OK\n'
    assert llm.count() == 1


def test_429_with_retry_after_is_retried(mounts, llm):
    llm.script([{'kind': 'status', 'status': 429, 'headers': {'Retry-After': '1'}},
                {'kind': 'code', 'code': UPPER}])
    m = llm_mount(mounts, llm)
    t0 = time.monotonic()
    assert m.ask('patient', 'x') == b'X\n'
    assert time.monotonic() - t0 >= 0.9
    assert llm.count() == 2


def test_401_fails_at_once_with_clear_reason(mounts, llm):
    llm.script([], default={'kind': 'status', 'status': 401})
    m = llm_mount(mounts, llm)
    assert m.ask_errno('locked', 'x') == errno.EIO
    assert llm.count() == 1
    log = m.proc_log('locked')
    assert '401' in log
    assert_no_key(m)


def closed_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_llm_down_eio_while_stored_procedures_answer(mounts, tmp_path):
    env = {'SEGLAM_LLM': 'openai', 'SEGLAM_LLM_URL': f'http://127.0.0.1:{closed_port()}/v1',
           'SEGLAM_LLM_API_KEY': KEY}
    m = mounts(env=env, options=['-o', 'llm_timeout=2000'])
    m.put_proc('upper', UPPER)
    t0 = time.monotonic()
    assert m.ask_errno('unknown-type', 'x') == errno.EIO
    assert time.monotonic() - t0 < 30
    assert m.ask('upper', 'still') == b'STILL\n'
    assert_no_key(m)


def test_llm_hung_eio_within_timeout(mounts, llm):
    llm.script([], default={'kind': 'hang'})
    m = llm_mount(mounts, llm, options=['-o', 'llm_timeout=1500'])
    m.put_proc('upper', UPPER)
    t0 = time.monotonic()
    results = {}

    def miss():
        results['miss'] = m.ask_errno('hung-type', 'x')

    t = threading.Thread(target=miss)
    t.start()
    time.sleep(0.3)
    assert m.ask('upper', 'during') == b'DURING\n'  # served while the LLM hangs
    t.join(60)
    assert results['miss'] == errno.EIO
    assert time.monotonic() - t0 < 30


def test_anthropic_protocol(mounts, llm):
    m = llm_mount(mounts, llm, provider='anthropic')
    assert m.ask('lower', 'ABC') == b'abc\n'
    call = llm.calls()['calls'][0]
    assert call['path'].endswith('/v1/messages')
    assert call['headers'].get('x-api-key') == KEY
    assert call['headers'].get('anthropic-version') == '2023-06-01'
    assert m.meta('lower')['provider'] == 'anthropic'
    assert_no_key(m)


def test_command_provider(mounts, tmp_path):
    script = tmp_path / 'llm.sh'
    script.write_text('#!/bin/sh\ncat >/dev/null\nprintf "Sure:\\n\\n\\`\\`\\`c\\n"\ncat "%s"\nprintf "\\`\\`\\`\\n"\n'
                      % (tmp_path / 'proc.c'))
    (tmp_path / 'proc.c').write_text(UPPER)
    script.chmod(0o755)
    m = mounts(env={'SEGLAM_LLM': 'command', 'SEGLAM_LLM_COMMAND': str(script)})
    assert m.ask('by-command', 'abc') == b'ABC\n'
    assert m.meta('by-command')['provider'] == 'command'


def test_budget_caps_llm_calls(mounts, llm):
    # A new type costs two calls: the synthesis and its direct answers (validation).
    m = llm_mount(mounts, llm, options=['-o', 'llm_calls_per_hour=2'])
    assert m.ask('upper', 'a') == b'A\n'
    assert m.ask_errno('lower', 'A') == errno.EIO
    assert llm.count() == 1 and llm.calls()['answers_count'] == 1
    log = m.proc_log('lower')
    assert 'budget spent' in log and 'refills at' in log
    assert m.ask('upper', 'b') == b'B\n'


def test_spec_only_type_waits_for_synthesis(mounts, llm):
    m = llm_mount(mounts, llm)
    os.mkdir(m.path('procs', 'add-one'))
    write(m.path('procs', 'add-one', 'spec'), 'Add one to an integer.')
    assert 'add-one' in os.listdir(m.path('ask'))
    assert m.ask('add-one', '41') == b'42\n'
    assert 'Add one to an integer.' in llm.calls()['calls'][0]['prompt']


def test_failing_edit_is_repaired_by_llm(mounts, llm):
    m = llm_mount(mounts, llm)
    assert m.ask('upper', 'abc') == b'ABC\n'
    d = m.path('procs', 'upper', 'tests')
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, 'nl.in'), 'a b')
    write(os.path.join(d, 'nl.out'), 'A B\n')
    with open(m.path('procs', 'upper', 'source.c'), 'w') as f:
        f.write(WRONG)
    llm.script([{'kind': 'code', 'code': UPPER}])
    before = llm.count()
    assert m.ask('upper', 'xyz') == b'XYZ\n'
    assert llm.count() == before + 1
    assert 'test nl failed' in llm.calls()['calls'][-1]['prompt']
    assert m.meta('upper')['author'] == 'llm'
