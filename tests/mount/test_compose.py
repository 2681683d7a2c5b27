"""Composition: procedures call procedures with seglam_call (DESIGN.md, "Composition").

Real mounts: composed answers, edits of a callee reaching its callers, cycles, depth,
unknown and failing callees, the worker cap, and synthesis of a type that calls
an existing one.
"""
import errno
import os
import subprocess

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
