"""JSON encoding of what SDK users pass in (call data, handler results) and of outgoing messages.

Call data may hold ``UpdateOp`` objects (``ops=[UpdateOp.set("done", True)]``, as the documentation writes it)
and the SDK's own event objects; both become their wire JSON here. The result is a ``msgspec.Raw`` so it can sit
inside the typed messages of ``streamhub.protocol.worker_messages`` without a second encoding pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from streamhub.core.update_ops import UpdateOp
from streamhub.errors import InvalidRequest
from streamhub.protocol.worker_messages import WorkerMessage, encode_worker_message

__all__ = ["encode_message", "to_raw_json"]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, UpdateOp):
        return value.to_wire()
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_raw_json(value: Any, where: str) -> msgspec.Raw:
    """Encode ``value`` to JSON.

    Raises:
        InvalidRequest: ``value`` holds something JSON cannot carry; the message names ``where`` and the type.
    """
    try:
        return msgspec.Raw(orjson.dumps(value, default=_default, option=_OPTIONS))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequest(f"{where} is not JSON-serializable: {exc}") from None


def encode_message(message: WorkerMessage) -> bytes:
    """Encode one worker-protocol message (its ``data``/``result`` already ``Raw``)."""
    return encode_worker_message(message)
