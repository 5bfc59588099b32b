"""The client WebSocket endpoint (stream port, default 3112).

Per connection: auth before the upgrade (401 on refusal), then a read loop that feeds frames to the sans-I/O
``ClientSession`` and hands joins/leaves to the engine. Outbound frames go through an ``Outbox`` straight to the
socket transport (one write per tick); a client that cannot keep up is closed with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from streamhub.engine.client_sessions import ClientConnection
from streamhub.engine.engine import Engine
from streamhub.engine.outbox import Outbox
from streamhub.errors import InvalidRequest, StreamhubError
from streamhub.protocol import close_codes
from streamhub.protocol.client_messages import Join, PresenceRequest, error_frame
from streamhub.protocol.codec import encode
from streamhub.transport.access import OriginPolicy
from streamhub.transport.auth import AuthDecision, authenticate
from streamhub.transport.sockets import BackgroundTasks, close_going_away, release, socket_writer
from streamhub.transport.static_files import static_routes

__all__ = ["ClientEndpoint", "ClientEndpointSettings"]

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0  # seconds a cut-off client gets to acknowledge the close before the socket is dropped


@dataclass(frozen=True, slots=True)
class ClientEndpointSettings:
    """Limits and auth of the stream port."""

    auth_function: str | None = None
    auth_timeout: float = 10.0
    max_message_size: int = 1024 * 1024
    max_pending_bytes: int = 4 * 1024 * 1024
    heartbeat: float | None = 30.0  # seconds between server pings; a peer that does not answer is dropped
    max_subscriptions: int | None = 1000  # open subscriptions per connection (None: no cap)
    allowed_origins: tuple[str, ...] = ()  # browser pages that may connect (empty: any); checked before auth


class ClientEndpoint:
    """aiohttp handlers for ``/`` and the documented ``/stream/<stream>/<group>/`` auto-join form.

    The auth function guards the WebSocket only; ``/client.js`` is public code served to any page.
    """

    def __init__(self, engine: Engine, settings: ClientEndpointSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._origins = OriginPolicy(settings.allowed_origins)
        self.connections: dict[str, ClientConnection] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._closers = BackgroundTasks()

    def routes(self) -> list[web.RouteDef]:
        """Routes to mount on the stream port's application: the WebSocket, and the browser client files."""
        return [
            web.get("/", self.handle),
            web.get("/stream/{stream}/{group}", self.handle),
            web.get("/stream/{stream}/{group}/", self.handle),
            *static_routes(),
        ]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Check the Origin, authenticate, upgrade, then serve the connection until it closes."""
        if (refusal := self._origins.refusal(request)) is not None:
            self._engine.metrics.connection_refused("stream", "origin")
            return refusal
        decision = await self._authenticate(request)
        if not decision.allowed:
            self._engine.metrics.connection_refused("stream", "auth")
            return web.json_response({"error": "unauthorized", "message": decision.reason}, status=401)
        ws = web.WebSocketResponse(
            max_msg_size=self._settings.max_message_size,
            compress=False,
            protocols=_first_offered_protocol(request),
            timeout=_CLOSE_TIMEOUT,
            heartbeat=self._settings.heartbeat,
        )
        await ws.prepare(request)
        conn = self._open(ws, request, decision.context)
        log.debug("client %s connected from %s", conn.connection_id, request.remote)
        self._sockets.add(ws)
        try:
            await self._auto_join(conn, request)
            await self._read_loop(conn, ws)
        finally:
            release(ws, request)
            self._sockets.discard(ws)
            self.connections.pop(conn.connection_id, None)
            await self._engine.clients.disconnect(conn)
            log.debug("client %s disconnected (close code %s)", conn.connection_id, ws.close_code)
        return ws

    async def close_all(self) -> None:
        """Close every client socket with 1001 so clients reconnect at once instead of waiting out a timeout."""
        await asyncio.gather(*(close_going_away(ws) for ws in list(self._sockets)))

    # Private

    async def _authenticate(self, request: web.Request) -> AuthDecision:
        function_id = self._settings.auth_function
        if function_id is None:
            return AuthDecision(True)
        return await authenticate(self._engine.call, function_id, request, self._settings.auth_timeout)

    def _open(self, ws: web.WebSocketResponse, request: web.Request, context: object) -> ClientConnection:
        transport = request.transport
        assert transport is not None
        connection_id = str(uuid.uuid4())

        def cut_off() -> None:
            log.warning("client %s cannot keep up; closing with %d", connection_id, close_codes.TRY_AGAIN_LATER)
            self._engine.metrics.cut_off("stream")
            self._closers.spawn(_close_slow(ws, transport))

        outbox = Outbox(socket_writer(transport), transport.get_write_buffer_size, cut_off,
                        self._settings.max_pending_bytes)
        conn = ClientConnection(connection_id, outbox, context, self._settings.max_subscriptions)
        self.connections[connection_id] = conn
        return conn

    async def _auto_join(self, conn: ClientConnection, request: web.Request) -> None:
        stream = request.match_info.get("stream")
        group = request.match_info.get("group")
        if stream is not None and group is not None:
            await self._on_frame(conn, _join_frame(stream, group))

    async def _read_loop(self, conn: ClientConnection, ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self._on_frame(conn, message.data)
            elif message.type == WSMsgType.ERROR:
                log.info("client %s: %s", conn.connection_id, ws.exception())
                break

    async def _on_frame(self, conn: ClientConnection, frame: bytes | str) -> None:
        try:
            message = conn.session.receive(frame)
        except InvalidRequest as exc:
            conn.send(error_frame(exc))
            return
        if message is None:
            return
        if isinstance(message, PresenceRequest):
            ids: dict[str, str] = {"request_id": message.data.requestId}
        else:
            ids = {"subscription_id": message.data.subscriptionId}
        try:
            if isinstance(message, Join):
                await self._engine.clients.join(conn, message.data)
            elif isinstance(message, PresenceRequest):
                await self._engine.clients.presence_request(conn, message.data)
            else:
                await self._engine.clients.leave(conn, message.data)
        except StreamhubError as exc:
            log.debug("client %s: %s refused: %s", conn.connection_id, type(message).__name__.lower(), exc.message)
            conn.send(error_frame(exc, **ids))
        except Exception:  # a bug, not the client's fault: answer and keep the connection
            log.exception("client %s: %s failed", conn.connection_id, type(message).__name__.lower())
            conn.send(error_frame(StreamhubError("internal error"), **ids))


async def _close_slow(ws: web.WebSocketResponse, transport: asyncio.Transport) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=close_codes.TRY_AGAIN_LATER, message=b"slow consumer"),
                               _CLOSE_TIMEOUT)
    if not transport.is_closing():
        transport.abort()


def _first_offered_protocol(request: web.Request) -> tuple[str, ...]:
    """Echo the first offered subprotocol: browsers fail a handshake where the server picks none."""
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    first = offered.split(",")[0].strip()
    return (first,) if first else ()


def _join_frame(stream: str, group: str) -> bytes:
    """The join a client would send for the documented ``/stream/<stream>/<group>/`` URL form."""
    return encode({"type": "join", "data": {"subscriptionId": f"url:{stream}/{group}", "streamName": stream,
                                            "groupId": group}})
