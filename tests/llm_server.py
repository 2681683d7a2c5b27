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
  POST /_reset    forget the script, the calls and the api_key.
  GET  /_calls    {"count": N, "calls": [{"path", "protocol", "headers", "body",
                  "prompt", "type"}...]} (headers with lower-case names).

A response is one of:
  {"kind": "code", "code": "...", "tests": [["in", "out"], ...]}
        a realistic reply: prose, a ```c fence, optionally a ```tests block
  {"kind": "text", "text": "..."}        the reply text as is
  {"kind": "status", "status": 429, "headers": {...}, "body": {...} or "..."}
        an error; without a body, the protocol's usual error shape
  {"kind": "malformed"}                  200 with a body that is not JSON
  {"kind": "slow", "delay": 5, "then": {...}}   wait, then serve "then" (auto)
  {"kind": "hang"}                       read the request, never answer
  {"kind": "compose", "callee": "T", "code": "...", "tests": [...]}
        as "code", but only when the prompt offers type T in its list of existing
        types that may be called (composition); otherwise a reply with no code
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


def wrap_code(code, tests=None):
    text = ('Here is a procedure for this type. It handles the general case and '
            'rejects invalid input.\n\n```c\n' + code.rstrip('\n') + '\n```\n')
    if tests:
        text += '\nSome extra cases:\n\n```tests\n'
        text += ''.join('%s => %s\n' % (i, o) for i, o in tests)
        text += '```\n'
    return text + '\nThe answer ends with a newline, as usual.\n'


def compose_reply(r, prompt):
    """The "compose" responder: code calling r['callee'] if the prompt lists it."""
    callee = r.get('callee', '')
    listed = re.search(r'^### ' + re.escape(callee) + r'$', prompt, re.M)
    if callee and listed and 'seglam_call' in prompt:
        return wrap_code(r.get('code', ''), r.get('tests'))
    return 'There is no existing type %r to build on, so no code.' % callee


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.script = []
        self.default = {'kind': 'auto'}
        self.calls = []
        self.api_key = None

    def next_response(self):
        with self.lock:
            if self.script:
                return self.script.pop(0)
            return self.default


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
                self.send(200, {'count': len(st.calls), 'calls': st.calls})
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
        with st.lock:
            st.calls.append({'path': self.path, 'protocol': proto, 'headers': headers,
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
        self.respond(proto, st.next_response(), body, prompt, typ)

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
            text = wrap_code(r.get('code', ''), r.get('tests'))
        elif kind == 'compose':
            text = compose_reply(r, prompt)
        elif kind == 'text':
            text = r.get('text', '')
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
