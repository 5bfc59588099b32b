"""The one check every value passes before it may enter a store: it must be writable as the wire JSON.

Why: the stores, the fan-out and the journals all encode values with orjson, which refuses integers outside
the 64-bit range, non-string keys and nesting past 254 levels, and silently writes NaN/Infinity as ``null``. A
value that fails there after it was stored wedges whatever encodes it next (a journal, a join's snapshot, an
event). So the engine checks a value once, where it enters (``stream.set`` data, each ``stream.update`` op
value, ``stream.send`` data, REST bodies), and refuses it with ``invalid_value`` naming the field and the spot
inside it; nothing downstream checks again.

Depth counts containers: ``1`` and ``"x"`` are 0 levels, ``{}`` and ``[1]`` are 1, ``{"a": [1]}`` is 2. An update
op's value is counted with the levels of the path it is stored under, so an update can never build an item
nested deeper than the limit either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from types import NoneType
from typing import Any, TypeAlias

from streamhub.core.update_ops import MAX_PATH_DEPTH, AppendOp, MergeOp, RemoveOp, SetOp, UpdateOp
from streamhub.errors import InvalidRequest

__all__ = ["DEFAULT_MAX_DEPTH", "INVALID_VALUE", "check_ops", "check_value"]

INVALID_VALUE = "invalid_value"
DEFAULT_MAX_DEPTH = 64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson encodes: i64 and u64
_LABEL_CHARS = 120  # a path shown in a message is cut here
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

_Trail: TypeAlias = "tuple[_Trail, str | int] | None"
"""Where a node sits: ``(parent trail, key or index)``, built only for containers; ``None`` is the value itself."""
_Problem: TypeAlias = "tuple[_Trail, str]"
_Pending: TypeAlias = "tuple[Any, int, _Trail]"
"""A container still to scan: (container, its level, its trail)."""
_LEAVES = frozenset({str, bool, NoneType})
_CONTAINERS = frozenset({dict, list})


def check_value(value: Any, where: str, max_depth: int, *, depth: int = 0) -> None:
    """Refuse ``value`` unless it is JSON the wire can carry, nested at most ``max_depth`` levels.

    Args:
        value: the decoded value (exact ``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` only).
        where: the field, as the message should start: ``stream.set: data``.
        max_depth: the nesting limit (``max_value_depth``).
        depth: levels the value will sit under once stored (an update op's path).

    Raises:
        InvalidRequest: code ``invalid_value``, e.g. ``stream.set: data.n: integer 1180591620717411303424 is
            outside the 64-bit range``.
    """
    kind = type(value)
    problem = _walk(value, max_depth, depth) if kind is dict or kind is list else _problem(value, max_depth, depth)
    if problem is not None:
        trail, reason = problem
        raise InvalidRequest(f"{where}{_label(trail)}: {reason}", code=INVALID_VALUE)


def check_ops(ops: Sequence[UpdateOp], where: str, max_depth: int) -> None:
    """Check the value of every op of a ``stream.update``, counted at the depth of its path.

    An op whose path breaks the update-op limits is left to ``apply_ops``, which refuses it with its own code.

    Raises:
        InvalidRequest: code ``invalid_value``, e.g. ``stream.update: ops[2].value.n: integer ... is outside ...``.
    """
    for index, op in enumerate(ops):
        if isinstance(op, RemoveOp) or len(op.segments) > MAX_PATH_DEPTH:
            continue
        # increment/decrement create objects along their path; append pushes into an array at its path
        levels = len(op.segments) + isinstance(op, AppendOp)
        if isinstance(op, SetOp | MergeOp | AppendOp):
            problem = _problem(op.value, max_depth, levels)
            field = "value"
        else:
            problem = _problem(None, max_depth, levels)
            field = "path"
        if problem is not None:
            trail, reason = problem
            raise InvalidRequest(f"{where}: ops[{index}].{field}{_label(trail)}: {reason}", code=INVALID_VALUE)


def _problem(value: Any, max_depth: int, depth: int) -> _Problem | None:
    """What is wrong with ``value`` and where, or None."""
    kind = type(value)
    if kind is dict or kind is list:
        return _walk(value, max_depth, depth)
    if depth > max_depth:
        return None, _too_deep(max_depth, depth)
    if kind is str or value is None or kind is bool:
        return None
    reason = _scalar_problem(value)
    return None if reason is None else (None, reason)


def _walk(root: Any, max_depth: int, base: int) -> _Problem | None:
    """Depth-first over the containers of ``root`` without recursion: scalars are checked in place, containers
    pushed with their level (``root`` is level ``base + 1``) and a trail to name them if they fail."""
    stack: list[_Pending] = [(root, base + 1, None)]
    push, pop = stack.append, stack.pop
    while stack:
        node, level, trail = pop()
        if level > max_depth:
            return trail, _too_deep(max_depth, base)
        problem = (_scan_dict if type(node) is dict else _scan_list)(node, level, trail, push)
        if problem is not None:
            return problem
    return None


def _scan_dict(node: dict[Any, Any], level: int, trail: _Trail, push: Callable[[_Pending], None]) -> _Problem | None:
    for key, child in node.items():
        kind = type(child)
        if type(key) is not str:
            return trail, f"key {_short(repr(key))} is not a string"
        if kind in _LEAVES:
            continue
        if kind in _CONTAINERS:
            push((child, level + 1, (trail, key)))
            continue
        if (kind is int and _INT_MIN <= child <= _INT_MAX) or (kind is float and child - child == 0.0):
            continue  # x - x is nan for nan and for +-inf
        return (trail, key), _scalar_problem(child) or "is not a JSON value"
    return None


def _scan_list(node: list[Any], level: int, trail: _Trail, push: Callable[[_Pending], None]) -> _Problem | None:
    for index, child in enumerate(node):  # the same steps as _scan_dict, minus the key check (hot path)
        kind = type(child)
        if kind in _LEAVES:
            continue
        if kind in _CONTAINERS:
            push((child, level + 1, (trail, index)))
            continue
        if (kind is int and _INT_MIN <= child <= _INT_MAX) or (kind is float and child - child == 0.0):
            continue
        return (trail, index), _scalar_problem(child) or "is not a JSON value"
    return None


def _scalar_problem(value: Any) -> str | None:
    kind = type(value)
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return None
        shown = str(value) if value.bit_length() <= 256 else f"of {value.bit_length()} bits"
        return f"integer {shown} is outside the 64-bit range"
    if kind is float:
        return None if value - value == 0.0 else f"{value} is not a JSON number (no NaN or Infinity)"
    return f"a {kind.__name__} is not a JSON value (only objects, arrays, strings, numbers, booleans and null)"


def _too_deep(max_depth: int, path_levels: int) -> str:
    reason = f"nested deeper than {max_depth} levels"
    return reason + (f" (counting the {path_levels} levels it is stored under)" if path_levels else "")


def _label(trail: _Trail) -> str:
    """``.items[3].name`` for a trail; keys that are not identifiers are quoted: ``["a b"]``."""
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _IDENTIFIER.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append(f"[{json.dumps(key, ensure_ascii=False)}]")
    return _short("".join(reversed(parts)))


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"
