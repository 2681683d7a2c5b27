#!/usr/bin/python3
"""llm_server.py: a scripted LLM server for seglamfs tests (Python stdlib only).

Speaks both protocols on 127.0.0.1:
  POST /v1/chat/completions (or /chat/completions)   OpenAI-compatible
  POST /v1/messages (or /messages)                   Anthropic
so a test points SEGLAM_LLM_URL at http://127.0.0.1:PORT/v1 (openai) or
http://127.0.0.1:PORT (anthropic).

Control API (JSON):
  POST /_script   a list of responses served in order, or
                  {"responses": [...], "default": {...}, "api_key": "..."};
                  once the list is used up the default is served (default: auto).
                  With api_key set, requests with another key get a 401.
                  "answers": [...] and "answers_default" script the validation
                  requests apart (see below); "by_type": {TYPE: [...]} responses
                  for one type's synthesis requests, served before the list.
  POST /_reset    forget the script, the calls and the api_key.
  GET  /_calls    {"count": N, "calls": [{"path", "protocol", "headers", "body",
                  "prompt", "type"}...]} (headers with lower-case names), and the
                  validation requests apart: "answers_count", "answers_calls".

Validation requests (the prompt starts "Give direct answers for the type below")
are served from their own script, so the synthesis script and counts are as
before.  An answers response is:
  {"kind": "auto"}     the right answers for a type with a reference (REFERENCE),
                       for every input asked plus PICKS; an empty block otherwise
  {"kind": "answers", "answers": [["in", "out"], ...], "rejects": [["in", "why"]],
   "auto": true}       these lines (with "auto", also the reference's answers for
                       the other inputs)
  {"kind": "text", "text": "..."}   as is
and any of them may carry "delay": seconds (served that much later).
A "code" response may carry "withdraw": [["in", "reason"], ...].

A response is one of:
  {"kind": "code", "code": "...", "tests": [["in", "out"], ...]}
        a realistic reply: prose, a ```c fence, optionally a ```tests block
  {"kind": "text", "text": "..."}        the reply text as is
  {"kind": "status", "status": 429, "headers": {...}, "body": {...} or "..."}
        an error; without a body, the protocol's usual error shape
  {"kind": "malformed"}                  200 with a body that is not JSON
  {"kind": "slow", "delay": 5, "then": {...}}   wait, then serve "then" (auto)
  {"kind": "hang"}                       read the request, never answer
  {"kind": "after_answers", "max": 30, "then": {...}}   hold the reply until a
        validation request for the same type has arrived, then serve "then"
        (auto); after "max" seconds without one, a reply with no code
  {"kind": "compose", "callee": "T", "code": "...", "tests": [...]}
        as "code", but only when the prompt offers type T in its list of existing
        types that may be called (composition); otherwise a reply with no code
  {"kind": "route", "type": T | "none": REASON, "patterns": [...],
   "questions": [[Q, INPUT], ...], "code": C, "spec": S, "tests": [[in, out]...]}
        a routing reply for a question in plain words (see route_text)
  {"kind": "router", "families": [{"type": T, "regex": R, "input": TEMPLATE,
   "patterns": [...], "code": C (optional)}, ...]}
        routes like a good model: the family whose regex (Python, named groups)
        matches the question gives the reply; no family: `none`
  {"kind": "auto"}                       a correct procedure for a known type
                                         (see AUTO), no code for an unknown one
Any response may carry "usage": false (omit usage) or "usage": [in, out].

Run: python3 tests/llm_server.py --port 0 --port-file FILE
Import: server, port = start_server(); ...; server.shutdown()
"""
import argparse
import json
import os
import re
import select
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTO = {
    'upper': r'''#include <seglam.h>
#include <ctype.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = (char)toupper((unsigned char)in[i]);

		seglam_write(out, &c, 1);
	}
	seglam_write(out, "\n", 1);
	return 0;
}
''',
    'lower': r'''#include <seglam.h>
#include <ctype.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = (char)tolower((unsigned char)in[i]);

		seglam_write(out, &c, 1);
	}
	seglam_write(out, "\n", 1);
	return 0;
}
''',
    'reverse': r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	for (size_t i = len; i > 0; i--)
		seglam_write(out, &in[i - 1], 1);
	seglam_write(out, "\n", 1);
	return 0;
}
''',
    'length': r'''#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in;
	seglam_printf(out, "%zu\n", len);
	return 0;
}
''',
    'add-one': r'''#include <seglam.h>
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
	seglam_printf(out, "%lld\n", v + 1);
	return 0;
}
''',
    'double': r'''#include <seglam.h>
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
	seglam_printf(out, "%lld\n", v * 2);
	return 0;
}
''',
}

TYPE_RE = re.compile(r'^Type: (\S+)', re.M)


def wrap_code(code, tests=None, withdraw=None):
    text = ('Here is a procedure for this type. It handles the general case and '
            'rejects invalid input.\n\n```c\n' + code.rstrip('\n') + '\n```\n')
    if tests:
        text += '\nSome extra cases:\n\n```tests\n'
        text += ''.join('%s => %s\n' % (i, o) for i, o in tests)
        text += '```\n'
    if withdraw:
        text += '\nThese direct answers were wrong:\n\n```withdraw\n'
        text += ''.join('%s => %s\n' % (escape_line(i), o) for i, o in withdraw)
        text += '```\n'
    return text + '\nThe answer ends with a newline, as usual.\n'


def compose_reply(r, prompt):
    """The "compose" responder: code calling r['callee'] if the prompt lists it."""
    callee = r.get('callee', '')
    listed = re.search(r'^### ' + re.escape(callee) + r'$', prompt, re.M)
    if callee and listed and 'seglam_call' in prompt:
        return wrap_code(r.get('code', ''), r.get('tests'))
    return 'There is no existing type %r to build on, so no code.' % callee


QUESTION_RE = re.compile(r'^Question:\n(.*)$', re.M)


def route_text(r):
    """A routing reply: prose around the route, patterns, questions (and c) blocks."""
    text = 'Let me think about which procedure answers this.\n\n'
    if r.get('none') is not None:
        return text + '```route\nnone: %s\n```\n' % r['none']
    text += '```route\ntype: %s\n```\n\n' % r.get('type', '')
    text += '```patterns\n' + ''.join(p + '\n' for p in r.get('patterns', [])) + '```\n\n'
    text += '```questions\n' + ''.join('%s => %s\n' % (q, i) for q, i in r.get('questions', []))
    text += '```\n'
    if r.get('spec'):
        text += '\n```spec\n' + r['spec'].rstrip('\n') + '\n```\n'
    if r.get('code'):
        text += '\n' + wrap_code(r['code'], r.get('tests'))
    return text


def router_text(r, prompt):
    """Route the question of @prompt by the first family whose regex matches it."""
    m = QUESTION_RE.search(prompt)
    q = m.group(1).strip() if m else ''
    for fam in r.get('families', []):
        g = re.fullmatch(fam['regex'], q, re.I)
        if not g:
            continue
        inp = fam.get('input', '')
        for k, v in g.groupdict().items():
            inp = inp.replace('{%s}' % k, v)
        reply = {'type': fam['type'], 'patterns': fam['patterns'], 'questions': [[q, inp]]}
        if fam.get('code') and ('## type: %s\n' % fam['type']) not in prompt:
            reply['code'] = fam['code']
            reply['tests'] = fam.get('tests')
        return route_text(reply)
    return route_text({'none': 'no procedure answers this'})


# -- validation: direct answers (the request that shows no code) --------------

ANSWERS_RE = re.compile(r'^Give direct answers for the type below', re.M)
PICKS_RE = re.compile(r'pick (\d+) more inputs')
PICKS = ['', 'a', 'Hello World', '42', '-7', 'abc123']
# Inputs a type's direct answers pick instead of PICKS (set by a benchmark).
REFERENCE_PICKS = {}


def _int_input(s):
    """strtoll over the whole input, as the AUTO procedures parse: None if not."""
    if not re.fullmatch(r'\s*[+-]?\d+', s):
        return None
    v = int(s)
    return v if -2**63 <= v < 2**63 else None


def _int_answer(f):
    def ref(s):
        v = _int_input(s)
        if v is None:
            return None, 'not an integer'
        return '%d' % f(v), None
    return ref


def _bytes_map(f):
    return lambda s: (f(s), None)


# The meaning of each AUTO type, independent of its C code: (answer, None) or
# (None, reason) for an input that must be rejected.  Answers have no final newline.
REFERENCE = {
    'upper': _bytes_map(lambda s: ''.join(c.upper() if c.isascii() else c for c in s)),
    'lower': _bytes_map(lambda s: ''.join(c.lower() if c.isascii() else c for c in s)),
    'reverse': _bytes_map(lambda s: s.encode('utf-8', 'surrogateescape')[::-1]
                          .decode('utf-8', 'surrogateescape')),
    'length': _bytes_map(lambda s: str(len(s.encode('utf-8', 'surrogateescape')))),
    'add-one': _int_answer(lambda v: v + 1),
    'double': _int_answer(lambda v: v * 2),
}


def c_literal_decode(text):
    """The bytes of one or more adjacent C string literals ("a" "b"), as str."""
    out = bytearray()
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', text):
        i = 0
        raw = lit.encode('utf-8', 'surrogateescape')
        while i < len(raw):
            c = raw[i]
            if c != 0x5c or i + 1 == len(raw):
                out.append(c)
                i += 1
                continue
            e = chr(raw[i + 1])
            i += 2
            if e == 'x':
                h = re.match(rb'[0-9a-fA-F]{1,2}', raw[i:])
                out.append(int(h.group(0), 16))
                i += len(h.group(0))
            else:
                out += {'n': b'\n', 't': b'\t', 'r': b'\r', '0': b'\0'}.get(e, e.encode())
    return out.decode('utf-8', 'surrogateescape')


def escape_line(s):
    """Text for one side of an `INPUT => ANSWER` line."""
    b = s.encode('utf-8', 'surrogateescape')
    out = ''
    for i, c in enumerate(b):
        ch = chr(c)
        if ch == '\\':
            out += '\\\\'
        elif ch == '\n':
            out += '\\n'
        elif ch == '\t':
            out += '\\t'
        elif c < 0x20 or c >= 0x7f or (ch == ' ' and (i == 0 or i == len(b) - 1)):
            out += '\\x%02x' % c
        else:
            out += ch
    return out


def answers_inputs(prompt):
    """The inputs a validation prompt asks about, and how many more to pick."""
    m = re.search(r'^Answer these inputs:\n\n(.*?)(?:\n\n|\Z)', prompt, re.M | re.S)
    inputs = []
    if m:
        for line in m.group(1).split('\n'):
            if line.startswith('- "'):
                inputs.append(c_literal_decode(line[2:]))
    p = PICKS_RE.search(prompt)
    return inputs, int(p.group(1)) if p else 0


def answers_text(answers, rejects, prose='Here are the answers.'):
    text = prose + '\n\n```answers\n'
    text += ''.join('%s => %s\n' % (escape_line(i), escape_line(o)) for i, o in answers)
    text += '```\n'
    if rejects:
        text += '\n```rejects\n'
        text += ''.join('%s => %s\n' % (escape_line(i), o) for i, o in rejects)
        text += '```\n'
    return text


def answer_validation(r, typ, prompt):
    """The reply text to a validation request, for answers response @r."""
    kind = r.get('kind', 'auto')
    if kind == 'text':
        return r.get('text', '')
    inputs, picks = answers_inputs(prompt)
    answers = [list(a) for a in r.get('answers', [])] if kind == 'answers' else []
    rejects = [list(a) for a in r.get('rejects', [])] if kind == 'answers' else []
    ref = REFERENCE.get(typ or '')
    if ref and (kind == 'auto' or r.get('auto')):
        given = {a[0] for a in answers} | {a[0] for a in rejects}
        own = REFERENCE_PICKS.get(typ, PICKS)
        for s in inputs + (own[:max(picks, len(own))] if picks else []):
            if s in given:
                continue
            given.add(s)
            out, why = ref(s)
            if why is None:
                answers.append([s, out])
            else:
                rejects.append([s, why])
    if not answers and not rejects:
        return "I cannot tell what this type answers without more information.\n\n```answers\n```\n"
    return answers_text(answers, rejects)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.script = []
        self.default = {'kind': 'auto'}
        self.calls = []
        self.api_key = None
        self.answers = []
        self.answers_default = {'kind': 'auto'}
        self.answer_calls = []
        self.by_type = {}  # type -> responses served to that type's synthesis first

    def next_response(self, typ=None):
        with self.lock:
            if self.by_type.get(typ):
                return self.by_type[typ].pop(0)
            if self.script:
                return self.script.pop(0)
            return self.default

    def next_answers(self):
        with self.lock:
            if self.answers:
                return self.answers.pop(0)
            return self.answers_default


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'seglam-test-llm/1'

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write('llm_server: ' + (fmt % args) + '\n')

    # -- plumbing
    def read_body(self):
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n else b''

    def send(self, status, body, headers=None, ctype='application/json'):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(body)

    # -- control API
    def do_GET(self):
        st = self.server.state
        if self.path == '/_calls':
            with st.lock:
                self.send(200, {'count': len(st.calls), 'calls': st.calls,
                                'answers_count': len(st.answer_calls),
                                'answers_calls': st.answer_calls})
        elif self.path == '/_health':
            self.send(200, {'ok': True})
        else:
            self.send(404, {'error': 'not found'})

    def do_POST(self):
        st = self.server.state
        raw = self.read_body()
        if self.path == '/_reset':
            with st.lock:
                st.reset()
            return self.send(200, {'ok': True})
        if self.path == '/_script':
            try:
                spec = json.loads(raw or b'[]')
            except ValueError:
                return self.send(400, {'error': 'bad script'})
            with st.lock:
                if isinstance(spec, list):
                    st.script = spec
                else:
                    st.script = spec.get('responses', [])
                    st.default = spec.get('default', {'kind': 'auto'})
                    st.api_key = spec.get('api_key')
                    st.answers = spec.get('answers', [])
                    st.answers_default = spec.get('answers_default', {'kind': 'auto'})
                    st.by_type = spec.get('by_type', {})
            return self.send(200, {'ok': True})
        if self.path in ('/v1/chat/completions', '/chat/completions'):
            return self.serve_llm('openai', raw)
        if self.path in ('/v1/messages', '/messages'):
            return self.serve_llm('anthropic', raw)
        self.send(404, {'error': {'message': 'no route for ' + self.path,
                                  'type': 'invalid_request_error'}})

    # -- the LLM
    def serve_llm(self, proto, raw):
        st = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        prompt = ''
        if isinstance(body, dict):
            if proto == 'anthropic' and isinstance(body.get('system'), str):
                prompt += body['system'] + '\n'
            for m in body.get('messages') or []:
                if isinstance(m, dict) and isinstance(m.get('content'), str):
                    prompt += m['content'] + '\n'
        m = TYPE_RE.search(prompt)
        typ = m.group(1) if m else None
        validation = bool(ANSWERS_RE.search(prompt))
        with st.lock:
            (st.answer_calls if validation else st.calls).append({'path': self.path, 'protocol': proto, 'headers': headers,
                             'body': body if body is not None else raw.decode('latin-1'),
                             'prompt': prompt, 'type': typ})
            key = st.api_key
        if body is None:
            return self.send_error_shape(proto, 400, 'invalid JSON body')
        if proto == 'anthropic' and headers.get('anthropic-version') != '2023-06-01':
            return self.send_error_shape(proto, 400, 'anthropic-version header missing')
        if proto == 'anthropic' and not isinstance(body.get('max_tokens'), int):
            return self.send_error_shape(proto, 400, 'max_tokens: Field required')
        if key is not None:
            got = (headers.get('x-api-key') if proto == 'anthropic'
                   else (headers.get('authorization') or '').removeprefix('Bearer '))
            if got != key:
                # Like real servers, echo (part of) the key: clients must scrub it.
                return self.send_error_shape(proto, 401, 'Incorrect API key provided: %s'
                                             % got, etype='authentication_error')
        if validation:
            ar = st.next_answers()
            time.sleep(float(ar.get('delay', 0)))
            text = answer_validation(ar, typ, prompt)
            return self.respond(proto, {'kind': 'text', 'text': text}, body, prompt, typ)
        self.respond(proto, st.next_response(typ), body, prompt, typ)

    def send_error_shape(self, proto, status, msg, etype='invalid_request_error', hdrs=None):
        if proto == 'anthropic':
            body = {'type': 'error', 'error': {'type': etype, 'message': msg}}
        else:
            body = {'error': {'message': msg, 'type': etype, 'param': None, 'code': None}}
        self.send(status, body, hdrs)

    def respond(self, proto, r, body, prompt, typ):
        kind = r.get('kind', 'auto')
        if kind == 'slow':
            time.sleep(float(r.get('delay', 1)))
            return self.respond(proto, r.get('then', {'kind': 'auto'}), body, prompt, typ)
        if kind == 'after_answers':
            # Hold this reply until a validation request of the same type arrives
            # (or "max" seconds pass: then a reply without code).
            limit = time.time() + float(r.get('max', 30))
            st = self.server.state
            while time.time() < limit:
                with st.lock:
                    if any(c['type'] == typ for c in st.answer_calls):
                        break
                time.sleep(0.01)
            else:
                return self.respond(proto, {'kind': 'text', 'text': 'no direct-answers request '
                                            'arrived while this one waited'}, body, prompt, typ)
            return self.respond(proto, r.get('then', {'kind': 'auto'}), body, prompt, typ)
        if kind == 'hang':
            # Hold the connection until the client gives up (or a long time).
            limit = time.time() + float(r.get('max', 600))
            while time.time() < limit:
                ready, _, _ = select.select([self.connection], [], [], 0.2)
                if ready:
                    try:
                        if not self.connection.recv(1, 2):  # MSG_PEEK: closed?
                            break
                    except OSError:
                        break
            self.close_connection = True
            return
        if kind == 'malformed':
            return self.send(200, '{"choices": [ {"message": ', r.get('headers'))
        if kind == 'status':
            status = int(r.get('status', 500))
            if 'body' in r:
                b = r['body']
                ctype = 'application/json' if isinstance(b, (dict, list)) else 'text/plain'
                return self.send(status, b, r.get('headers'), ctype)
            etype = {401: 'authentication_error', 429: 'rate_limit_error',
                     529: 'overloaded_error'}.get(status, 'api_error')
            return self.send_error_shape(proto, status, r.get('message', 'error %d' % status),
                                         etype, r.get('headers'))
        if kind == 'code':
            text = wrap_code(r.get('code', ''), r.get('tests'), r.get('withdraw'))
        elif kind == 'compose':
            text = compose_reply(r, prompt)
        elif kind == 'text':
            text = r.get('text', '')
        elif kind == 'route':
            text = route_text(r)
        elif kind == 'router':
            text = router_text(r, prompt)
        else:  # auto
            code = AUTO.get(typ or '')
            if code:
                text = wrap_code(code)
            else:
                text = "I don't know what the type %r means." % typ
        usage = r.get('usage', True)
        if usage is True:
            usage = [max(1, len(prompt) // 4), max(1, len(text) // 4)]
        model = body.get('model', 'test-model')
        if proto == 'anthropic':
            blocks = [{'type': 'text', 'text': text}]
            if r.get('split') and len(text) > 1:
                h = len(text) // 2
                blocks = [{'type': 'thinking', 'thinking': 'hmm', 'signature': 'x'},
                          {'type': 'text', 'text': text[:h]},
                          {'type': 'text', 'text': text[h:]}]
            out = {'id': 'msg_test', 'type': 'message', 'role': 'assistant', 'model': model,
                   'content': blocks, 'stop_reason': 'end_turn', 'stop_sequence': None}
            if usage:
                out['usage'] = {'input_tokens': usage[0], 'output_tokens': usage[1]}
        else:
            out = {'id': 'chatcmpl-test', 'object': 'chat.completion',
                   'created': int(time.time()), 'model': model,
                   'choices': [{'index': 0, 'finish_reason': 'stop',
                                'message': {'role': 'assistant', 'content': text}}]}
            if usage:
                out['usage'] = {'prompt_tokens': usage[0], 'completion_tokens': usage[1],
                                'total_tokens': usage[0] + usage[1]}
        self.send(200, out, r.get('headers'))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, verbose=False):
        super().__init__(addr, Handler)
        self.state = State()
        self.verbose = verbose

    def handle_error(self, request, client_address):
        # A client that hung up (the daemon's llm_timeout, a hang fault) is expected
        # here; anything else is still printed.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start_server(host='127.0.0.1', port=0, verbose=False):
    """Start a server in a background thread; returns (server, port)."""
    srv = Server((host, port), verbose)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file', help='write the chosen port here (atomically)')
    ap.add_argument('--verbose', action='store_true')
    ap.add_argument('--exit-with-parent', action='store_true',
                    help='exit when the process that started this one is gone')
    args = ap.parse_args()
    if args.exit_with_parent:
        parent = os.getppid()

        def watch():
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    srv = Server((args.host, args.port), args.verbose)
    port = srv.server_address[1]
    if args.port_file:
        tmp = '%s.%d.tmp' % (args.port_file, os.getpid())
        with open(tmp, 'w') as f:
            f.write('%d\n' % port)
        os.rename(tmp, args.port_file)
    else:
        print(port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
