"""The atomic update ops of ``stream.update``: parse them from the wire, apply them to an item's value.

The semantics follow the reference engine's newer op set (``set``, ``merge``, ``increment``, ``decrement``,
``append``, ``remove``; nested paths as lists of segments; path and merge-value limits; ``__proto__`` guards)
with one deliberate difference: an update is all-or-nothing. The first op that cannot apply raises
``UpdateOpError`` carrying the reference's per-op code, and the caller stores nothing. A string ``path`` is
always one literal top-level key (dots are not separators); ``""`` and ``[]`` mean the root.

Applying never mutates the caller's value or the ops: containers along each touched path are copied on first
write (unchanged branches are shared with the input) and stored op values are deep-copied.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias

from streamhub.errors import InvalidRequest, UpdateOpError

__all__ = [
    "MAX_MERGE_KEYS", "MAX_MERGE_VALUE_DEPTH", "MAX_PATH_DEPTH", "MAX_SEGMENT_BYTES", "OP_TYPES",
    "AppendOp", "DecrementOp", "IncrementOp", "MergeOp", "OpPath", "RemoveOp", "SetOp", "UpdateOp",
    "apply_ops", "parse_ops",
]

MAX_PATH_DEPTH = 32
MAX_SEGMENT_BYTES = 256
MAX_MERGE_VALUE_DEPTH = 16
MAX_MERGE_KEYS = 1024
OP_TYPES = ("set", "merge", "increment", "decrement", "append", "remove")
_PROTO_KEYS = frozenset({"__proto__", "constructor", "prototype"})
# Integers must stay encodable by the JSON codecs (64-bit); the reference uses the same i64/u64 range.
_BY_RANGE = (-(2**63), 2**63 - 1)
_RESULT_RANGE = (-(2**63), 2**64 - 1)

OpPath: TypeAlias = str | tuple[str, ...]
"""One literal top-level key (``""`` = root) or a tuple of segments (``()`` = root)."""


@dataclass(frozen=True, slots=True)
class UpdateOp:
    """Base of the six op classes; Python callers build ops here: ``UpdateOp.set("done", True)``."""

    kind: ClassVar[str]
    path: OpPath

    def __post_init__(self) -> None:
        if not isinstance(self.path, str):  # a list given by a caller: keep the op immutable
            object.__setattr__(self, "path", tuple(self.path))

    @property
    def segments(self) -> tuple[str, ...]:
        """The path as segments: a string is one literal key, ``""`` is the root."""
        if isinstance(self.path, str):
            return (self.path,) if self.path else ()
        return self.path

    def to_wire(self) -> dict[str, Any]:
        """The op as a JSON object for ``stream::update`` (values are not copied)."""
        wire = {field.name: getattr(self, field.name) for field in fields(self)}
        wire["path"] = self.path if isinstance(self.path, str) else list(self.path)
        return {"type": self.kind, **wire}

    @staticmethod
    def set(path: str | Sequence[str], value: Any = None) -> SetOp:
        """Store ``value`` at ``path`` (``""`` replaces the whole value)."""
        return SetOp(_as_path(path), value)

    @staticmethod
    def merge(value: dict[str, Any], path: str | Sequence[str] = "") -> MergeOp:
        """Shallow-merge the object ``value`` into the object at ``path`` (default: the root)."""
        return MergeOp(_as_path(path), value)

    @staticmethod
    def increment(path: str | Sequence[str], by: int = 1) -> IncrementOp:
        """Add ``by`` to the number at ``path`` (a missing field starts at 0)."""
        return IncrementOp(_as_path(path), by)

    @staticmethod
    def decrement(path: str | Sequence[str], by: int = 1) -> DecrementOp:
        """Subtract ``by`` from the number at ``path`` (a missing field starts at 0)."""
        return DecrementOp(_as_path(path), by)

    @staticmethod
    def append(path: str | Sequence[str], value: Any) -> AppendOp:
        """Push ``value`` onto the array at ``path``, or concatenate it to the string there."""
        return AppendOp(_as_path(path), value)

    @staticmethod
    def remove(path: str | Sequence[str]) -> RemoveOp:
        """Delete the key at ``path`` (``""`` sets the whole value to null)."""
        return RemoveOp(_as_path(path))


@dataclass(frozen=True, slots=True)
class SetOp(UpdateOp):
    """``{"type": "set", "path": ..., "value": ...}``; an absent value is null."""

    kind: ClassVar[str] = "set"
    value: Any = None


@dataclass(frozen=True, slots=True)
class MergeOp(UpdateOp):
    """``{"type": "merge", "path"?: ..., "value": {...}}``; shallow merge, creating objects along the path."""

    kind: ClassVar[str] = "merge"
    value: Any


@dataclass(frozen=True, slots=True)
class IncrementOp(UpdateOp):
    """``{"type": "increment", "path": ..., "by": int}``."""

    kind: ClassVar[str] = "increment"
    by: int


@dataclass(frozen=True, slots=True)
class DecrementOp(UpdateOp):
    """``{"type": "decrement", "path": ..., "by": int}``."""

    kind: ClassVar[str] = "decrement"
    by: int


@dataclass(frozen=True, slots=True)
class AppendOp(UpdateOp):
    """``{"type": "append", "path"?: ..., "value": ...}``; array push or string concatenation."""

    kind: ClassVar[str] = "append"
    value: Any


@dataclass(frozen=True, slots=True)
class RemoveOp(UpdateOp):
    """``{"type": "remove", "path": ...}``; removing a missing key is not an error."""

    kind: ClassVar[str] = "remove"


# Parsing (wire shapes only; limits and semantics are checked when applying)


def parse_ops(raw: object) -> list[UpdateOp]:
    """Turn the decoded ``ops`` field into op objects, refusing any shape the wire does not allow.

    Raises:
        InvalidRequest: naming the offending field, e.g. ``ops[2].by must be an integer, got str``.
    """
    if not isinstance(raw, list):
        raise InvalidRequest(f"ops must be a list, got {_type_name(raw)}")
    return [_parse_op(index, item) for index, item in enumerate(raw)]


def _parse_op(index: int, raw: object) -> UpdateOp:
    where = f"ops[{index}]"
    if isinstance(raw, UpdateOp):  # in-process callers may pass op objects
        return raw
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object, got {_type_name(raw)}")
    if "type" not in raw:
        raise InvalidRequest(f"{where}.type is required")
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in OP_TYPES:
        shown = json.dumps(kind, ensure_ascii=False) if isinstance(kind, str) else _type_name(kind)
        raise InvalidRequest(f"{where}.type must be one of {', '.join(OP_TYPES)}; got {shown}")
    path = _parse_path(where, raw, optional=kind in ("merge", "append"))
    if kind == "set":
        return SetOp(path, raw.get("value"))
    if kind == "remove":
        return RemoveOp(path)
    if kind in ("increment", "decrement"):
        by = _parse_by(where, raw)
        return IncrementOp(path, by) if kind == "increment" else DecrementOp(path, by)
    if "value" not in raw:
        raise InvalidRequest(f"{where}.value is required")
    return MergeOp(path, raw["value"]) if kind == "merge" else AppendOp(path, raw["value"])


def _parse_path(where: str, raw: dict[str, Any], *, optional: bool) -> OpPath:
    """A string or a list of strings; merge/append may leave it out (or send null) to mean the root."""
    path = raw.get("path")
    if path is None and optional:
        return ""
    if "path" not in raw:
        raise InvalidRequest(f"{where}.path is required")
    if isinstance(path, str):
        return path
    if not isinstance(path, list):
        raise InvalidRequest(f"{where}.path must be a string or a list of strings, got {_type_name(path)}")
    for position, segment in enumerate(path):
        if not isinstance(segment, str):
            raise InvalidRequest(f"{where}.path[{position}] must be a string, got {_type_name(segment)}")
    return tuple(path)


def _parse_by(where: str, raw: dict[str, Any]) -> int:
    if "by" not in raw:
        raise InvalidRequest(f"{where}.by is required")
    by = raw["by"]
    if isinstance(by, bool) or not isinstance(by, int):
        raise InvalidRequest(f"{where}.by must be an integer, got {_type_name(by)}")
    if not _BY_RANGE[0] <= by <= _BY_RANGE[1]:
        raise InvalidRequest(f"{where}.by must fit in a signed 64-bit integer, got {by}")
    return by


# Applying


class _Failure(Exception):
    """An op cannot apply; ``apply_ops`` turns it into ``UpdateOpError`` with the op's index and path."""

    def __init__(self, code: str, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem


class _Draft:
    """The value being built. Containers reached from the input are copied on first write; containers this
    draft made (kept in ``_mine``, which also keeps their ids from being reused) are then edited in place."""

    __slots__ = ("_mine", "missing", "root")

    def __init__(self, current: Any, exists: bool) -> None:
        self.root = current
        self.missing = not exists  # root increment/decrement/append see "no value" rather than ``{}``
        self._mine: dict[int, Any] = {}

    def adopt(self, container: Any) -> Any:
        self._mine[id(container)] = container
        return container

    def writable(self, container: Any) -> Any:
        """``container`` itself if this draft made it, else a shallow copy this draft now owns."""
        if id(container) in self._mine:
            return container
        return self.adopt(dict(container) if isinstance(container, dict) else list(container))


def apply_ops(current: Any, exists: bool, ops: Sequence[UpdateOp]) -> Any:
    """Return the value after applying ``ops`` in order to ``current`` (``{}`` when the item does not exist).

    Neither ``current`` nor the ops are modified. The result may share unchanged branches with ``current`` (it
    is ``current`` itself when no op changed anything), so treat both as immutable.

    Raises:
        UpdateOpError: for the first op that cannot apply; then nothing should be stored.
    """
    draft = _Draft(current, exists)
    for index, op in enumerate(ops):
        try:
            _check_path(op.kind, op.segments)
            _apply(draft, op)
        except _Failure as failure:
            raise UpdateOpError(index, failure.code, _reason(op, failure)) from None
        draft.missing = False
    return draft.root


def _apply(draft: _Draft, op: UpdateOp) -> None:
    match op:
        case SetOp():
            _apply_set(draft, op)
        case MergeOp():
            _apply_merge(draft, op)
        case IncrementOp():
            _apply_add(draft, op, op.by)
        case DecrementOp():
            _apply_add(draft, op, -op.by)
        case AppendOp():
            _apply_append(draft, op)
        case RemoveOp():
            _apply_remove(draft, op)
        case _:
            raise TypeError(f"not an update op: {op!r}")


def _apply_set(draft: _Draft, op: SetOp) -> None:
    segments = op.segments
    if not segments:
        draft.root = _clone(op.value)
        return
    parent = _walk(draft, op.kind, segments[:-1], replace=False)
    parent[segments[-1]] = _clone(op.value)


def _apply_merge(draft: _Draft, op: MergeOp) -> None:
    """Root merge needs an object there; a nested merge replaces non-objects on its way (RFC 7396 style)."""
    _check_merge_value(op.value)
    if op.segments:
        target = _walk(draft, op.kind, op.segments, replace=True)
    elif isinstance(draft.root, dict):
        target = draft.root = draft.writable(draft.root)
    else:
        raise _Failure("merge.target_not_object", f"current value is {_describe(draft.root)}, not an object")
    target.update((key, _clone(value)) for key, value in op.value.items())


def _apply_add(draft: _Draft, op: IncrementOp | DecrementOp, delta: int) -> None:
    segments = op.segments
    if not segments:
        draft.root = _add(op.kind, 0 if draft.missing else draft.root, delta)
        return
    parent = _walk(draft, op.kind, segments[:-1], replace=False)
    key = segments[-1]
    parent[key] = _add(op.kind, parent.get(key, 0), delta)


def _apply_append(draft: _Draft, op: AppendOp) -> None:
    """A missing root or single-key target takes a string as is; a missing nested leaf becomes a list."""
    segments = op.segments
    if not segments:
        draft.root = _appended(draft, None if draft.missing else draft.root, op.value)
        return
    parent = _walk(draft, op.kind, segments[:-1], replace=True)
    key = segments[-1]
    if key in parent:
        parent[key] = _appended(draft, parent[key], op.value)
    elif len(segments) > 1:
        parent[key] = draft.adopt([_clone(op.value)])
    else:
        parent[key] = _appended(draft, None, op.value)


def _apply_remove(draft: _Draft, op: RemoveOp) -> None:
    segments = op.segments
    if not segments:
        draft.root = None
        return
    node = draft.root
    if not isinstance(node, dict):
        raise _Failure("remove.target_not_object", f"current value is {_describe(node)}, not an object")
    for segment in segments[:-1]:  # look first: removing a missing path must not create anything
        node = node.get(segment)
        if node is None:
            return
        if not isinstance(node, dict):
            raise _not_object(op.kind, segment, node)
    if segments[-1] in node:
        del _walk(draft, op.kind, segments[:-1], replace=False)[segments[-1]]


def _walk(draft: _Draft, kind: str, segments: Sequence[str], *, replace: bool) -> dict[str, Any]:
    """The writable object at ``segments``, creating missing or null objects on the way.

    The root must be an object (``<kind>.target_not_object``), except for merge which replaces it. A
    non-object met on the way is replaced by ``{}`` when ``replace`` (merge, append), else refused.
    """
    root = draft.root
    if isinstance(root, dict):
        node: dict[str, Any] = draft.writable(root)
    elif kind == "merge":
        node = draft.adopt({})
    else:
        raise _Failure(f"{kind}.target_not_object", f"current value is {_describe(root)}, not an object")
    draft.root = node
    for segment in segments:
        child = node.get(segment)
        if isinstance(child, dict):
            child = draft.writable(child)
        elif child is None or replace:
            child = draft.adopt({})
        else:
            raise _not_object(kind, segment, child)
        node[segment] = child
        node = child
    return node


def _add(kind: str, current: Any, delta: int) -> int | float:
    """``current + delta`` for a JSON number; ints stay exact, floats use float arithmetic."""
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise _Failure(f"{kind}.not_number", f"current value is {_describe(current)}, not a number")
    total = current + delta
    if isinstance(total, int) and not _RESULT_RANGE[0] <= total <= _RESULT_RANGE[1]:
        raise _Failure(f"{kind}.not_number", f"the result {total} does not fit in a 64-bit integer")
    if isinstance(total, float) and not math.isfinite(total):
        raise _Failure(f"{kind}.not_number", f"the result {total} is not a finite number")
    return total


def _appended(draft: _Draft, target: Any, value: Any) -> Any:
    """``target`` after appending ``value``: list push, string concatenation, or a fresh value for null."""
    if isinstance(target, list):
        items = draft.writable(target)
        items.append(_clone(value))
        return items
    if isinstance(target, str):
        if not isinstance(value, str):
            raise _Failure("append.type_mismatch", f"cannot append {_describe(value)} to a string")
        return target + value
    if target is None:
        return value if isinstance(value, str) else draft.adopt([_clone(value)])
    raise _Failure(
        "append.type_mismatch",
        f"current value is {_describe(target)}; append needs an array, a string, null or a missing field",
    )


# Limits


def _check_path(kind: str, segments: tuple[str, ...]) -> None:
    if len(segments) > MAX_PATH_DEPTH:
        raise _Failure(f"{kind}.path.too_deep", f"{len(segments)} segments; the limit is {MAX_PATH_DEPTH}")
    for segment in segments:
        if not segment:
            raise _Failure(f"{kind}.path.empty_segment", "the path has an empty segment")
        size = len(segment.encode("utf-8", "surrogatepass"))
        if size > MAX_SEGMENT_BYTES:
            raise _Failure(f"{kind}.path.segment_too_long", f"a segment has {size} bytes (max {MAX_SEGMENT_BYTES})")
        if segment in _PROTO_KEYS:
            raise _Failure(f"{kind}.path.proto_polluted", f"the segment {segment!r} is not allowed")


def _check_merge_value(value: Any) -> None:
    if not isinstance(value, dict):
        raise _Failure("merge.value.not_an_object", f"the value is {_describe(value)}, not an object")
    if len(value) > MAX_MERGE_KEYS:
        raise _Failure("merge.value.too_many_keys", f"the value has {len(value)} keys (max {MAX_MERGE_KEYS})")
    polluted = next((key for key in value if key in _PROTO_KEYS), None)
    if polluted is not None:
        raise _Failure("merge.value.proto_polluted", f"the value's key {polluted!r} is not allowed")
    if _deeper_than(value, MAX_MERGE_VALUE_DEPTH):
        raise _Failure("merge.value.too_deep", f"the value nests deeper than {MAX_MERGE_VALUE_DEPTH} levels")


def _deeper_than(value: dict[str, Any], limit: int) -> bool:
    """True when objects/arrays nest more than ``limit`` levels (``{}`` is 1); iterative, stops early."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


# Small helpers


def _as_path(path: str | Sequence[str]) -> OpPath:
    return path if isinstance(path, str) else tuple(path)


def _clone(value: Any) -> Any:
    """A deep copy of a JSON value (scalars are immutable and shared)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def _not_object(kind: str, segment: str, found: Any) -> _Failure:
    return _Failure(f"{kind}.target_not_object", f"{_quote(segment)} holds {_describe(found)}, not an object")


def _reason(op: UpdateOp, failure: _Failure) -> str:
    """``increment at path "count": current value is a string, not a number``."""
    return f"{op.kind} at path {_path_label(op.path)}: {failure.problem}"


def _path_label(path: OpPath) -> str:
    if isinstance(path, str):
        label = _quote(path) + ("" if path else " (the root)")
    else:
        label = "[" + ", ".join(_quote(segment) for segment in path) + "]" + ("" if path else " (the root)")
    return label if len(label) <= 200 else label[:199] + "…"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


_KINDS: tuple[tuple[type | types.UnionType, str], ...] = (
    (types.NoneType, "null"), (bool, "a boolean"), (int | float, "a number"), (str, "a string"),
    (list, "an array"), (dict, "an object"),
)


def _describe(value: Any) -> str:
    """The JSON kind of ``value`` with an article, for messages: ``a string``, ``an object``, ``null``."""
    return next((text for kind, text in _KINDS if isinstance(value, kind)), f"a {type(value).__name__}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__
