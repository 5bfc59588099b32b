"""The worker endpoint (default port 49134): iii's worker protocol over WebSocket.

On connect the engine sends ``workerregistered``; then every frame is decoded into a typed message and handed
to ``Engine.workers``. A frame that cannot be used is answered (``_on_unusable``) and never ends the connection:
the worker's functions, triggers and calls in flight stay. ``/otel`` accepts the telemetry socket that iii-sdk 0.25
opens and discards its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from aiohttp import WSMsgType, web

from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.engine.engine import Engine
from streamhub.engine.outbox import Outbox
from streamhub.errors import InvocationError, ProtocolViolation
from streamhub.protocol import close_codes
from streamhub.protocol.codec import text_frame
from streamhub.protocol.worker_messages import (
    MESSAGE_TYPES,
    ErrorMessage,
    InvocationResult,
    UnknownMessageType,
    WorkerMessage,
    WorkerRegistered,
    decode_worker_frame,
    encode_worker_message,
    peek_envelope,
)
from streamhub.transport.access import BearerTokens
from streamhub.transport.sockets import BackgroundTasks, close_going_away, release, socket_writer

__all__ = ["WorkerConnection", "WorkerEndpoint"]

log = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 64 * 1024 * 1024  # what iii-sdk may send in one message
MAX_PENDING_BYTES = 64 * 1024 * 1024
_TELEMETRY_PREFIXES = (b"OTLP", b"MTRC", b"LOGS")


class WorkerConnection:
    """One connected worker: the engine's ``WorkerLink``."""

    def __init__(self, worker_id: str, outbox: Outbox, metrics: Metrics = NULL_METRICS) -> None:
        self.worker_id = worker_id
        self._outbox = outbox
        self._metrics = metrics

    @property
    def backlog(self) -> int:
        """Bytes queued to this worker and not yet read by it."""
        return self._outbox.backlog

    def send(self, message: WorkerMessage) -> None:
        """Queue a message to the worker."""
        frame = text_frame(encode_worker_message(message))
        self._metrics.sent("worker", len(frame))
        self._outbox.put(frame)


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
            self._engine.metrics.connection_refused("worker", "auth")
            return refusal
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE, compress=False, timeout=5.0)
        await ws.prepare(request)
        worker = self._open(ws, request)
        log.info("worker %s connected from %s", worker.worker_id, request.remote)
        worker.send(WorkerRegistered(worker_id=worker.worker_id))
        self._engine.workers.connected(worker, request.remote)
        self._sockets.add(ws)
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_frame(worker, message.data)
                elif message.type == WSMsgType.ERROR:
                    log.info("worker %s: %s", worker.worker_id, ws.exception())
                    break
        finally:
            release(ws, request)
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
        try:
            async for _ in ws:
                pass
        finally:
            release(ws, request)
        return ws

    # Private

    def _open(self, ws: web.WebSocketResponse, request: web.Request) -> WorkerConnection:
        transport = request.transport
        assert transport is not None
        worker_id = str(uuid.uuid4())

        def cut_off() -> None:
            log.warning("worker %s cannot keep up; closing", worker_id)
            self._engine.metrics.cut_off("worker")
            self._closers.spawn(_close(ws))

        outbox = Outbox(socket_writer(transport), transport.get_write_buffer_size, cut_off, MAX_PENDING_BYTES,
                        urgent=True)
        worker = WorkerConnection(worker_id, outbox, self._engine.metrics)
        self.connections[worker_id] = worker
        return worker

    def _on_frame(self, worker: WorkerConnection, frame: bytes | str) -> None:
        if isinstance(frame, bytes) and frame[:4] in _TELEMETRY_PREFIXES:
            return
        if not frame.strip():
            return
        try:
            message = decode_worker_frame(frame)
        except UnknownMessageType as exc:
            log.debug("worker %s sent an unsupported message (%s); ignored", worker.worker_id, exc.message)
            return
        except ProtocolViolation as exc:
            self._on_unusable(worker, frame, exc)
            return
        try:
            self._engine.workers.handle(worker, message)
        except Exception:  # a bug, not the worker's fault: keep its connection and everything it registered
            log.exception("worker %s: handling %s failed", worker.worker_id, type(message).__name__)

    def _on_unusable(self, worker: WorkerConnection, frame: bytes | str, problem: ProtocolViolation) -> None:
        """Answer whoever waits on a frame that cannot be used; the connection and its registrations stay.

        With an ``invocation_id``: the engine's call it answers fails with the error (a bad result), or the
        worker gets an error ``invocationresult`` (a bad call). Without one: one WARNING and an ``error`` frame.
        """
        envelope = peek_envelope(frame)
        kind = envelope.type if envelope.type in MESSAGE_TYPES else None
        error = ProtocolViolation(f"{kind or 'worker'} frame {problem.message}", code=problem.code)
        invocation_id = envelope.invocation_id
        if invocation_id is None:
            log.warning("worker %s: %s", worker.worker_id, error.message)
        elif not self._fail_call(worker, invocation_id, error):
            log.debug("worker %s: call %.64s refused: %s", worker.worker_id, invocation_id, error.message)
            worker.send(InvocationResult(invocation_id=invocation_id, function_id=envelope.function_id,
                                         error=error.to_wire()))
            return
        worker.send(ErrorMessage(error=error.to_wire()))

    def _fail_call(self, worker: WorkerConnection, invocation_id: str, error: ProtocolViolation) -> bool:
        """Fail the engine's call to ``worker`` that an unusable result answers; False if there is none."""
        failure = InvocationError(f"the result from worker {worker.worker_id} is unusable: {error.message}",
                                  code=error.code)
        if not self._engine.invocations.fail(worker, invocation_id, failure):
            return False
        log.warning("worker %s: result of call %.64s: %s", worker.worker_id, invocation_id, error.message)
        return True


async def _close(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=close_codes.TRY_AGAIN_LATER, message=b"slow consumer"), 5.0)
