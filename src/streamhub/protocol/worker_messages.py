"""Messages of the worker protocol (port 49134), as typed values shared by the engine and the SDK.

Wire rules (iii engine): tag field ``type`` all lowercase, snake_case fields, unknown fields ignored,
``None`` fields omitted. ``InvocationResult.result`` distinguishes "no result" (``UNSET``, key omitted) from
a JSON ``null`` result.
"""

from __future__ import annotations

import re
from typing import Any, get_args

import msgspec
from msgspec import UNSET, UnsetType

from streamhub.errors import ProtocolViolation
from streamhub.protocol.codec import MAX_FRAME_DEPTH, depth_over, shorten

__all__ = [
    "MESSAGE_TYPES",
    "UNSET",
    "Envelope",
    "ErrorMessage",
    "InvocationResult",
    "InvokeFunction",
    "Ping",
    "Pong",
    "Reattach",
    "RegisterFunction",
    "RegisterService",
    "RegisterTrigger",
    "RegisterTriggerType",
    "TriggerRegistrationResult",
    "UnknownMessageType",
    "UnregisterFunction",
    "UnregisterTrigger",
    "UnregisterTriggerType",
    "WorkerMessage",
    "WorkerRegistered",
    "decode_worker_frame",
    "decode_worker_message",
    "encode_worker_message",
    "peek_envelope",
]


class _Message(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    pass


class RegisterFunction(_Message, frozen=True, tag="registerfunction"):
    id: str
    description: str | None = None
    request_format: Any = None
    response_format: Any = None
    metadata: Any = None


class UnregisterFunction(_Message, frozen=True, tag="unregisterfunction"):
    id: str


class RegisterTriggerType(_Message, frozen=True, tag="registertriggertype"):
    id: str
    description: str | None = None
    trigger_request_format: Any = None
    call_request_format: Any = None


class UnregisterTriggerType(_Message, frozen=True, tag="unregistertriggertype"):
    id: str


class RegisterTrigger(_Message, frozen=True, tag="registertrigger"):
    id: str
    trigger_type: str
    function_id: str
    config: Any = None
    metadata: Any = None


class UnregisterTrigger(_Message, frozen=True, tag="unregistertrigger"):
    id: str
    trigger_type: str | None = None


class TriggerRegistrationResult(_Message, frozen=True, tag="triggerregistrationresult"):
    id: str
    trigger_type: str | None = None
    function_id: str | None = None
    error: Any = None


class InvokeFunction(_Message, frozen=True, tag="invokefunction"):
    function_id: str
    data: Any = None
    invocation_id: str | None = None
    action: Any = None
    traceparent: str | None = None
    baggage: str | None = None


class InvocationResult(_Message, frozen=True, tag="invocationresult"):
    invocation_id: str
    function_id: str | None = None
    result: Any | UnsetType = UNSET
    error: Any = None


class ErrorMessage(_Message, frozen=True, tag="error"):
    """streamhub extension: the engine refused a frame that has no answer of its own in iii (``{code, message}``).

    Workers ignore it (iii SDKs drop unknown types); one a worker sends is ignored too.
    """

    error: Any = None


class RegisterService(_Message, frozen=True, tag="registerservice"):
    id: str | None = None
    name: str | None = None
    description: str | None = None


class WorkerRegistered(_Message, frozen=True, tag="workerregistered"):
    worker_id: str


class Reattach(_Message, frozen=True, tag="reattach"):
    previous_worker_id: str | None = None
    reattach_token: str | None = None


class Ping(_Message, frozen=True, tag="ping"):
    pass


class Pong(_Message, frozen=True, tag="pong"):
    pass


WorkerMessage = (
    RegisterFunction
    | UnregisterFunction
    | RegisterTriggerType
    | UnregisterTriggerType
    | RegisterTrigger
    | UnregisterTrigger
    | TriggerRegistrationResult
    | InvokeFunction
    | InvocationResult
    | RegisterService
    | WorkerRegistered
    | Reattach
    | Ping
    | Pong
    | ErrorMessage
)

MESSAGE_TYPES = frozenset(cls.__struct_config__.tag for cls in get_args(WorkerMessage))
"""Every ``type`` of the worker protocol streamhub knows."""

_decoder = msgspec.json.Decoder(WorkerMessage)
_encoder = msgspec.json.Encoder()


def decode_worker_message(frame: bytes | str) -> WorkerMessage:
    """Decode one frame; raises ``msgspec.DecodeError``/``ValidationError`` (both ``ValueError``)."""
    message: WorkerMessage = _decoder.decode(frame)
    return message


class UnknownMessageType(ProtocolViolation):
    """A JSON object whose ``type`` names no message this engine knows (a newer SDK's): ignored, not an error."""


def decode_worker_frame(frame: bytes | str) -> WorkerMessage:
    """Decode one received frame, bounding its depth first.

    Raises:
        UnknownMessageType: ``type`` is a string naming no known message.
        ProtocolViolation: ``frame_too_deep``, ``invalid_json`` or ``invalid_message``; the message is a predicate
            ("is not valid JSON: ...") for the caller to put the frame's name in front of.
    """
    depth = depth_over(frame)
    if depth is not None:
        raise ProtocolViolation(f"nests {depth} levels deep (at most {MAX_FRAME_DEPTH})", code="frame_too_deep")
    try:
        return decode_worker_message(frame)
    except msgspec.ValidationError as exc:
        reason = shorten(str(exc))
        if reason.startswith("Invalid value") and reason.endswith("at `$.type`"):
            raise UnknownMessageType(reason) from None
        raise ProtocolViolation(f"is not a valid message: {reason}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolViolation(f"is not valid JSON: {shorten(str(exc))}", code="invalid_json") from None
    except RecursionError:  # only if the stack was already deep: the depth check above bounds the frame
        raise ProtocolViolation("nests too deep to decode", code="frame_too_deep") from None


class Envelope(msgspec.Struct, frozen=True):
    """The top-level fields that say who is waiting for an answer to a frame, as far as they could be read."""

    type: str | None = None
    invocation_id: str | None = None
    function_id: str | None = None


class _RawEnvelope(msgspec.Struct, frozen=True):
    type: msgspec.Raw = msgspec.Raw(b"null")
    invocation_id: msgspec.Raw = msgspec.Raw(b"null")
    function_id: msgspec.Raw = msgspec.Raw(b"null")


_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_string_decoder = msgspec.json.Decoder(str | None)
_FIELD = re.compile(rb'"(type|invocation_id|function_id)"\s*+:\s*+("(?:[^"\\]++|\\.)*+")')


def peek_envelope(frame: bytes | str) -> Envelope:
    """Read ``type``, ``invocation_id`` and ``function_id`` of a frame that does not decode as a message.

    First a shallow decode (other fields are skipped, not parsed, so a bad number or string elsewhere does not
    matter); if the frame is not JSON at all (cut short, too deep), the first occurrence of each key is taken.
    Never raises; a field that cannot be read is None.
    """
    data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
    fields: dict[str, msgspec.Raw | bytes] = {}
    if depth_over(data) is None:
        try:
            raw = _envelope_decoder.decode(data)
            fields = {"type": raw.type, "invocation_id": raw.invocation_id, "function_id": raw.function_id}
        except (msgspec.DecodeError, RecursionError):
            fields = {}
    if not fields:
        for match in _FIELD.finditer(data):
            fields.setdefault(match.group(1).decode(), match.group(2))
    return Envelope(type=_string_or_none(fields.get("type")),
                    invocation_id=_string_or_none(fields.get("invocation_id")),
                    function_id=_string_or_none(fields.get("function_id")))


def _string_or_none(raw: msgspec.Raw | bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return _string_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


def encode_worker_message(message: WorkerMessage) -> bytes:
    """Encode one message to compact JSON."""
    return _encoder.encode(message)
