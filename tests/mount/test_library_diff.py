"""The bundled library is crystallized code too: a standing differential test of
its procedures, run through a real mount, against independent references (Python's
standard library where it has one, otherwise a reference written from the spec).

The default run asks about 200 fixed-seed inputs per type (about 15 s in all);
the long run (marked long) asks 1500 per type.  A
mismatch names the type, the input and both answers.
"""
import base64
import binascii
import datetime
import errno
import json
import math
import os
import random
import re
import urllib.parse
import zlib
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest

getcontext().prec = 60


def ask(m, type_, data):
    """(True, answer) or (False, None) for a rejection, through query/TYPE."""
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogateescape')
    fd = os.open(m.path('query', type_), os.O_RDWR)
    try:
        os.write(fd, data)
        chunks = []
        while True:
            try:
                b = os.read(fd, 1 << 16)
            except OSError as e:
                if e.errno == errno.EINVAL:
                    return False, None
                raise
            if not b:
                break
            chunks.append(b)
        return True, b''.join(chunks)
    finally:
        os.close(fd)


# -- references: (True, answer bytes) or (False, None) for "must be rejected" --

def ok(s):
    return True, (s if isinstance(s, bytes) else s.encode('utf-8', 'surrogateescape')) + b'\n'


REJECT = (False, None)


def text_of(b):
    """Bytes as text, one final newline dropped (the library's text convention)."""
    if b.endswith(b'\n'):
        b = b[:-1]
    return b.decode('utf-8', 'surrogateescape')


def case_map(s, to_upper):
    out = []
    for c in s:
        m = c.upper() if to_upper else c.lower()
        # only one-letter forms change (ß stays); final sigma upper-cases too
        out.append(m if len(m) == 1 and not (0xd800 <= ord(c) <= 0xdfff) else c)
    return ''.join(out)


def ref_upper(b):
    return ok(case_map(text_of(b), True))


def ref_lower(b):
    return ok(case_map(text_of(b), False))


INT_RE = re.compile(r'[+-]?\d+')


def ints(b, need=2):
    """The spec's integer lists: separated by spaces/commas, magnitudes < 2^64."""
    try:
        s = b.decode('ascii')
    except UnicodeDecodeError:
        return None
    toks = [t for t in re.split(r'[\s,]+', s) if t]
    if len(toks) < need or not all(INT_RE.fullmatch(t) for t in toks):
        return None
    vals = [abs(int(t)) for t in toks]
    if any(v >= 2 ** 64 for v in vals):
        return None
    return vals


def ref_lcm(b):
    v = ints(b)
    if v is None:
        return REJECT
    r = math.lcm(*v)
    return REJECT if r >= 2 ** 64 else ok(str(r))


def ref_gcd(b):
    v = ints(b)
    return REJECT if v is None else ok(str(math.gcd(*v)))


def fmt10(x):
    """C's %.10g of the exact value x (a Fraction), never -0; None if a tie is near."""
    if x == 0:
        return '0'
    d = Decimal(x.numerator) / Decimal(x.denominator)
    e = d.adjusted()
    q = d.scaleb(-e + 9)  # ten significant digits before the point
    frac = abs(q - q.to_integral_value(rounding='ROUND_FLOOR'))
    if abs(frac - Decimal('0.5')) < Decimal('1e-6'):
        return None  # too close to a rounding tie for double arithmetic to decide
    s = '%.10g' % float(x)
    return '0' if s == '-0' else s


TEMP = {'c': (Fraction(1), Fraction(27315, 100)), 'f': (Fraction(5, 9), Fraction(45967, 100) * Fraction(5, 9)),
        'k': (Fraction(1), Fraction(0)), 'r': (Fraction(5, 9), Fraction(0))}
NUM_RE = r'([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)'


def ref_temperature(b):
    m = re.fullmatch(r'\s*' + NUM_RE + r'\s*([A-Za-z]+)\s+(?:to|in)\s+([A-Za-z]+)\s*',
                     b.decode('latin-1'), re.I)
    if not m or m.group(2).lower() not in TEMP or m.group(3).lower() not in TEMP:
        return REJECT
    v = Fraction(Decimal(m.group(1)))
    fs, fo = TEMP[m.group(2).lower()]
    ts, to = TEMP[m.group(3).lower()]
    k = v * fs + fo
    if k < 0:
        return REJECT
    r = (k - to) / ts
    if abs(r) > Fraction(1.7976931348623157e308):
        return REJECT
    s = fmt10(r)
    return ('skip', None) if s is None else ok(s)


LEN = {'mm': Fraction(1, 1000), 'cm': Fraction(1, 100), 'm': Fraction(1), 'km': Fraction(1000),
       'in': Fraction(254, 10000), 'ft': Fraction(3048, 10000), 'yd': Fraction(9144, 10000),
       'mi': Fraction(1609344, 1000), 'nmi': Fraction(1852)}


def ref_length(b):
    m = re.fullmatch(r'\s*' + NUM_RE + r'\s*([A-Za-z]+)\s+(?:to|in)\s+([A-Za-z]+)\s*',
                     b.decode('latin-1'), re.I)
    if not m or m.group(2).lower() not in LEN or m.group(3).lower() not in LEN:
        return REJECT
    v = float(m.group(1))
    if math.isinf(v):
        return REJECT
    r = Fraction(v) * LEN[m.group(2).lower()] / LEN[m.group(3).lower()]
    if abs(r) > Fraction(1.7976931348623157e308):
        return REJECT
    s = fmt10(r)
    return ('skip', None) if s is None else ok(s)


def ref_csv_sum(b):
    lines = b.decode().split('\n')
    col = lines[0].strip()
    header = lines[1].split(',')
    i = header.index(col)
    vals = [row.split(',')[i].strip() for row in lines[2:] if row]
    vals = [v for v in vals if v]
    if all(INT_RE.fullmatch(v) for v in vals):
        return ok(str(sum(int(v) for v in vals)))
    acc = 0.0
    for v in vals:
        acc += float(v)
    return ok('%.15g' % (acc if acc != 0 else 0.0))


def ref_weekday(b):
    try:
        d = datetime.date.fromisoformat(b.decode().strip())
    except ValueError:
        return REJECT
    return ok(d.strftime('%A'))


def ref_days_between(b):
    p = b.decode().split()
    try:
        d0, d1 = (datetime.date.fromisoformat(x) for x in p)
    except ValueError:
        return REJECT
    return ok(str((d1 - d0).days))


ROMAN = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),
         (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]


def roman(n):
    out = ''
    for v, s in ROMAN:
        while n >= v:
            out += s
            n -= v
    return out


def ref_int_to_roman(b):
    s = b.decode().strip()
    if not re.fullmatch(r'\+?\d+', s) or not 1 <= int(s) <= 3999:
        return REJECT
    return ok(roman(int(s)))


ROMAN_OF = {roman(i): i for i in range(1, 4000)}


def ref_roman_to_int(b):
    s = b.decode().strip().upper()
    return ok(str(ROMAN_OF[s])) if s in ROMAN_OF else REJECT


def is_prime(n):
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def ref_is_prime(b):
    s = b.decode().strip()
    if not INT_RE.fullmatch(s) or abs(int(s)) >= 2 ** 64:
        return REJECT
    return ok('true' if is_prime(int(s)) else 'false')


REFS = {
    'upper': ref_upper,
    'lower': ref_lower,
    'lcm': ref_lcm,
    'gcd': ref_gcd,
    'temperature': ref_temperature,
    'length': ref_length,
    'csv-column-sum': ref_csv_sum,
    'weekday': ref_weekday,
    'days-between': ref_days_between,
    'int-to-roman': ref_int_to_roman,
    'roman-to-int': ref_roman_to_int,
    'is-prime': ref_is_prime,
    'base64-encode': lambda b: ok(base64.b64encode(b)),
    'base64-decode': lambda b: ok(base64.b64decode(b, validate=True)),
    'hex-encode': lambda b: ok(binascii.hexlify(b)),
    'crc32': lambda b: ok('%08x' % zlib.crc32(b)),
    'rot13': lambda b: ok(text_of(b).translate(str.maketrans(
        'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
        'NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm'))),
    'reverse': lambda b: ok(text_of(b)[::-1]),
    'url-encode': lambda b: ok(urllib.parse.quote(b, safe='-._~')),
    'url-decode': lambda b: ok(urllib.parse.unquote_to_bytes(b[:-1] if b.endswith(b'\n') else b)),
    'word-count': lambda b: ok(str(len(b.split()))),
    'json-minify': lambda b: ok(json.dumps(json.loads(b), separators=(',', ':'),
                                           ensure_ascii=False)),
    'json-pretty': lambda b: ok(json.dumps(json.loads(b), indent=2, ensure_ascii=False)
                                if json.loads(b) not in ({}, []) else json.dumps(json.loads(b))),
}

# -- inputs: fixed seeds, edge cases the issue found, random ones ---------------

LETTERS = ([chr(c) for c in range(0x41, 0x5b)] + [chr(c) for c in range(0x61, 0x7b)] +
           [chr(c) for c in range(0xc0, 0x100) if c not in (0xd7, 0xf7)] +
           [chr(c) for c in range(0x100, 0x17f) if c not in (0x130, 0x131, 0x138, 0x149)] +
           [chr(c) for c in range(0x391, 0x3aa) if c != 0x3a2] +
           [chr(c) for c in range(0x3b1, 0x3ca)] +
           [chr(c) for c in range(0x410, 0x450)] +
           list(' 0123456789.,;!?-\n\t') + ['😀', '中', '€', 'ß'])


def text_inputs(rng, n):
    out = ['', 'a', 'a' * 4092 + '😀', 'a' * 4093 + '€', 'x' * 5000 + 'ß' * 3,
           'straße café', 'ÉCOLE ΣΟΦΙΑ', 'ΣΑΣ', 'line\n']
    for _ in range(n):
        k = rng.choice([1, 5, 30, 300, 4100])
        out.append(''.join(rng.choice(LETTERS) for _ in range(k)))
    return out


def bytes_inputs(rng, n):
    out = [b'', b'\n', b'\x00', b'hello', bytes(range(256))]
    for _ in range(n):
        out.append(bytes(rng.randrange(256) for _ in range(rng.choice([1, 3, 17, 200, 3000]))))
    return out


def num(rng):
    r = rng.random()
    if r < 0.3:
        return str(rng.randrange(-50, 50))
    if r < 0.5:
        return str(rng.choice([0, 1, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64]) + rng.choice([-1, 0, 1]))
    return str(rng.randrange(1, 10 ** rng.randrange(1, 21)))


def int_list_inputs(rng, n):
    out = ['18446744073709551615 2 0', '0 0', '4 6 10', '1', '', '12 x', '-4, 6',
           '18446744073709551615 18446744073709551614', '18446744073709551616 1']
    for _ in range(n):
        out.append(rng.choice([' ', ',', ', ']).join(num(rng) for _ in range(rng.randrange(1, 5))))
    return out


def decimal_text(rng):
    r = rng.random()
    if r < 0.2:
        return rng.choice(['-273.15', '-459.67', '0', '32.00001', '1e308', '-1e308', '1e-300',
                           '273.150000001', '-273.150000001', '491.67', '100', '-40', '1e10'])
    if r < 0.6:
        return '%d.%0*d' % (rng.randrange(-500, 1000), rng.randrange(1, 8), rng.randrange(0, 10 ** 5))
    return '%de%d' % (rng.randrange(-99, 100), rng.randrange(-30, 309))


def temperature_inputs(rng, n):
    out = ['1e308 C to F', '32.00001 F to C', '-459.67 F to K', '-273.15 C to F',
           '-273.150000001 C to K', '0 K to C', '100 C to F', '98.6F in C']
    for _ in range(n):
        out.append('%s %s to %s' % (decimal_text(rng), rng.choice('CFKRcf'), rng.choice('CFKRkr')))
    return out


def length_inputs(rng, n):
    out = ['1e308 mi to km', '1 mi to km', '1 nmi to mi', '1e308 mm to km', '-1e308 km to mm']
    units = list(LEN)
    for _ in range(n):
        out.append('%s %s to %s' % (decimal_text(rng), rng.choice(units), rng.choice(units)))
    return out


def csv_inputs(rng, n):
    out = ['v\nv\n9223372036854775807\n', 'v\nv\n9223372036854775807\n1\n',
           'v\nv\n-9223372036854775808\n-1\n', 'v\nv\n' + '9' * 200 + '\n1\n',
           'v\nv\n18446744073709551616\n-18446744073709551616\n', 'v\nv\n']
    for _ in range(n):
        rows = []
        for _ in range(rng.randrange(0, 8)):
            if rng.random() < 0.2:
                rows.append('%d.%d' % (rng.randrange(-100, 100), rng.randrange(0, 1000)))
            else:
                rows.append(num(rng))
        out.append('v\nk,v\n' + ''.join('r,%s\n' % x for x in rows))
    return out


def date_inputs(rng, n, two=False):
    def d():
        return '%04d-%02d-%02d' % (rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 32))
    out = ['2024-02-29', '2023-02-29', '1582-10-15', '0001-01-01', '9999-12-31']
    for _ in range(n):
        out.append('%s %s' % (d(), d()) if two else d())
    if two:
        out = ['2024-01-01 2024-03-01', '2024-03-01 2024-01-01', '0001-01-01 9999-12-31'] + out[5:]
    return out


def json_inputs(rng, n):
    def val(depth):
        r = rng.random()
        if depth > 3 or r < 0.3:
            return rng.choice([rng.randrange(-10 ** 6, 10 ** 6), 'word', 'é😀', True, False, None])
        if r < 0.65:
            return [val(depth + 1) for _ in range(rng.randrange(0, 4))]
        return {'k%d' % i: val(depth + 1) for i in range(rng.randrange(0, 4))}
    return [json.dumps(val(0), indent=rng.choice([None, 1, 4]), ensure_ascii=False)
            for _ in range(n)]


def type_inputs(t, rng, n):
    if t in ('upper', 'lower', 'rot13', 'reverse'):
        return text_inputs(rng, n)
    if t in ('lcm', 'gcd'):
        return int_list_inputs(rng, n)
    if t == 'temperature':
        return temperature_inputs(rng, n)
    if t == 'length':
        return length_inputs(rng, n)
    if t == 'csv-column-sum':
        return csv_inputs(rng, n)
    if t == 'weekday':
        return date_inputs(rng, n)
    if t == 'days-between':
        return date_inputs(rng, n, two=True)
    if t == 'int-to-roman':
        return ['0', '1', '3999', '4000', '+12', '0012'] + [str(rng.randrange(-10, 4100)) for _ in range(n)]
    if t == 'roman-to-int':
        return ['MCMXCIV', 'xiv', 'IIII', 'MMMM', ''] + [
            roman(rng.randrange(1, 4000)) if rng.random() < 0.8 else
            ''.join(rng.choice('IVXLCDM') for _ in range(rng.randrange(1, 6))) for _ in range(n)]
    if t == 'is-prime':
        return ['0', '1', '2', '-7', '18446744073709551557', '18446744073709551615',
                '18446744073709551616'] + [num(rng) for _ in range(n)]
    if t == 'base64-decode':
        return [base64.b64encode(b) for b in bytes_inputs(rng, n)]
    if t == 'url-decode':
        return [urllib.parse.quote(b, safe=rng.choice(['', '/+ '])).encode() for b in bytes_inputs(rng, n)]
    if t in ('json-minify', 'json-pretty'):
        return json_inputs(rng, n)
    return bytes_inputs(rng, n)


def check_type(m, t, n, seed):
    rng = random.Random('%s-%d' % (t, seed))
    bad, checked = [], 0
    for data in type_inputs(t, rng, n):
        if isinstance(data, str):
            data = data.encode('utf-8', 'surrogateescape')
        want = REFS[t](data)
        if want[0] == 'skip':
            continue
        got = ask(m, t, data)
        checked += 1
        if got[0] != want[0] or (got[0] and got[1] != want[1]):
            bad.append('%s %r: library %r, reference %r' % (t, data[:120], got, want))
    return checked, bad


@pytest.fixture(scope='module')
def lib(tmp_path_factory):
    from conftest import Mount
    # SEGLAM_DIFF_LIBRARY=DIR checks another copy of the library (an older one).
    other = os.environ.get('SEGLAM_DIFF_LIBRARY')
    tmp = str(tmp_path_factory.mktemp('libdiff'))
    m = (Mount(tmp, options=['-o', 'library=' + other]) if other
         else Mount(tmp, library=True)).start()
    yield m
    m.stop()


@pytest.mark.parametrize('type_', sorted(REFS))
def test_library_matches_reference(lib, type_):
    checked, bad = check_type(lib, type_, 200, 1)
    assert checked >= 100
    assert not bad, '\n'.join(bad[:10])


@pytest.mark.long
@pytest.mark.parametrize('type_', sorted(REFS))
def test_library_matches_reference_long(lib, type_):
    checked, bad = check_type(lib, type_, 1500, 2)
    assert checked >= 1000
    assert not bad, '\n'.join(bad[:10])
