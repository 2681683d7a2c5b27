"""Questions in plain words: q/QUESTION, procs/TYPE/patterns and questions/ (issue 12)."""
import errno
import os
import subprocess
import threading
import time

import pytest

from conftest import write

CAPITAL = r'''#include <seglam.h>
#include <string.h>
#include <ctype.h>

static int same(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return 0;
	return *a == *b;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static const char *t[][2] = {{"France", "Paris"}, {"Peru", "Lima"},
				     {"Japan", "Tokyo"}, {"the Republic of Korea", "Seoul"}};
	(void)len;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (same(in, t[i][0]))
			return seglam_printf(out, "%s\n", t[i][1]), 0;
	seglam_printf(out, "unknown country");
	return 1;
}
'''

DOUBLE = r'''#include <seglam.h>
#include <stdlib.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char *end;
	long long v = strtoll(in, &end, 10);

	if (!len || end != in + len) {
		seglam_printf(out, "not an integer");
		return 1;
	}
	seglam_printf(out, "%lld\n", v * 2);
	return 0;
}
'''


def q(m, question):
    with open(m.path('q', question.replace('%', '%25').replace('/', '%2F')), 'rb') as f:
        return f.read()


def q_errno(m, question):
    try:
        q(m, question)
    except OSError as e:
        return e.errno
    return 0


def capital_type(m, patterns='what is the capital of {country}\n', examples=True):
    m.put_proc('capital-of', CAPITAL, tests={'fr': ('France', 'Paris\n')})
    d = m.path('procs', 'capital-of')
    if examples:
        os.mkdir(os.path.join(d, 'questions'))
        write(os.path.join(d, 'questions', 'fr.q'), 'What is the capital of France?\n')
        write(os.path.join(d, 'questions', 'fr.in'), 'France\n')
    write(os.path.join(d, 'patterns'), patterns)


def wait_for(fn, timeout=20):
    """Poll a condition that another daemon or thread makes true eventually."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return fn()


# ---- offline ------------------------------------------------------------------


def test_library_questions_offline(mounts):
    m = mounts(library=True)
    assert q(m, 'what is MCMXCIV in decimal?') == b'1994\n'
    assert q(m, 'What is  mcmxciv in DECIMAL') == b'1994\n'
    assert q(m, 'How many days are between 2026-01-01 and 2026-11-26?') == b'329\n'
    assert q(m, 'what day of the week is 2024-02-29') == b'Thursday\n'
    assert q(m, 'is 97 a prime number?') == b'true\n'
    # The answer is the procedure's, exactly as ask/ gives it.
    assert q(m, 'What is 1994 in Roman numerals?') == m.ask('int-to-roman', '1994')
    st = m.stats()
    assert st['question_hits'] >= 5 and st['routing_calls'] == 0
    assert 'q' in os.listdir(m.mnt)


def test_every_library_example_routes_to_its_input(mounts):
    m = mounts(library=True)
    n = 0
    for t in sorted(os.listdir(m.path('procs'))):
        qd = m.path('procs', t, 'questions')
        if not os.path.isdir(qd):
            continue
        for name in sorted(os.listdir(qd)):
            if not name.endswith('.q'):
                continue
            with open(os.path.join(qd, name)) as f:
                question = f.read().strip()
            with open(os.path.join(qd, name[:-2] + '.in')) as f:
                inp = f.read().rstrip('\n')
            assert q(m, question) == m.ask(t, inp.replace('%', '%25').replace('/', '%2F')), \
                (t, question)
            n += 1
    assert n >= 40
    assert 'not used' not in m.daemon_log()


def test_seglam_q_argument_and_stdin(mounts):
    m = mounts(library=True)
    r = m.seglam('q', 'what', 'is', 'XIV', 'in', 'decimal?')
    assert (r.returncode, r.stdout) == (0, b'14\n')
    long_q = 'reverse ' + 'ab' * 300  # too long for a file name
    r = m.seglam('q', input=long_q.encode() + b'\n')
    assert (r.returncode, r.stdout) == (0, b'ba' * 300 + b'\n')
    r = m.seglam('q', 'what is the weather right now')
    assert r.returncode == 2 and b'no pattern' in r.stderr


def test_near_miss_and_no_pattern_are_enoent(mounts):
    m = mounts(library=True)
    capital_type(m)
    assert q(m, 'what is the capital of Japan') == b'Tokyo\n'
    assert q(m, 'What is the capital of the Republic of Korea?') == b'Seoul\n'
    assert q_errno(m, 'what is the capital letter of x') == errno.ENOENT
    assert q_errno(m, 'what is MCMXCIV in hexadecimal') == errno.ENOENT
    assert q_errno(m, 'tell me what is the capital of France') == errno.ENOENT
    assert m.stats()['routing_misses'] >= 3


def test_tie_between_types_is_a_miss(mounts):
    m = mounts()
    m.put_proc('double', DOUBLE)
    m.put_proc('capital-of', CAPITAL)
    write(m.path('procs', 'double', 'patterns'), 'compute {n} please\n')
    write(m.path('procs', 'capital-of', 'patterns'), 'compute {country} please\n')
    assert q_errno(m, 'compute 21 please') == errno.ENOENT
    # A more specific phrasing wins over the tie.
    with open(m.path('procs', 'double', 'patterns'), 'a') as f:
        f.write('compute {n} please twice\n')
    assert q(m, 'compute 21 please twice') == b'42\n'
    assert q_errno(m, 'compute 21 please') == errno.ENOENT


def test_hand_taught_pattern_with_echo(mounts):
    m = mounts()
    capital_type(m)
    assert q_errno(m, 'capital city of Peru') == errno.ENOENT
    subprocess.run(['sh', '-c', "echo 'capital city of {country}' >> patterns"],
                   cwd=m.path('procs', 'capital-of'), check=True)
    assert q(m, 'capital city of Peru') == b'Lima\n'
    # A question whose input the procedure rejects is EINVAL, as in ask/.
    assert q_errno(m, 'capital city of Atlantis') == errno.EINVAL


def test_bad_patterns_refused_with_reason_and_ask_keeps_working(mounts):
    m = mounts()
    capital_type(m, patterns='what is the capital of {country\n')
    assert q_errno(m, 'what is the capital of France') == errno.ENOENT
    assert m.ask('capital-of', 'France') == b'Paris\n'
    assert 'opens no slot' in m.proc_log('capital-of')
    # An example its own patterns do not give is refused too.
    write(m.path('procs', 'capital-of', 'patterns'), 'capital of {country}\n')
    assert q_errno(m, 'capital of France') == errno.ENOENT
    assert 'matches no pattern' in m.proc_log('capital-of')
    # Fixed: used again.
    write(m.path('procs', 'capital-of', 'patterns'),
          'capital of {country}\nwhat is the capital of {country}\n')
    assert q(m, 'capital of France') == b'Paris\n'
    # Another type's pattern that would win capital-of's example is refused.
    m.put_proc('double', DOUBLE)
    write(m.path('procs', 'double', 'patterns'), 'what is the capital of {n}\n')
    assert q(m, 'what is the capital of Peru') == b'Lima\n'
    assert 'would win example questions/fr.q' in m.proc_log('double')
    assert m.ask('double', '4') == b'8\n'


def test_pattern_without_a_whole_word_is_refused(mounts):
    m = mounts()
    m.put_proc('double', DOUBLE)
    write(m.path('procs', 'double', 'patterns'), '{n}+{n2}\n')
    assert q_errno(m, '1+2') == errno.ENOENT
    assert 'no whole literal word' in m.proc_log('double')


def test_editing_patterns_with_editors_while_reading(mounts):
    m = mounts()
    capital_type(m, patterns='what is the capital of {country}\n')
    d = m.path('procs', 'capital-of')
    stop = threading.Event()
    wrong = []
    reads = [0]

    def reader():
        while not stop.is_set():
            try:
                got = q(m, 'what is the capital of France')
                if got != b'Paris\n':
                    wrong.append(got)
            except OSError as e:
                wrong.append(e.errno)
            reads[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(5):
            subprocess.run(['sed', '-i', '$a capital number %d of {country}' % i,
                            os.path.join(d, 'patterns')], check=True)
        subprocess.run(['vim', '-u', 'NONE', '-i', 'NONE', '-N', '-n', '-es', '-c',
                        'call append(line("$"), "seat of government of {country}")',
                        '-c', 'wq', os.path.join(d, 'patterns')],
                       check=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        stop.set()
        t.join(60)
    assert wrong == [] and reads[0] > 0
    assert q(m, 'capital number 3 of Peru') == b'Lima\n'
    assert q(m, 'seat of government of Japan') == b'Tokyo\n'


def test_meta_counts_question_hits(mounts):
    m = mounts(library=True)
    for i in range(3):
        assert q(m, 'is %d prime' % (7 + i * 2)) in (b'true\n', b'false\n')
    m.stop()
    m.start()
    assert m.meta('is-prime').get('question_hits', 0) >= 3


def test_other_daemon_patterns_served_within_revalidate(mounts, tmp_path):
    a = mounts(name='a', options=['-o', 'revalidate=200'])
    b = mounts(name='b', store=a.store, options=['-o', 'revalidate=200'])
    capital_type(a)
    assert q(a, 'what is the capital of Peru') == b'Lima\n'
    # b built its index before: the new type and its patterns reach it by the note.
    assert wait_for(lambda: q_errno(b, 'what is the capital of Peru') == 0)
    assert q(b, 'what is the capital of Peru') == b'Lima\n'
    with open(a.path('procs', 'capital-of', 'patterns'), 'a') as f:
        f.write('capital city of {country}\n')
    assert q(a, 'capital city of Japan') == b'Tokyo\n'
    assert wait_for(lambda: q_errno(b, 'capital city of Japan') == 0)


def test_edit_on_a_daemon_that_never_saw_a_question_reaches_the_others(mounts):
    a = mounts(name='a', options=['-o', 'revalidate=200'])
    b = mounts(name='b', store=a.store, options=['-o', 'revalidate=200'])
    assert q_errno(b, 'what is the capital of Peru') == errno.ENOENT  # b's index is built
    capital_type(a)  # a has no index: the edit still leaves a note for b
    assert wait_for(lambda: q_errno(b, 'what is the capital of Peru') == 0)
    assert q(b, 'what is the capital of Peru') == b'Lima\n'
    assert os.path.exists(os.path.join(a.store, 'routes', 'capital-of'))


# ---- with the test LLM server -------------------------------------------------

PROTOCOLS = ['openai', 'anthropic']


def llm_mount(mounts, llm, provider, **kw):
    return mounts(env=llm.env(provider), **kw)


def read_text(path):
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize('provider', PROTOCOLS)
def test_route_to_existing_type_adds_a_pattern(mounts, llm, provider):
    m = llm_mount(mounts, llm, provider, library=True)
    source = read_text(m.path('procs', 'weekday', 'source.c'))
    llm.script([{'kind': 'route', 'type': 'weekday',
                 'patterns': ["what's the weekday of {date}"],
                 'questions': [["what's the weekday of 2024-02-29", '2024-02-29']]}])
    assert q(m, "What's the weekday of 2024-02-29?") == b'Thursday\n'
    assert llm.count() == 1
    prompt = llm.calls()['calls'][0]['prompt']
    # The nearest existing types come with their spec, patterns and examples.
    assert '## type: weekday' in prompt and 'what day of the week is {date}' in prompt
    assert "what's the weekday of {date}" in read_text(m.path('procs', 'weekday', 'patterns'))
    assert read_text(m.path('procs', 'weekday', 'source.c')) == source  # no new procedure
    # Other dates: hits, no more calls.
    assert q(m, "what's the weekday of 1970-01-01") == b'Thursday\n'
    assert q(m, "what's the weekday of 2026-11-30") == b'Monday\n'
    assert llm.count() == 1
    st = m.stats()
    assert st['routing_calls'] == 1 and st['routing_admitted'] == 1


@pytest.mark.parametrize('provider', PROTOCOLS)
def test_route_to_a_new_type(mounts, llm, provider):
    m = llm_mount(mounts, llm, provider)
    llm.script([{'kind': 'route', 'type': 'double',
                 'patterns': ['what is twice {n}', 'what is {n} doubled'],
                 'questions': [['what is twice 21', '21'], ['what is 5 doubled', '5']],
                 'spec': 'Input: an integer. Answer: twice it.',
                 'code': DOUBLE, 'tests': [['2', '4'], ['-3', '-6']]}])
    assert q(m, 'What is twice 21?') == b'42\n'
    assert q(m, 'what is 50 doubled') == b'100\n'
    assert m.ask('double', '7') == b'14\n'
    assert llm.count() == 1
    assert 'twice' in read_text(m.path('procs', 'double', 'spec'))
    assert sorted(os.listdir(m.path('procs', 'double', 'tests')))[:2] == ['reply-1.in',
                                                                         'reply-1.out']
    assert m.meta('double')['author'] == 'llm'


@pytest.mark.parametrize('provider', PROTOCOLS)
def test_patterns_not_matching_the_question_are_a_failed_round(mounts, llm, provider):
    m = llm_mount(mounts, llm, provider)
    bad = {'kind': 'route', 'type': 'double', 'patterns': ['double of {n}'],
           'questions': [['double of 21', '21']], 'code': DOUBLE}
    good = dict(bad, patterns=['what is the double of {n}'],
                questions=[['what is the double of 21', '21']])
    llm.script([bad, good])
    assert q(m, 'what is the double of 21') == b'42\n'
    assert llm.count() == 2
    assert 'none of the patterns matches the question' in llm.calls()['calls'][1]['prompt']
    # The failed round wrote nothing: its pattern is not in the file.
    assert 'double of {n}\n' not in read_text(m.path('procs', 'double', 'patterns')).replace(
        'what is the double of {n}\n', '')


@pytest.mark.parametrize('provider', PROTOCOLS)
def test_route_to_a_wrong_existing_type_is_not_admitted(mounts, llm, provider):
    m = llm_mount(mounts, llm, provider, library=True)
    capital_type(m)
    roman = read_text(m.path('procs', 'roman-to-int', 'patterns'))
    wrong = {'kind': 'route', 'type': 'roman-to-int',
             'patterns': ['which city is the capital of {x}'],
             'questions': [['which city is the capital of Peru', 'Peru']]}
    right = dict(wrong, type='capital-of')
    llm.script([wrong, right])
    assert q(m, 'Which city is the capital of Peru?') == b'Lima\n'
    assert llm.count() == 2
    assert read_text(m.path('procs', 'roman-to-int', 'patterns')) == roman
    assert 'not admitted' in m.proc_log('roman-to-int')
    assert 'rejects the input' in llm.calls()['calls'][1]['prompt']


@pytest.mark.parametrize('provider', PROTOCOLS)
def test_unanswerable_question_is_remembered(mounts, llm, provider):
    m = llm_mount(mounts, llm, provider)
    llm.script([{'kind': 'route', 'none': 'it needs the current weather'}])
    assert q_errno(m, 'what is the weather right now') == errno.EIO
    assert q_errno(m, 'What is the weather right now?') == errno.EIO
    assert llm.count() == 1
    assert m.stats()['routing_failed'] == 1


def test_concurrent_misses_of_one_question_make_one_request(mounts, llm):
    m = llm_mount(mounts, llm, 'openai', library=True)
    llm.script([{'kind': 'slow', 'delay': 1, 'then': {
        'kind': 'route', 'type': 'weekday', 'patterns': ['weekday of the date {d}'],
        'questions': [['weekday of the date 2024-02-29', '2024-02-29']]}}])
    results = [None] * 6

    def reader(i):
        try:
            results[i] = q(m, 'weekday of the date 2024-02-29')
        except OSError as e:
            results[i] = e

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [b'Thursday\n'] * 6
    assert llm.count() == 1


def test_no_llm_miss_is_enoent_and_makes_no_call(mounts, llm):
    m = mounts(library=True)  # llm=none
    assert q_errno(m, 'what is the weather right now') == errno.ENOENT
    assert llm.count() == 0


def test_nearest_types_come_from_specs_too(mounts, llm):
    m = llm_mount(mounts, llm, 'openai', library=True)
    # A type named without the question's words, and without patterns yet.
    m.put_proc('geo-lookup', CAPITAL, spec='Input: a country. Answer: its capital city.\n')
    llm.script([{'kind': 'route', 'type': 'geo-lookup',
                 'patterns': ['which city is the capital of {country}'],
                 'questions': [['which city is the capital of Peru', 'Peru']]}])
    assert q(m, 'which city is the capital of Peru') == b'Lima\n'
    prompt = llm.calls()['calls'][0]['prompt']
    assert '## type: geo-lookup' in prompt and 'its capital city' in prompt
    assert llm.count() == 1


def test_hostile_patterns_cost_bounded_work(mounts):
    m = mounts()
    capital_type(m)
    m.put_proc('double', DOUBLE)
    # Thousands of patterns filed under one word, each backtracking a lot.
    slots = ''.join('{s%d}' % i for i in range(12))
    write(m.path('procs', 'double', 'patterns'),
          ''.join('hard %sz%d\n' % (slots, i) for i in range(3000)))
    assert q_errno(m, 'hard ' + 'a' * 60) == errno.ENOENT
    assert 'matching steps' in m.daemon_log()
    # Other questions are untouched.
    assert q(m, 'what is the capital of Japan') == b'Tokyo\n'


def test_read_only_store_answers_questions_and_never_routes(mounts, llm):
    w = mounts(name='w', library=True)
    w.stop()
    m = mounts(name='r', store=w.store, env=llm.env('openai'), options=['-o', 'ro'])
    assert q(m, 'what is MCMXCIV in decimal') == b'1994\n'
    assert q_errno(m, 'what is the weather right now') == errno.EIO
    assert llm.count() == 0


def test_new_example_refuses_the_patterns_that_would_win_it(mounts):
    m = mounts()
    m.put_proc('double', DOUBLE)
    write(m.path('procs', 'double', 'patterns'), 'what is the capital of {n}\n')
    assert q(m, 'what is the capital of 21') == b'42\n'
    capital_type(m)  # its example "What is the capital of France?" is double's now
    assert q(m, 'what is the capital of Peru') == b'Lima\n'
    assert 'would win example questions/fr.q' in m.proc_log('double')
    assert m.ask('double', '4') == b'8\n'


@pytest.mark.parametrize('provider', PROTOCOLS)
def test_reply_whose_example_another_type_answers_is_refused(mounts, llm, provider):
    m = llm_mount(mounts, llm, provider)
    capital_type(m)
    greedy = {'kind': 'route', 'type': 'city-of',
              'patterns': ['which city is the capital of {c}', 'what is the {k} of {c} => {c}'],
              'questions': [['which city is the capital of Peru', 'Peru'],
                            ['what is the capital of France', 'France']],
              'code': CAPITAL}
    modest = dict(greedy, patterns=['which city is the capital of {c}'],
                  questions=[['which city is the capital of Peru', 'Peru']])
    llm.script([greedy, modest])
    assert q(m, 'Which city is the capital of Peru?') == b'Lima\n'
    assert llm.count() == 2
    assert 'is answered by type capital-of' in llm.calls()['calls'][1]['prompt']
    assert q(m, 'what is the capital of France') == b'Paris\n'
    assert 'not used' not in m.proc_log('capital-of')
