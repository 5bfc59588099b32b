"""Messages of the worker protocol (port 49134), as typed values shared by the engine and the SDK.

Wire rules (iii engine): tag field ``type`` all lowercase, snake_case fields, unknown fields ignored,
``None`` fields omitted. ``InvocationResult.result`` distinguishes "no result" (``UNSET``, key omitted) from
a JSON ``null`` result.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "UNSET",
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
    "UnregisterFunction",
    "UnregisterTrigger",
    "UnregisterTriggerType",
    "WorkerMessage",
    "WorkerRegistered",
    "decode_worker_message",
    "encode_worker_message",
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


class UnregisterTriggerType(_Message, frozen=True, tag="unregistertriggertype"):
    id: str


class RegisterTrigger(_Message, frozen=True, tag="registertrigger"):
    id: str
    trigger_type: str
    function_id: str
    config: Any = None


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

_decoder = msgspec.json.Decoder(WorkerMessage)
_encoder = msgspec.json.Encoder()


def decode_worker_message(frame: bytes | str) -> WorkerMessage:
    """Decode one frame; raises ``msgspec.DecodeError``/``ValidationError`` (both ``ValueError``)."""
    message: WorkerMessage = _decoder.decode(frame)
    return message


def encode_worker_message(message: WorkerMessage) -> bytes:
    """Encode one message to compact JSON."""
    return _encoder.encode(message)
