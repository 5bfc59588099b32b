"""The worker endpoint (default port 49134): iii's worker protocol over WebSocket.

On connect the engine sends ``workerregistered``; then every frame is decoded into a typed message and handed
to ``Engine.workers``. ``/otel`` accepts the telemetry socket that iii-sdk 0.25 opens and discards its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import msgspec
from aiohttp import WSMsgType, web

from streamhub.engine.engine import Engine
from streamhub.engine.outbox import Outbox
from streamhub.errors import ProtocolViolation
from streamhub.protocol import close_codes
from streamhub.protocol.codec import decode, encode, text_frame
from streamhub.protocol.worker_messages import (
    InvocationResult,
    WorkerMessage,
    WorkerRegistered,
    decode_worker_message,
    encode_worker_message,
)
from streamhub.transport.access import BearerTokens
from streamhub.transport.sockets import BackgroundTasks, close_going_away, socket_writer

__all__ = ["WorkerConnection", "WorkerEndpoint"]

log = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # what iii-sdk may send in one message
MAX_PENDING_BYTES = 64 * 1024 * 1024
_TELEMETRY_PREFIXES = (b"OTLP", b"MTRC", b"LOGS")


class WorkerConnection:
    """One connected worker: the engine's ``WorkerLink``."""

    def __init__(self, worker_id: str, outbox: Outbox) -> None:
        self.worker_id = worker_id
        self._outbox = outbox

    def send(self, message: WorkerMessage) -> None:
        """Queue a message to the worker."""
        self._outbox.put(text_frame(encode_worker_message(message)))

    def send_raw(self, payload: bytes) -> None:
        """Queue an already encoded JSON message."""
        self._outbox.put(text_frame(payload))


class WorkerEndpoint:
    """aiohttp handlers for ``/`` (workers) and ``/otel`` (telemetry sink).

    With ``tokens`` (``worker_auth``) both answer 401 to an upgrade without one of them as a bearer token.
    """

    def __init__(self, engine: Engine, tokens: BearerTokens | None = None) -> None:
        self._engine = engine
        self._tokens = tokens
        self.connections: dict[str, WorkerConnection] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._closers = BackgroundTasks()

    def routes(self) -> list[web.RouteDef]:
        """Routes to mount on the worker port's application."""
        return [web.get("/", self.handle), web.get("/otel", self.telemetry)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one worker until it disconnects, then forget everything it registered."""
        if self._tokens is not None and (refusal := self._tokens.refusal(request)) is not None:
            return refusal
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE, compress=False, timeout=5.0)
        await ws.prepare(request)
        worker = self._open(ws, request)
        worker.send(WorkerRegistered(worker_id=worker.worker_id))
        self._sockets.add(ws)
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_frame(worker, message.data)
                elif message.type == WSMsgType.ERROR:
                    log.info("worker %s: %s", worker.worker_id, ws.exception())
                    break
        finally:
            self._sockets.discard(ws)
            self.connections.pop(worker.worker_id, None)
            self._engine.workers.disconnected(worker)
        return ws

    async def close_all(self) -> None:
        """Close every worker socket with 1001 so SDKs reconnect at once instead of waiting out a timeout."""
        await asyncio.gather(*(close_going_away(ws) for ws in list(self._sockets)))

    async def telemetry(self, request: web.Request) -> web.StreamResponse:
        """Accept iii-sdk's OpenTelemetry socket; its frames are read and dropped."""
        if self._tokens is not None and (refusal := self._tokens.refusal(request)) is not None:
            return refusal
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE, compress=False)
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    # Private

    def _open(self, ws: web.WebSocketResponse, request: web.Request) -> WorkerConnection:
        transport = request.transport
        assert transport is not None
        worker_id = str(uuid.uuid4())

        def cut_off() -> None:
            log.warning("worker %s cannot keep up; closing", worker_id)
            self._closers.spawn(_close(ws))

        outbox = Outbox(socket_writer(transport), transport.get_write_buffer_size, cut_off, MAX_PENDING_BYTES,
                        urgent=True)
        worker = WorkerConnection(worker_id, outbox)
        self.connections[worker_id] = worker
        return worker

    def _on_frame(self, worker: WorkerConnection, frame: bytes | str) -> None:
        if isinstance(frame, bytes) and frame[:4] in _TELEMETRY_PREFIXES:
            return
        if not frame.strip():
            return
        try:
            message = decode_worker_message(frame)
        except msgspec.ValidationError as exc:
            self._on_invalid(worker, frame, str(exc))
            return
        except msgspec.DecodeError as exc:
            error = ProtocolViolation(f"frame is not valid JSON: {exc}", code="invalid_json")
            worker.send_raw(encode({"type": "error", "error": error.to_wire()}))
            return
        self._engine.workers.handle(worker, message)

    def _on_invalid(self, worker: WorkerConnection, frame: bytes | str, reason: str) -> None:
        """A JSON frame that is not a valid message: answer the caller if it is waiting, else log."""
        raw = decode(frame)
        kind = raw.get("type") if isinstance(raw, dict) else None
        if reason.endswith("at `$.type`"):
            log.debug("worker %s sent unsupported message type %r; ignored", worker.worker_id, kind)
            return
        error = ProtocolViolation(f"invalid {kind or 'message'}: {reason}")
        invocation_id = raw.get("invocation_id") if isinstance(raw, dict) else None
        if kind == "invokefunction" and isinstance(invocation_id, str):
            worker.send(InvocationResult(invocation_id=invocation_id, function_id=_str_or_none(raw.get("function_id")),
                                         error=error.to_wire()))
        else:
            log.warning("worker %s: %s", worker.worker_id, error.message)
            worker.send_raw(encode({"type": "error", "error": error.to_wire()}))


async def _close(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=close_codes.TRY_AGAIN_LATER, message=b"slow consumer"), 5.0)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
