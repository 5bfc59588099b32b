"""Connection-level limits of every listening port: a deadline for request headers and a cap on open sockets.

Why here, below aiohttp: aiohttp's server accepts every connection and reads a request line for as long as the
peer cares to trickle it, so about a thousand slow sockets (the usual open-files limit) locked every client and
worker out (issue 10, finding 4); auth runs after the headers and cannot help. So each port's listening socket is
served through a :class:`ConnectionGuard`, the protocol factory given to ``loop.create_server``:

* It counts connections from the moment they are accepted (TCP) or their TLS handshake ends, slow half-open
  ones included, and answers the one past ``max_connections`` itself with ``503`` and ``Connection: close``,
  never handing it to aiohttp. Each port has its own guard, so one port's flood never takes another's slots.
* An admitted connection has ``handshake_timeout`` to deliver its first request line and headers, else it gets
  ``408`` and is closed. Later requests on a keep-alive connection are timed by aiohttp's ``keepalive_timeout``
  (set to the same value), which closes a connection whose next request's headers have not all arrived in time,
  idle ones included.
* No per-frame work: the guard's gate protocol swaps itself out (``transport.set_protocol``) before the first
  byte is read, the timer is cancelled once per request by the request factory, and the count drops in the
  server's ``connection_lost``. A WebSocket pays nothing after its upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from streamhub.config import EngineConfig
from streamhub.transport.http_log import server_logger

__all__ = ["ConnectionGuard", "PortLimits", "port_limits", "raise_open_files_limit", "serve_app"]

log = logging.getLogger(__name__)

REFUSE_LINGER = 1.0  # seconds a refused socket stays open reading (and dropping) the request behind its 503
MAX_LINGERING = 256  # refused sockets lingering per port; past this a refusal is a plain close
LOG_EVERY = 10.0  # seconds between two log lines about the same limit on the same port


def _response(status: str, body: str, extra: str = "") -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


@dataclass(frozen=True, slots=True)
class PortLimits:
    """What one port allows: seconds to deliver each request's headers, and open connections at once."""

    name: str  # "worker", "stream", "rest" or "admin": used in log lines and metrics
    handshake_timeout: float
    max_connections: int


def port_limits(config: EngineConfig) -> dict[str, PortLimits]:
    """Each configured port's limits, keyed like ``Server.ports``: each module's own keys, top level for workers."""
    limits = {"worker": PortLimits("worker", config.handshake_timeout_ms / 1000, config.max_connections)}
    if config.stream is not None:
        stream = config.stream
        limits["stream"] = PortLimits("stream", stream.handshake_timeout_ms / 1000, stream.max_connections)
    if config.rest_api is not None:
        rest = config.rest_api
        limits["rest"] = PortLimits("rest", rest.handshake_timeout_ms / 1000, rest.max_connections)
    if config.admin is not None:
        admin = config.admin
        limits["admin"] = PortLimits("admin", admin.handshake_timeout_ms / 1000, admin.max_connections)
    return limits


def raise_open_files_limit(connections: int) -> int | None:
    """Raise the soft open-files limit to the hard one and log the figure; None where there is no such limit.

    Every connection is a file descriptor: left at a soft 1024, a thousand sockets exhaust the process and every
    port stops accepting. A refusal to raise it is a WARNING, not fatal. ``connections`` (the ports'
    ``max_connections`` added up) is reported when above the limit: one port's flood could then take the
    descriptors the others need. INFO, not WARNING: the defaults (101,000) exceed most limits, and a warning on
    every default start would teach users to ignore warnings.
    """
    try:
        import resource
    except ImportError:  # Windows: no RLIMIT_NOFILE
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _system_ceiling()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files limit stays at %d: cannot raise it to the hard limit %d (%s)", soft, target, exc)
        else:
            log.info("open files limit raised to %d (was %d)", target, soft)
            soft = target
    else:
        log.info("open files limit: %d", soft)
    if soft != resource.RLIM_INFINITY and connections > soft:
        log.info("the ports' max_connections add up to %d, above the open files limit %d: a flood on one port "
                 "can use up the descriptors the others need (lower max_connections to keep room)", connections, soft)
    return int(soft)


def _system_ceiling() -> int:
    """The most descriptors a process may have when the hard limit says "unlimited" (Linux: fs.nr_open)."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 10_240  # macOS OPEN_MAX


class _Tally:
    """Counts one kind of limit hit and logs it at most every ``LOG_EVERY`` seconds, so a flood is one line."""

    def __init__(self, level: int, message: str) -> None:
        self._level = level
        self._message = message
        self._count = 0
        self._last = 0.0

    def hit(self) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= LOG_EVERY:
            log.log(self._level, self._message, self._count)
            self._count = 0
            self._last = now


class _Gate(asyncio.Protocol):
    """The first protocol of every accepted socket: hands it to aiohttp, or answers 503 and lingers."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's transports do not subclass asyncio's
        handler = self._guard.admit()
        if handler is not None:
            transport.set_protocol(handler)  # from here on the socket talks to aiohttp directly
            handler.connection_made(transport)
            return
        self._transport = transport
        if not self._guard.linger(self):
            transport.abort()
            return
        transport.write(self._guard.refusal)
        if transport.can_write_eof():
            transport.write_eof()
        # Closing with the request unread would send a RST that can discard the 503 before the client reads it.
        self._timer = asyncio.get_running_loop().call_later(REFUSE_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        """Drop what a refused client sends while its 503 drains."""

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._guard.unlinger(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class ConnectionGuard:
    """Protocol factory that admits at most ``max_connections`` sockets and times their request headers.

    Args:
        server: the runner's ``web.Server``; its ``request_factory`` and ``connection_lost`` get wrapped.
        limits: this port's limits.
    """

    def __init__(self, server: web.Server, limits: PortLimits) -> None:
        self._server = server
        self._limits = limits
        self._open: set[RequestHandler] = set()
        self._timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        self._lingering: set[_Gate] = set()
        self._loop = asyncio.get_running_loop()
        self.refused = 0  # connections answered 503 (max_connections), for metrics
        self.timed_out = 0  # connections closed with 408 (handshake_timeout_ms), for metrics
        self.refusal = _response("503 Service Unavailable", f"too many connections on the {limits.name} port\n",
                                 "Retry-After: 1\r\n")
        self._timeout_reply = _response(
            "408 Request Timeout", f"request headers not received within {limits.handshake_timeout:g} s\n")
        self._refused = _Tally(logging.WARNING, f"%d connection(s) refused with 503 on the {limits.name} port: "
                               f"max_connections ({limits.max_connections}) reached")
        # INFO, not WARNING: browsers' speculative preconnections that stay unused end this way too.
        self._timed_out = _Tally(logging.INFO, f"%d connection(s) closed on the {limits.name} port: request "
                                 f"headers not complete within handshake_timeout_ms "
                                 f"({limits.handshake_timeout * 1000:g})")
        make_request = server.request_factory
        forget = server.connection_lost

        def request_factory(message: Any, payload: Any, protocol: RequestHandler, writer: Any, task: Any) -> Any:
            timer = self._timers.pop(protocol, None)  # headers are in: once per request, never per frame
            if timer is not None:
                timer.cancel()
            return make_request(message, payload, protocol, writer, task)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._release(handler)
            forget(handler, exc)

        server.request_factory = request_factory
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @property
    def open_connections(self) -> int:
        """Admitted sockets not yet closed (refused ones are not counted)."""
        return len(self._open)

    def __call__(self) -> asyncio.Protocol:
        return _Gate(self)

    def admit(self) -> RequestHandler | None:
        """A fresh aiohttp handler with its header timer running, or None when the port is full."""
        if len(self._open) >= self._limits.max_connections:
            self.refused += 1
            self._refused.hit()
            return None
        handler = self._server()
        self._open.add(handler)
        self._timers[handler] = self._loop.call_later(self._limits.handshake_timeout, self._expire, handler)
        return handler

    def linger(self, gate: _Gate) -> bool:
        """Track a refused socket while its 503 drains; False when too many already do (close it bare)."""
        if len(self._lingering) >= MAX_LINGERING:
            return False
        self._lingering.add(gate)
        return True

    def unlinger(self, gate: _Gate) -> None:
        self._lingering.discard(gate)

    def close_refused(self) -> None:
        """Close the refused sockets still lingering (the port is shutting down)."""
        for gate in list(self._lingering):
            gate.close()

    def _release(self, handler: RequestHandler) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()
        self._open.discard(handler)

    def _expire(self, handler: RequestHandler) -> None:
        """No complete request line and headers in time: 408 and close."""
        if self._timers.pop(handler, None) is None:
            return
        self.timed_out += 1
        self._timed_out.hit()
        transport = handler.transport
        if transport is not None and not transport.is_closing():
            transport.write(self._timeout_reply)
        handler.force_close()


class _GuardedSite(web.SockSite):
    """``SockSite`` that serves its socket through a :class:`ConnectionGuard` instead of the bare server."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, guard: ConnectionGuard, timeout: float,
                 ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context, backlog=1024)
        self._guard = guard
        self._handshake_timeout = timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if self._ssl_context is not None:  # a TLS handshake gets the same deadline as the request headers
            extra["ssl_handshake_timeout"] = self._handshake_timeout
        self._server = await loop.create_server(self._guard, sock=self._sock, ssl=self._ssl_context,
                                                backlog=self._backlog, **extra)

    async def stop(self) -> None:
        self._guard.close_refused()
        await super().stop()


async def serve_app(app: web.Application, sock: socket.socket, limits: PortLimits, *,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, ConnectionGuard]:
    """Serve ``app`` on the bound, listening ``sock`` under ``limits``; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                           keepalive_timeout=limits.handshake_timeout, logger=server_logger())
    await runner.setup()
    try:
        assert runner.server is not None
        guard = ConnectionGuard(runner.server, limits)
        await _GuardedSite(runner, sock, guard, limits.handshake_timeout, ssl_context).start()
    except BaseException:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        raise
    return runner, guard
