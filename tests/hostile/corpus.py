"""The hostile-input corpus shared by every test in ``tests/hostile/``.

Hand-written nasty values (bodies that are not JSON, JSON that no database
stores, strings that break PostgreSQL, template and SQL injection, wrong
types) and hypothesis strategies that generate more of the same. Values are
plain Python objects or raw bytes, so each target can send them its own way
(a signed JSON body, a Bearer API call, a form field).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

MIB = 1024 * 1024

# --- strings ----------------------------------------------------------------------

NUL = "\x00"
LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00b"]
SQL_INJECTION = [
    "' OR '1'='1",
    "'; DROP TABLE commerce_customer; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(5)",
    "%' AND 1=0 UNION SELECT NULL--",
]
TEMPLATE_INJECTION = [
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "{{ request.user.password }}",
    "{% load log %}{% get_admin_log 10 as log %}",
    "{{7*7}}${7*7}<%= 7*7 %>#{7*7}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% include '/etc/passwd' %}",
]
UNICODE_EDGES = [
    "\u202eevil\u202c",  # right-to-left override
    "\u200b\u200c\u200d\ufeff",  # zero-width characters and a BOM
    "e\u0301\u0301\u0301\u0301\u0301",  # stacked combining accents
    "Z̸̢̛̰̩̥a̵̡̱̙l̷̡̰̙g̸̡̝o̵̧̤",  # zalgo
    "😀👩‍👩‍👧‍👦🏳️‍🌈",  # emoji with joiners
    "\U0010ffff",  # the last code point
    "\r\n\t\x0b\x0c\x1b[31m",  # control characters and an ANSI escape
    "ﬁ ǅ İ ß",  # case-mapping oddities
    "١٢٣",  # Arabic-Indic digits (str.isdigit() is True)
]
MARKUP = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "javascript:alert(1)"]

NASTY_STRINGS: list[str] = [
    "",
    " ",
    NUL,
    f"abc{NUL}def",
    *LONE_SURROGATES,
    *SQL_INJECTION,
    *TEMPLATE_INJECTION,
    *UNICODE_EDGES,
    *MARKUP,
    "x" * 10_000,
    "../../../../etc/passwd",
    "%00%0d%0a",
    "\\",
    "null",
    "NaN",
    "sNaN",
    "-Infinity",
    "-0",
    "1e400",
    "99999999999999999999999999999999",
]
# Only the strings a database can never store: these must always be refused.
UNSTORABLE_STRINGS = [NUL, f"abc{NUL}def", *LONE_SURROGATES]

# --- numbers and other JSON values ---------------------------------------------------

HUGE_NUMBERS: list[Any] = [
    2**31,
    2**63,
    2**70,
    -(2**70),
    10**400,
    1e308,
    -0.0,
    0.1 + 0.2,
    1e-320,  # subnormal
]
# Not representable in JSON (Python writes them as NaN/Infinity) nor in jsonb.
NON_FINITE = [float("nan"), float("inf"), float("-inf")]

WRONG_TYPES: list[Any] = [None, True, False, 0, -1, 1.5, "", "text", [], [1, 2], {}, {"a": 1}]

NASTY_VALUES: list[Any] = [*NASTY_STRINGS, *HUGE_NUMBERS, *NON_FINITE, *WRONG_TYPES]


def unstorable(value: Any) -> bool:
    """True when a string anywhere in ``value`` (keys too) holds a NUL or a lone
    surrogate: no PostgreSQL text or jsonb column can store it."""
    if isinstance(value, str):
        return NUL in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


def deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# --- raw bodies --------------------------------------------------------------------

# Bodies that are not a JSON object at all (or not JSON): every JSON endpoint
# must answer them with a 4xx.
MALFORMED_BODIES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"  \n\t ",
    "truncated": b'{"type": "order.created", "data": {"id": "1"',
    "open_brace": b"{",
    "trailing_comma": b'{"a": 1,}',
    "single_quotes": b"{'a': 1}",
    "comments": b'{"a": 1 /* hi */}',
    "null": b"null",
    "number": b"42",
    "string": b'"text"',
    "list": b"[1, 2, 3]",
    "nan_literal": b"NaN",
    "infinity_literal": b"Infinity",
    "nan_in_object": b'{"a": NaN}',
    "negative_infinity_in_object": b'{"a": -Infinity}',
    "huge_exponent": b"1e400",
    "deep_list_10000": deep_list(10_000),
    "deep_object_10000": deep_object(10_000),
    "deep_list_100": deep_list(100),
    "invalid_utf8": b'{"a": "\xff\xfe"}',
    "latin1": '{"a": "caf\xe9"}'.encode("latin-1"),
    "utf16": '{"a": 1}'.encode("utf-16"),
    "utf8_bom": b'\xef\xbb\xbf{"a": 1}',
    "raw_nul_byte": b'{"a": "x\x00y"}',
    "nul_outside_string": b'{"a": 1}\x00',
    "two_documents": b'{"a": 1}{"b": 2}',
    "form_encoded": b"a=1&b=2",
    "xml": b'<?xml version="1.0"?><a>1</a>',
    "binary": bytes(range(256)),
}


def huge_string_body(size: int, key: str = "pad") -> bytes:
    """A JSON object of about ``size`` bytes (one long string)."""
    overhead = len(json.dumps({key: ""}))
    return json.dumps({key: "x" * max(size - overhead, 0)}).encode()


def dumps_loose(value: Any) -> bytes:
    """JSON as Python writes it: NaN/Infinity literals, lone surrogates as \\ud800."""
    return json.dumps(value, allow_nan=True).encode()


def with_duplicate_key(body: dict, key: str, first: Any) -> bytes:
    """``body`` as JSON with ``key`` given twice: ``first``, then the real value
    (most parsers keep the last)."""
    rest = json.dumps(body)[1:]
    return ("{" + json.dumps(key) + ": " + json.dumps(first) + ", " + rest).encode()


# --- mutating a valid payload --------------------------------------------------------


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside nested dicts and lists (not the root)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def replaced(value: Any, path: tuple, new: Any) -> Any:
    """A deep copy of ``value`` with the item at ``path`` set to ``new``."""
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def removed(value: Any, path: tuple) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


# The hand-written values every field of every payload gets (the rest of the
# corpus reaches the fields through the hypothesis strategies below).
FIELD_VALUES: list[Any] = [
    f"abc{NUL}def",
    [],
    "\ud800",
    "x" * 5000,
    2**70,
    float("-inf"),
    {},
    True,
]


def rotation(values: list[Any], index: int, always: int = 2, extra: int = 2) -> list[Any]:
    """The first ``always`` values, then ``extra`` of the rest taken in turn by
    ``index``: every field gets the worst values, and the rest of the list is
    spread over the fields, so a payload's cases stay few enough to run."""
    rest = values[always:]
    picked = [rest[(index * extra + k) % len(rest)] for k in range(min(extra, len(rest)))]
    return [*values[:always], *picked]


def hand_mutations(base: dict, values: list[Any] | None = None) -> list[tuple[str, Any]]:
    """(id, payload) pairs: each field of ``base`` replaced by the first two
    values and two more in rotation (see :func:`rotation`)."""
    values = values if values is not None else FIELD_VALUES
    out = []
    for index, path in enumerate(paths(base)):
        for value in rotation(values, index):
            case_id = f"{'.'.join(map(str, path))}={values.index(value)}"
            out.append((case_id, replaced(base, path, value)))
    return out


# --- hypothesis strategies -------------------------------------------------------------

# Characters from everywhere, surrogates and NUL included, with a bias to the nasty ones.
any_char = st.characters(exclude_categories=())
nasty_char = st.sampled_from(
    [NUL, "\ud800", "\udfff", "\u202e", "\u200b", "\u0301", "😀", "'", '"', "{", "%", "\\", "\n"]
)
hostile_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(alphabet=st.one_of(any_char, nasty_char), max_size=40),
    st.text(alphabet=nasty_char, min_size=1, max_size=10),
)
hostile_numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)
json_scalars = st.one_of(st.none(), st.booleans(), hostile_numbers, hostile_text)
# Any JSON document (finite numbers; text may hold surrogates and NULs).
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), hostile_text), children, max_size=4),
    ),
    max_leaves=12,
)
# The same, with NaN and infinities (sent with Python's loose JSON writer).
loose_json_values = st.one_of(json_values, st.sampled_from(NON_FINITE))


@st.composite
def mutated(draw, base: dict) -> Any:
    """``base`` with one field replaced by a hostile value, removed, or an
    unexpected field added; sometimes two changes."""
    out = base
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        candidates = list(paths(out))
        how = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if how == "add" or not candidates:
            out = copy.deepcopy(out) if isinstance(out, dict) else {}
            out[draw(hostile_text)] = draw(loose_json_values)
            continue
        path = draw(st.sampled_from(candidates))
        if how == "remove":
            out = removed(out, path)
        else:
            out = replaced(out, path, draw(loose_json_values))
    return out


# --- form fields ---------------------------------------------------------------------------

# What a browser (or a script) can put in a form field: any text but lone
# surrogates (a request body is bytes; Django decodes with "replace").
form_text = st.one_of(
    st.sampled_from([s for s in NASTY_STRINGS if s not in LONE_SURROGATES]),
    st.text(
        alphabet=st.one_of(
            st.characters(exclude_categories=("Cs",)),
            st.sampled_from([NUL, "\u202e", "\u200b", "'", "{", "%", "\n"]),
        ),
        max_size=40,
    ),
)
FORM_VALUES = [
    *[s for s in NASTY_STRINGS if s not in LONE_SURROGATES],
    str(2**70),
    "-1",
    "1e400",
    "NaN",
    "9999-12-31T23:59",
    "0001-01-01T00:00",
    "2026-02-30T10:00",
]
# The short list every form field gets by hand.
FORM_FIELD_VALUES = [
    NUL,
    f"abc{NUL}def",
    "x" * 10_000,
    str(2**70),
    "-1",
    "1e400",
    SQL_INJECTION[1],
    TEMPLATE_INJECTION[0],
    UNICODE_EDGES[0],
    "١٢٣",
    "0001-01-01T00:00",
]
