"""One WebSocket to the engine that comes back after the engine restarts.

Both SDK connections (worker port, stream port) need the same loop: connect, run an ``on_open`` step (replay
registrations, re-join subscriptions) while frames are already being read, mark the link ready, read until the
socket closes, tell the owner, wait a backoff delay, connect again. Keeping it here lets the owners deal only with
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from ssl import SSLContext

import aiohttp

from streamhub.sdk.credentials import describe, redact_url

__all__ = ["Backoff", "Link", "is_refusal", "refusal_status"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnect attempts: ``initial * factor**attempt``, capped at ``maximum``, ±``jitter``.

    The jitter spreads the reconnects of many clients after an engine restart.
    """

    initial: float = 0.25
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.3

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (0-based)."""
        base = min(self.initial * self.factor ** min(attempt, 64), self.maximum)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * random.random() - 1.0)))


OnOpen = Callable[[], Awaitable[None]]
OnFrame = Callable[[bytes | str], None]
OnClose = Callable[[], None]
IsFatal = Callable[[BaseException], bool]


class Link:
    """A reconnecting WebSocket client.

    Args:
        session: the aiohttp session to connect with.
        url: the engine endpoint.
        on_open: awaited after every connect, while frames are read; the link is ready when it returns.
        on_frame: called with every text or binary frame, in order.
        on_close: called after every disconnect (also the last one).
        is_fatal: a connect error for which retrying is pointless (e.g. HTTP 401); the link then stops.
        on_fatal: called with that error.
        ssl: for ``wss://``: an ``SSLContext`` (e.g. trusting a private CA), True (system CAs, the default) or
            False (no certificate check; tests only).

    ``safe_url`` is the URL with credentials masked: the only form that goes into messages and logs.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, *, on_open: OnOpen, on_frame: OnFrame,
                 on_close: OnClose, backoff: Backoff, heartbeat: float | None = 20.0,
                 headers: Mapping[str, str] | None = None, protocols: Sequence[str] = (),
                 is_fatal: IsFatal | None = None, on_fatal: Callable[[BaseException], None] | None = None,
                 ssl: SSLContext | bool = True) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self._ssl = ssl
        self._session = session
        self._on_open = on_open
        self._on_frame = on_frame
        self._on_close = on_close
        self._backoff = backoff
        self._heartbeat = heartbeat
        self._headers = dict(headers or {})
        self._protocols = tuple(protocols)
        self._is_fatal = is_fatal or (lambda exc: False)
        self._on_fatal = on_fatal
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.generation = 0  # bumped on every successful connect
        self.last_error: BaseException | None = None

    @property
    def ready(self) -> bool:
        """Connected and ``on_open`` done."""
        return self._ready.is_set()

    @property
    def stopped(self) -> bool:
        """Closed by the owner, or gave up on a fatal error."""
        return self._stopped.is_set()

    def start(self) -> None:
        """Start connecting in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"streamhub-link {self.safe_url}")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until ready; False after ``timeout`` seconds or if the link stopped."""
        if self.ready:
            return True
        ready = asyncio.ensure_future(self._ready.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({ready, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            stopped.cancel()
        return self.ready

    async def send(self, payload: bytes) -> None:
        """Send one JSON text frame.

        Raises:
            ConnectionResetError: not connected, or the socket is closing (nothing was sent).
        """
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionResetError(f"not connected to {self.safe_url}")
        await ws.send_frame(payload, aiohttp.WSMsgType.TEXT)

    async def close(self) -> None:
        """Close the socket and stop reconnecting."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._stopped.set()

    # Private

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                ws = await self._connect()
                if ws is None:
                    if self.stopped:
                        return
                    await asyncio.sleep(self._backoff.delay(attempt))
                    attempt += 1
                    continue
                opened = await self._serve(ws)
                attempt = 0 if opened else attempt + 1
                if not self._closing:
                    await asyncio.sleep(self._backoff.delay(attempt))
        finally:
            self._stopped.set()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        try:
            return await self._session.ws_connect(
                self.url, headers=self._headers, protocols=self._protocols, heartbeat=self._heartbeat,
                max_msg_size=0, autoping=True, ssl=self._ssl)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            self.last_error = exc
            if self._is_fatal(exc) or isinstance(exc, ValueError):  # refused, or a URL/header aiohttp cannot use
                level = logging.DEBUG if self._on_fatal is not None else logging.ERROR  # the owner tells the user
                log.log(level, "cannot connect to %s (%s); not retrying", self.safe_url, refusal_status(exc))
                self._stopped.set()
                if self._on_fatal is not None:
                    self._on_fatal(exc)
            else:
                log.debug("cannot connect to %s: %s", self.safe_url, describe(exc))
            return None

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Read ``ws`` until it closes; returns True if it became ready."""
        self._ws = ws
        self.generation += 1
        opener = asyncio.create_task(self._open(ws))
        try:
            async for message in ws:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_frame(message.data)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    self.last_error = ws.exception()
                    break
        finally:
            opened = self.ready
            opener.cancel()
            self._ready.clear()
            self._ws = None
            if not self._closing:
                log.warning("connection to %s lost (close code %s); reconnecting", self.safe_url, ws.close_code)
            self._on_close()
            with contextlib.suppress(Exception):
                await ws.close()
        return opened

    async def _open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            await self._on_open()
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.debug("connection to %s dropped while opening: %s", self.safe_url, describe(exc))
            return
        except Exception:
            log.exception("opening %s failed; reconnecting", self.safe_url)
            await ws.close()
            return
        if self._ws is ws and not ws.closed:
            self._ready.set()


def is_refusal(exc: BaseException) -> bool:
    """True for an upgrade the engine answered 401 or 403: trying again with the same credentials is pointless."""
    return isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status in (401, 403)


def refusal_status(exc: BaseException) -> str:
    """``HTTP 401 Unauthorized`` for a refused upgrade, else the (redacted) error text."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"HTTP {exc.status} {_REASONS.get(exc.status, '')}".rstrip()
    return describe(exc)


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"}
