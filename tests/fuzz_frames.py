"""Seeded generators of hostile frames for the fuzz test: mutations of valid frames, and garbage.

Every generator takes a ``random.Random`` so one seed replays the whole run. Values come as raw JSON text, since
much of what is interesting here (``1e400``, ``NaN``, invalid UTF-8, 3,000 levels) cannot be built as a Python
value and encoded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from random import Random
from typing import Any

import orjson

Nasty = Callable[[Random], bytes]
Path = tuple[str | int, ...]

_PLACEHOLDER = "\x00fuzz\x00"
_PLACEHOLDER_JSON = orjson.dumps(_PLACEHOLDER)
TELEMETRY_PREFIXES = (b"OTLP", b"MTRC", b"LOGS")  # binary frames the worker port drops unread, by design


def _deep(low: int, high: int) -> Nasty:
    def make(rng: Random) -> bytes:
        depth = rng.randint(low, high)
        if rng.random() < 0.5:
            return b"[" * depth + b"1" + b"]" * depth
        return b'{"a":' * depth + b"1" + b"}" * depth
    return make


def _bad_utf8(rng: Random) -> bytes:
    """A string holding a byte no UTF-8 text has there (a lone continuation byte, or one never used)."""
    never = bytes([rng.choice([0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFE, 0xFF])])
    return b'"ok' + never + bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(0, 7))) + b'"'


def _huge_string(limit: int) -> Nasty:
    return lambda rng: b'"' + b"x" * rng.randint(1000, limit) + b'"'


def _const(*choices: bytes) -> Nasty:
    return lambda rng: rng.choice(choices)


# Values that make any frame unusable, wherever they sit.
ALWAYS_INVALID: list[Nasty] = [
    _const(b"1e400", b"-1e400", b"1e99999", b"NaN", b"Infinity", b"-Infinity", b"nan", b"+1", b"01", b"0x10"),
    _deep(251, 3000),
    _bad_utf8,
    _const(b"[1,2", b'{"a"', b"tru", b'{"a":1,}', b"[,]", b"'single'", b"}"),  # broken whatever follows
]

# Values that are valid JSON; whether a frame holding one is usable depends on where it sits.
def maybe_invalid(huge: int) -> list[Nasty]:
    """Big integers, huge strings (up to ``huge`` bytes), wrong types, odd escapes, nesting up to the limit."""
    return [
        _const(*(str(n).encode() for n in (2**63, 2**64, 2**70, -(2**65), 10**30, -(10**40), 2**63 - 1))),
        _huge_string(huge),
        _const(b"0", b"-1", b"1.5", b"true", b"false", b"null", b"[]", b"{}", b'""', b'"s"', b"[null]"),
        _const(b'"\\u0000"', b'"\\ud800"', b'"\\n\\t\\u001f"', b'"\xc3\xa9\xf0\x9f\x98\x80"', b'"\\"\\\\"'),
        _deep(60, 250),
        _const(b"1e308", b"-0.0", b"5e-324", b"1.7976931348623157e308", b"123456789012345678901234567890.5"),
    ]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a value inside ``value`` (not the root)."""
    found: list[Path] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def with_raw(value: Any, path: Path, raw: bytes) -> bytes:
    """``value`` encoded, with the value at ``path`` replaced by the raw JSON text ``raw``."""
    changed = copy.deepcopy(value)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = _PLACEHOLDER
    return orjson.dumps(changed).replace(_PLACEHOLDER_JSON, raw, 1)


def replace_value(rng: Random, value: Any, nasty: list[Nasty], protect: frozenset[str] = frozenset(),
                  new_keys: bool = True) -> bytes:
    """``value`` with one value (or, with ``new_keys``, a new key of an object) replaced by a nasty one.

    A new key is an unknown field, which decoders skip without parsing numbers or checking UTF-8: a frame
    holding ``"extra": 1e400`` is still a valid message.
    """
    candidates = [p for p in paths(value) if not (len(p) == 1 and p[0] in protect)]
    objects = [p for p in [(), *paths(value)] if isinstance(_at(value, p), dict)]
    if new_keys and (not candidates or rng.random() < 0.2):
        path: Path = (*rng.choice(objects), rng.choice(["extra", "type", "id", "data", "\u00e9"]))
    else:
        path = rng.choice(candidates)
    return with_raw(value, path, rng.choice(nasty)(rng))


def _at(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def mutate_bytes(rng: Random, data: bytes, keep: int = 0) -> bytes:
    """A byte-level mutation after the first ``keep`` bytes: cut, flip, insert, delete or repeat a slice."""
    if len(data) <= keep + 1:
        return data + b"\xff"
    pos = rng.randint(keep + 1, len(data) - 1)
    kind = rng.randrange(5)
    if kind == 0:
        return data[:pos]
    if kind == 1:
        return data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1:]
    if kind == 2:
        return data[:pos] + rng.randbytes(rng.randint(1, 4)) + data[pos:]
    if kind == 3:
        return data[:pos] + data[pos + 1:]
    end = min(len(data), pos + rng.randint(1, 40))
    return data[:end] + data[pos:end] * rng.randint(1, 20) + data[end:]


def garbage(rng: Random, huge: int) -> bytes:
    """A frame no protocol message looks like: random bytes or text, bare scalars, deep arrays, bad UTF-8."""
    kind = rng.randrange(6)
    if kind == 0:
        frame = rng.randbytes(rng.randint(1, 2000))
    elif kind == 1:
        frame = bytes(rng.choices(b" {}[]:,\"0123456789.eE+-abcdefnrtulsx\\", k=rng.randint(1, 500)))
    elif kind == 2:
        frame = rng.choice([*ALWAYS_INVALID, *maybe_invalid(huge)])(rng)
    elif kind == 3:  # not a string: a string names a message type a newer peer may know, which is ignored
        frame = b'{"type":' + rng.choice([*ALWAYS_INVALID, _const(b"0", b"null", b"[]", b"{}", b"2e400")])(rng) + b"}"
    elif kind == 4:
        frame = _bad_utf8(rng)
    else:
        frame = b"[" * rng.randint(1000, 100_000)
    if not frame.strip() or frame[:4] in TELEMETRY_PREFIXES:
        frame = b"\x01" + frame
    return frame


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
