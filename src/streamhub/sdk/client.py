"""A worker's connection to the engine: calls, functions and triggers, reconnect with backoff.

``async with Client(url) as client`` connects to the worker port (default ``ws://127.0.0.1:49134``). Functions and
triggers declared on the client are sent on every connect, so they come back by themselves after an engine restart.
Calls made while disconnected wait for the connection (within their timeout); calls in flight when it drops fail
with ``ConnectionLost``. ``client.stream`` subscribes to the stream port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Callable, Iterable, Mapping
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

import streamhub
from streamhub.errors import InvalidRequest, StreamhubError
from streamhub.protocol.worker_messages import (
    UNSET,
    InvocationResult,
    InvokeFunction,
    Ping,
    Pong,
    TriggerRegistrationResult,
    UnregisterFunction,
    UnregisterTrigger,
    WorkerMessage,
    WorkerRegistered,
    decode_worker_message,
)
from streamhub.sdk.calls import PendingCall, PendingCalls
from streamhub.sdk.credentials import describe, has_authorization, redact_url, refusal_error, with_token
from streamhub.sdk.errors import CallTimeout, ConnectError, NotConnected, RegistrationError
from streamhub.sdk.link import Backoff, Link, is_refusal
from streamhub.sdk.registry import Confirmations, FunctionEntry, Handler, Registration, Registry, TriggerEntry
from streamhub.sdk.session import SessionHolder, default_stream_url
from streamhub.sdk.subscriber import StreamClient
from streamhub.sdk.wire import encode_message, to_raw_json

__all__ = ["Client"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Handler)
_VOID = {"type": "void"}
REGISTER_WORKER = "engine::workers::register"


class Client:
    """A streamhub worker.

    Args:
        url: the engine's worker port (``ws://`` or ``wss://``).
        stream_url: the stream port for ``client.stream`` (default: same host and scheme, port 3112).
        token: the engine's ``worker_auth`` token, sent as ``Authorization: Bearer <token>`` on the worker port
            only (default: ``$III_TOKEN`` when set, as the iii SDKs do; an ``Authorization`` in ``headers`` wins).
        headers: sent with both WebSocket upgrades.
        ssl: for ``wss://`` on both ports: an ``SSLContext`` (e.g. trusting a private CA), True (system CAs, the
            default) or False (no certificate check).
        call_timeout: default seconds a ``call`` waits for its answer.
        connect_timeout: seconds ``connect()`` / ``async with`` waits for the first connection.
        backoff: delays between reconnect attempts.
        heartbeat: seconds between WebSocket pings; a connection without a pong for that long is dropped.
        name: how the engine lists this worker (default ``host:pid``).
    """

    def __init__(self, url: str = "ws://127.0.0.1:49134", *, stream_url: str | None = None,
                 headers: Mapping[str, str] | None = None, call_timeout: float = 30.0,
                 connect_timeout: float = 10.0, backoff: Backoff | None = None, heartbeat: float | None = 20.0,
                 name: str | None = None, token: str | None = None, ssl: SSLContext | bool = True) -> None:
        self.url = url
        self._safe_url = redact_url(url)
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.name = name or f"{platform.node()}:{os.getpid()}"
        self.worker_id: str | None = None
        self._stream_url = stream_url or default_stream_url(url)
        self._headers = dict(headers or {})
        self._worker_headers = with_token(self._headers, token)
        self._ssl = ssl
        self._refusal: ConnectError | None = None  # the engine refused the worker connection (401/403)
        self._backoff = backoff or Backoff()
        self._heartbeat = heartbeat
        self._sessions = SessionHolder()
        self._registry = Registry(self._unregistered)
        self._calls = PendingCalls()
        self._confirmations = Confirmations(self._registry)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._link: Link | None = None
        self._stream: StreamClient | None = None
        self._closed = asyncio.Event()
        self._done = asyncio.Event()  # closed, or refused by the engine

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while the worker connection is up and registrations have been sent."""
        return self._link is not None and self._link.ready

    @property
    def stream(self) -> StreamClient:
        """Subscriptions on the stream port (one shared connection, opened on first use)."""
        if self._stream is None:
            self._stream = StreamClient(self._stream_url, headers=self._headers, backoff=self._backoff,
                                        heartbeat=self._heartbeat, sessions=self._sessions, ssl=self._ssl)
        return self._stream

    async def connect(self) -> None:
        """Connect, register everything declared so far, and keep reconnecting in the background.

        Raises:
            ConnectError: no connection within ``connect_timeout`` (the last error is in the message), or the
                engine refused it (code ``unauthorized``: a missing or wrong ``token``; no retry then).
            RegistrationError: the engine refused a declared trigger.
        """
        if self._link is None:
            self._link = Link(self._sessions.get(), self.url, on_open=self._on_open, on_frame=self._on_frame,
                              on_close=self._on_close, backoff=self._backoff, heartbeat=self._heartbeat,
                              headers=self._worker_headers, ssl=self._ssl, is_fatal=is_refusal,
                              on_fatal=self._refused)
            self._link.start()
        if not await self._link.wait_ready(self.connect_timeout):
            error = self._link.last_error
            await self.close()
            if self._refusal is not None:
                raise self._refusal
            raise ConnectError(f"cannot connect to {self._safe_url} within {self.connect_timeout:g} s: "
                               f"{describe(error)}")
        declared = [*self._registry.functions.values(), *self._registry.triggers.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*(_awaited(entry) for entry in declared)), self.connect_timeout)
        except RegistrationError:
            await self.close()
            raise
        except TimeoutError:
            await self.close()
            raise ConnectError(f"{self._safe_url} did not confirm the registrations within {self.connect_timeout:g} s "
                               "(no pong)") from None

    async def close(self) -> None:
        """Disconnect for good: unsubscribe, stop reconnecting, fail what is still waiting."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._done.set()
        if self._stream is not None:
            await self._stream.close()
        if self._link is not None:
            await self._link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._sessions.close()

    async def run_forever(self) -> None:
        """Serve functions until ``close()`` is called or the task is cancelled.

        Raises:
            ConnectError: the engine refused a reconnect (401/403, e.g. its tokens changed): the worker stops.
        """
        await self._done.wait()
        if self._refusal is not None:
            raise self._refusal

    # Registration

    def function(self, function_id: str, *, triggers: Iterable[Mapping[str, Any]] = (),
                 description: str | None = None, metadata: Any = None) -> Callable[[F], F]:
        """Decorator: serve ``function_id`` with the decorated ``handler(event, context)`` or ``handler(event)``.

        ``triggers`` are ``{"type": "stream", "config": {...}}`` dicts bound to this function.
        """

        def decorate(handler: F) -> F:
            self.register_function(function_id, handler, triggers=triggers, description=description,
                                   metadata=metadata)
            return handler

        return decorate

    def register_function(self, function_id: str, handler: Handler, *, triggers: Iterable[Mapping[str, Any]] = (),
                          description: str | None = None, metadata: Any = None) -> FunctionEntry:
        """Serve ``function_id`` with ``handler``; returns a handle to ``await`` or ``unregister()``."""
        specs = [_trigger_spec(function_id, spec) for spec in triggers]
        entry = self._registry.add_function(function_id, handler, description=description, metadata=metadata)
        for kind, config in specs:
            self._registry.add_trigger(kind, function_id, config)
        self._registrations_changed()
        return entry

    def register_trigger(self, trigger_type: str, function_id: str,
                         config: Mapping[str, Any] | None = None) -> TriggerEntry:
        """Bind a trigger to a function id; ``await`` the result to learn whether the engine accepted it."""
        entry = self._registry.add_trigger(trigger_type, function_id, config)
        self._registrations_changed()
        return entry

    def declare(self, functions: Mapping[str, Mapping[str, Any]]) -> list[FunctionEntry]:
        """Register several functions from a declaration dict.

        ``{"todos::on_change": {"handler": fn, "triggers": [{"type": "stream", "config": {...}}]}}``
        """
        entries = []
        for function_id, spec in functions.items():
            if not isinstance(spec, Mapping) or "handler" not in spec:
                raise InvalidRequest(f"declaration of {function_id} needs a 'handler'")
            entries.append(self.register_function(
                function_id, spec["handler"], triggers=spec.get("triggers", ()),
                description=spec.get("description"), metadata=spec.get("metadata")))
        return entries

    # Calls

    async def call(self, function_id: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Call a function and return its result (None when it answered without one).

        Raises:
            CallError: the engine or the handler answered with an error (its ``code`` and message).
            CallTimeout, NotConnected, ConnectionLost: see ``streamhub.sdk.errors``.
            InvalidRequest: ``data`` is not JSON-serializable.
        """
        limit = self.call_timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + limit
        call = self._calls.open(function_id)
        message = InvokeFunction(function_id=function_id, data=to_raw_json(data, f"data of call {function_id}"),
                                 invocation_id=call.invocation_id)
        try:
            await self._send_when_connected(message, function_id, deadline, limit, call)
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                return await asyncio.wait_for(call.future, remaining)
            except TimeoutError:
                raise CallTimeout(function_id, f"no answer within {limit:g} s") from None
        finally:
            self._calls.discard(call)

    async def call_void(self, function_id: str, data: Any = None, *, timeout: float | None = None) -> None:
        """Fire and forget: returns once the call is sent; nothing comes back, errors stay on the engine side."""
        limit = self.call_timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + limit
        message = InvokeFunction(function_id=function_id, data=to_raw_json(data, f"data of call {function_id}"),
                                 action=_VOID)
        await self._send_when_connected(message, function_id, deadline, limit, None)

    # Connection events

    async def _on_open(self) -> None:
        link = self._require_link()
        while pending := self._registry.unsent(link.generation):
            for entry in pending:
                entry.generation = link.generation
                await link.send(encode_message(entry.message))
            await self._barrier(pending)
        metadata = {"runtime": "python", "framework": "streamhub", "version": streamhub.__version__,
                    "name": self.name, "pid": os.getpid()}
        await link.send(encode_message(InvokeFunction(function_id=REGISTER_WORKER, action=_VOID,
                                                      data=to_raw_json(metadata, "worker metadata"))))

    def _on_close(self) -> None:
        link = self._require_link()
        lost = self._calls.lost(link.generation, self._safe_url)
        if lost:
            log.warning("%d calls in flight failed: connection to %s lost", lost, self._safe_url)
        self._confirmations.reset()

    def _on_frame(self, frame: bytes | str) -> None:
        try:
            message = decode_worker_message(frame)
        except ValueError as exc:
            unknown_type = str(exc).endswith("at `$.type`")  # a newer engine's message: not for this client
            log.log(logging.DEBUG if unknown_type else logging.WARNING,
                    "ignored a frame from %s: %s: %.200r", self._safe_url, exc, frame)
            return
        if isinstance(message, InvocationResult):
            self._calls.resolve(message)
        elif isinstance(message, InvokeFunction):
            self._spawn(self._serve(message))
        elif isinstance(message, Pong):
            self._confirmations.pong()
        elif isinstance(message, TriggerRegistrationResult):
            self._confirmations.refused(message)
        elif isinstance(message, WorkerRegistered):
            self.worker_id = message.worker_id
        elif isinstance(message, Ping):
            self._spawn(self._send_quietly(Pong()))

    # Private

    async def _serve(self, message: InvokeFunction) -> None:
        """Run the local handler for an incoming call and send its result or error back."""
        result, error = await self._run_handler(message.function_id, message.data)
        if message.invocation_id is not None:
            await self._send_quietly(InvocationResult(invocation_id=message.invocation_id,
                                                      function_id=message.function_id, result=result, error=error))

    async def _run_handler(self, function_id: str, data: Any) -> tuple[Any, Any]:
        """Returns ``(result, None)`` or ``(UNSET, error body)``."""
        entry = self._registry.functions.get(function_id)
        if entry is None:
            return UNSET, {"code": "function_not_found", "message": f"Function {function_id} is not served here"}
        try:
            return to_raw_json(await entry.run(data), f"result of {function_id}"), None
        except StreamhubError as exc:
            log.warning("%s failed: %s", function_id, exc.message)
            return UNSET, exc.to_wire()
        except Exception as exc:
            log.exception("%s failed", function_id)
            return UNSET, {"code": "invocation_failed", "message": f"{type(exc).__name__}: {exc}"}

    async def _send_when_connected(self, message: WorkerMessage, function_id: str, deadline: float,
                                   limit: float, call: PendingCall | None) -> None:
        link = self._link
        payload = encode_message(message)
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if self._closed.is_set():
                raise NotConnected(function_id, "the client is closed")
            if link is None:
                raise NotConnected(function_id, "the client is not connected (use `async with Client(...)`)")
            if not link.ready and not await link.wait_ready(max(0.0, remaining)):
                reason = self._refusal.message if self._refusal is not None else describe(link.last_error)
                raise NotConnected(function_id, f"no connection to {self._safe_url} within {limit:g} s"
                                   f" (last error: {reason})")
            if call is not None:
                call.generation = link.generation
            try:
                await link.send(payload)
                return
            except ConnectionError:
                if call is not None:
                    call.generation = None  # never left: send it on the next connection
                await asyncio.sleep(0.01)  # let the link notice the close before waiting for the next one

    def _registrations_changed(self) -> None:
        if self._link is not None and self._link.ready:
            self._spawn(self._send_registrations(self._link))

    async def _send_registrations(self, link: Link) -> None:
        pending = self._registry.unsent(link.generation)
        if not pending:
            return
        try:
            for entry in pending:
                entry.generation = link.generation
                await link.send(encode_message(entry.message))
            await self._barrier(pending)
        except ConnectionError:
            log.debug("registration interrupted by a disconnect; it is sent again on reconnect")

    async def _barrier(self, covered: list[Registration]) -> None:
        self._confirmations.expect(covered)
        await self._require_link().send(encode_message(Ping()))

    def _unregistered(self, entry: Registration) -> None:
        self._registry.remove(entry)
        entry.settle(None)
        if not self.connected:
            return
        if isinstance(entry, FunctionEntry):
            self._spawn(self._send_quietly(UnregisterFunction(id=entry.id)))
        elif isinstance(entry, TriggerEntry):
            self._spawn(self._send_quietly(UnregisterTrigger(id=entry.id,
                                                             trigger_type=entry.message.trigger_type)))

    async def _send_quietly(self, message: WorkerMessage) -> None:
        try:
            await self._require_link().send(encode_message(message))
        except ConnectionError:
            log.info("%s not sent: connection to %s lost", type(message).__name__, self._safe_url)

    def _refused(self, exc: BaseException) -> None:
        """The engine answered the upgrade 401/403 (or the URL cannot work): say why and stop (``run_forever``
        raises it)."""
        self._refusal = refusal_error(self._safe_url, exc, token_sent=has_authorization(self._worker_headers))
        log.error("%s", self._refusal.message)
        self._done.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _require_link(self) -> Link:
        assert self._link is not None
        return self._link


async def _awaited(entry: Registration) -> None:
    await entry


def _trigger_spec(function_id: str, spec: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        raise InvalidRequest(f"trigger of {function_id} must be {{'type': ..., 'config': {{...}}}}, got {spec!r}")
    return spec["type"], spec.get("config")
