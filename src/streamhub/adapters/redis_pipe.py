"""Auto-pipelining over one Redis connection: the commands of one event-loop tick go out in one write.

Why: redis-py sends each command on a pooled connection and waits for its reply before that connection serves
another, so N concurrent calls cost N round trips and N passes through its per-command machinery (pool checkout,
timeouts, packing, parsing): most of the engine's CPU per call on the Redis path (bench/RESULTS.md). Here a call
appends its packed command to the connection's buffer and a future to its queue; the buffer is written once per
loop tick, and the replies (parsed by hiredis, as many as one read brings) resolve the futures in order.

What holds:

* Order: one connection, so Redis runs the commands in the order the calls were made (per group and overall).
* Isolation: an error reply fails its own call only (hiredis hands it over as a value, not a raise).
* A broken connection (reset, end of stream, unparseable reply), or one that leaves its oldest command unanswered
  for ``timeout`` seconds, fails every call in flight on it (their replies can no longer be matched) and is
  dropped; the next call connects again. Nothing is retried: a retried write could apply twice.
* Scripts run by ``EVALSHA``. Every new connection loads the registered scripts first; a ``NOSCRIPT`` reply (the
  cache was flushed meanwhile) falls back to ``EVAL`` with the body, as redis-py's ``Script`` does.
* Durable writes (``replicas`` > 0): a tick that carried a write marked ``durable`` ends with one ``WAIT``, and
  those writes answer only once it reports enough replicas (``NotReplicatedError`` otherwise): one round trip to
  the replicas per batch, not per write.

Errors are redis-py's exception classes, so the adapter maps them as it maps redis-py's own. redis-py opens every
connection (``open_streams``: URL, TLS, AUTH, SELECT); the pub/sub connection (``RedisLink``) speaks RESP the same
way, reading a burst of messages in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import hiredis
import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from streamhub.errors import AdapterError, ConfigError

__all__ = [
    "Closable",
    "NotReplicatedError",
    "Opener",
    "Packed",
    "Pipe",
    "RedisLink",
    "Script",
    "close_links",
    "connection_pool",
    "new_parser",
    "open_streams",
    "pack",
    "packed",
    "redis_call",
]

Arg = bytes | str | int
Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Opens one connection, authenticated and on the right database, and hands over its streams."""

MORE = object()
"""What ``new_parser().gets()`` returns while no complete reply is buffered."""

_READ_SIZE = 1 << 16


def new_parser() -> Any:
    """A hiredis RESP parser: error replies become ``ResponseError`` values, incomplete input ``MORE``."""
    return hiredis.Reader(notEnoughData=MORE, replyError=exceptions.ResponseError)


class NotReplicatedError(exceptions.ConnectionError):
    """A durable write ran on the primary, but ``WAIT`` did not see it on enough replicas in time: it may be lost
    if the primary fails now (a connection-class error, so callers report it as temporary)."""


class Packed(bytes):
    """Arguments already in RESP, spliced into a command as they are (a group's keys, say: built once, sent often).
    ``slot`` is the hash slot of the first key when a Redis Cluster router packed them, else None."""

    nargs: int
    slot: int | None = None


def packed(args: Sequence[Arg], slot: int | None = None) -> Packed:
    """``args`` as RESP bulk strings, ready to be spliced into ``pack``."""
    segment = Packed(pack(args).partition(b"\r\n")[2])
    segment.nargs = len(args)
    segment.slot = slot
    return segment


def pack(args: Sequence[Arg | Packed]) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b""]
    append = parts.append
    count = 0
    for arg in args:
        if isinstance(arg, Packed):
            append(arg)
            count += arg.nargs
            continue
        raw = arg if isinstance(arg, bytes) else arg.encode() if isinstance(arg, str) else b"%d" % arg
        append(b"$%d\r\n" % len(raw))
        append(raw)
        append(b"\r\n")
        count += 1
    parts[0] = b"*%d\r\n" % count
    return b"".join(parts)


class Script:
    """A Lua script called by its SHA1 (``Pipe.script`` registers it)."""

    __slots__ = ("body", "sha")

    def __init__(self, body: str) -> None:
        self.body = body.encode()
        self.sha = hashlib.sha1(self.body).hexdigest().encode()  # the name Redis gives it


class Pipe:
    """Every command of one adapter, on one pipelined connection.

    Args:
        opener: connects (redis-py does the handshake: TLS, AUTH, SELECT) and returns the streams.
        timeout: seconds the oldest command in flight may wait for its reply before the connection is dropped.
        replicas: replicas a ``durable`` write must reach before it answers (0: the server's answer is enough).
    """

    def __init__(self, opener: Opener, timeout: float, *, replicas: int = 0) -> None:
        self._opener = opener
        self._timeout = timeout
        # WAIT's own bound, under the connection's so an unanswered WAIT fails the writes, not the connection
        self._replicas = replicas
        self._wait = (b"WAIT", b"%d" % replicas, b"%d" % max(1, int(timeout * 800))) if replicas else None
        self._scripts: list[Script] = []
        self._conn: _Connection | None = None
        self._opening: asyncio.Future[_Connection] | None = None
        self.connections = 0  # opened so far (tests: a broken connection is replaced, not patched)

    def script(self, body: str) -> Script:
        """Register a script; it is loaded on every new connection."""
        return self.register(Script(body))

    def register(self, script: Script) -> Script:
        """Register a script made elsewhere (a cluster router shares one ``Script`` among its nodes' pipes)."""
        self._scripts.append(script)
        return script

    def packed_keys(self, keys: Sequence[Arg]) -> Packed:
        """``keys`` packed for ``run`` (a cluster router also notes their slot)."""
        return packed(keys)

    async def call(self, *args: Arg | Packed) -> Any:
        """Send one command with the others of this tick; return its reply, or raise its error."""
        conn = self._conn
        if conn is None:
            conn = await self._connect()
        return await conn.send(pack(args))

    async def run(self, script: Script, keys: Sequence[Arg] | Packed, args: Sequence[Arg | Packed], *,
                  durable: bool = False) -> Any:
        """``EVALSHA``, or ``EVAL`` if Redis no longer knows the script; a ``durable`` run also awaits the tick's
        ``WAIT`` (when the pipe was made with ``replicas``)."""
        conn = self._conn
        if conn is None:
            conn = await self._connect()
        split = (len(keys), *keys) if not isinstance(keys, Packed) else (keys.nargs, keys)
        wait = self._wait if durable else None
        try:
            if wait is None:  # the common case: no WAIT to await, no extra step
                return await conn.send(pack((b"EVALSHA", script.sha, *split, *args)))
            result, waited = await self._send_script(conn, pack((b"EVALSHA", script.sha, *split, *args)), wait)
        except exceptions.NoScriptError:
            conn = self._conn or await self._connect()
            result, waited = await self._send_script(conn, pack((b"EVAL", script.body, *split, *args)), wait)
        if waited is not None and (acked := await waited) < self._replicas:
            raise NotReplicatedError(f"written on the primary, but {acked} of {self._replicas} replicas confirmed it "
                                     "in time (it may be lost on a failover)")
        return result

    @staticmethod
    async def _send_script(conn: _Connection, command: bytes,
                           wait: Sequence[bytes] | None) -> tuple[Any, asyncio.Future[Any] | None]:
        """Queue a script call (and the tick's ``WAIT`` after it); return its reply and the ``WAIT``'s future."""
        reply = conn.send(command)
        waited = conn.barrier(wait) if wait is not None else None
        try:
            return await reply, waited
        except BaseException:
            if waited is not None:  # this call's failure is what counts; the WAIT's own is not news
                waited.add_done_callback(_retrieve)
            raise

    async def close(self) -> None:
        """Fail what is in flight and drop the connection."""
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close(exceptions.ConnectionError("the Redis adapter was closed"))

    # Private

    async def _connect(self) -> _Connection:
        """Open a connection, shared by every call that needs one meanwhile."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(_retrieve)
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Connection:
        try:
            reader, writer = await self._opener()
            conn = _Connection(reader, writer, self._timeout, self._dropped)
            try:
                await asyncio.gather(*(conn.send(pack((b"SCRIPT", b"LOAD", s.body))) for s in self._scripts))
            except BaseException as exc:
                await conn.close(exc if isinstance(exc, exceptions.RedisError) else None)
                raise
            self.connections += 1
            self._conn = conn
            return conn
        finally:
            self._opening = None

    def _dropped(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared connection attempt's failure as seen (each waiter got it already)."""
    if not future.cancelled():
        future.exception()


class _Connection:
    """One open connection: a write buffer flushed once per tick, the futures awaiting replies, a reader task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float,
                 dropped: Callable[[_Connection], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._dropped = dropped
        self._out: list[bytes] = []
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()  # (reply, deadline)
        self._barrier: tuple[bytes, asyncio.Future[Any]] | None = None  # the WAIT ending this tick's batch
        self._timer: asyncio.TimerHandle | None = None
        self._broken: exceptions.RedisError | None = None
        self._task = asyncio.create_task(self._read(), name="streamhub-redis-replies")

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Queue ``command``; the future gets its reply."""
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._broken is not None:
            future.set_exception(self._broken)
            return future
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(command)
        self._waiting.append((future, self._loop.time() + self._timeout))
        if self._timer is None:
            self._timer = self._loop.call_at(self._waiting[0][1], self._expire)
        return future

    def barrier(self, wait: Sequence[bytes]) -> asyncio.Future[Any]:
        """The reply of the ``wait`` command sent after everything queued this tick (one per tick, shared)."""
        if self._barrier is None:
            future: asyncio.Future[Any] = self._loop.create_future()
            if self._broken is not None:
                future.set_exception(self._broken)
                return future
            self._barrier = (pack(wait), future)
            if not self._out:
                self._loop.call_soon(self._flush)
        return self._barrier[1]

    async def close(self, error: BaseException | None) -> None:
        self._break(error or exceptions.ConnectionError("connection closed"))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    def _flush(self) -> None:
        barrier, self._barrier = self._barrier, None
        if barrier is not None and self._broken is None:  # after every command of the tick, so it covers them
            self._out.append(barrier[0])
            self._waiting.append((barrier[1], self._loop.time() + self._timeout))
        if self._out and self._broken is None:
            self._writer.write(b"".join(self._out))
        self._out.clear()

    async def _read(self) -> None:
        parser = new_parser()
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise exceptions.ConnectionError("Redis closed the connection")
                parser.feed(data)
                reply = parser.gets()
                while reply is not MORE:
                    self._resolve(reply)
                    reply = parser.gets()
        except exceptions.RedisError as exc:
            self._break(exc)
        except (OSError, hiredis.ProtocolError) as exc:
            self._break(exceptions.ConnectionError(f"connection broken: {exc!r}"))

    def _resolve(self, reply: Any) -> None:
        if not self._waiting:
            raise exceptions.ConnectionError("Redis sent a reply nobody asked for")
        future, _ = self._waiting.popleft()
        if future.done():  # the caller gave up (cancelled)
            return
        if isinstance(reply, exceptions.ResponseError):
            message = str(reply)
            future.set_exception(exceptions.NoScriptError(message) if message.startswith("NOSCRIPT") else reply)
        else:
            future.set_result(reply)

    def _expire(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if deadline <= self._loop.time():
            self._break(exceptions.TimeoutError(f"no reply within {self._timeout}s"))
        else:
            self._timer = self._loop.call_at(deadline, self._expire)

    def _break(self, error: exceptions.RedisError | BaseException) -> None:
        """Fail every call in flight and drop the connection (a later call opens a new one)."""
        if self._broken is not None:
            return
        self._broken = error if isinstance(error, exceptions.RedisError) else exceptions.ConnectionError(str(error))
        self._dropped(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, deque()
        if self._barrier is not None:
            waiting.append((self._barrier[1], 0.0))
            self._barrier = None
        for future, _ in waiting:
            if not future.done():
                future.set_exception(self._broken)
        self._out.clear()
        self._writer.close()


async def open_streams(pool: aioredis.ConnectionPool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect with redis-py (URL, TLS, AUTH, SELECT, timeouts), then take its streams over for our own RESP."""
    conn = pool.make_connection()  # type: ignore[no-untyped-call]
    await conn.connect()
    reader, writer = conn._reader, conn._writer  # redis-py has no public hand-over
    if reader is None or writer is None:
        raise exceptions.ConnectionError("redis-py connected but exposes no streams (unsupported redis-py version)")
    conn._reader = conn._writer = None  # ours now: redis-py must not close them
    return reader, writer


class RedisLink:
    """A ``pubsub.Link`` over one dedicated connection (same URL and credentials as the pool).

    Reads as much as the socket holds and parses it with hiredis, so a burst of messages costs one wake-up, not
    one read (and timeout) per message.
    """

    def __init__(self, pool: aioredis.ConnectionPool) -> None:
        self._pool = pool
        self._parser = new_parser()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def open(self) -> None:
        self._streams = await open_streams(self._pool)

    async def send(self, *args: bytes | str) -> None:
        if self._streams is None:
            raise exceptions.ConnectionError("not connected")
        self._streams[1].write(pack(args))

    async def read(self, timeout: float) -> Any:
        reply = self._parser.gets()
        while reply is MORE:
            if self._streams is None:
                raise exceptions.ConnectionError("not connected")
            try:
                async with asyncio.timeout(timeout):
                    data = await self._streams[0].read(1 << 16)
            except TimeoutError:
                return None
            if not data:
                raise exceptions.ConnectionError("Redis closed the pub/sub connection")
            self._parser.feed(data)
            reply = self._parser.gets()
        if isinstance(reply, exceptions.ResponseError):
            raise reply
        return reply

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(Exception):
                await streams[1].wait_closed()


def connection_pool(url: str, where: str, *, max_connections: int, timeout: float,
                    connect_timeout: float) -> aioredis.BlockingConnectionPool:
    """The pool every Redis piece opens its connections from: no retries (callers fail fast and report), RESP2 on
    every redis-py version (pub/sub messages are plain replies). A URL redis-py cannot use is a ConfigError naming
    it (``where``: the URL without its password)."""
    try:
        return aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=connect_timeout, retry=Retry(NoBackoff(), 0), protocol=2)
    except ValueError as exc:
        raise ConfigError(f"redis_url {where} is not a usable Redis URL: {exc}") from None


class Closable(Protocol):
    async def close(self) -> None: ...


async def close_links(subscriber: Closable | None, pipe: Closable | None,
                      pool: aioredis.ConnectionPool | None) -> None:
    """Drop what one Redis piece (store, presence, engines' bus) opened: its subscription first, so nothing more is
    delivered, then its pipe (None when it borrows the adapter's), then its connection pool (None on a cluster)."""
    if subscriber is not None:
        await subscriber.close()
    if pipe is not None:
        await pipe.close()
    if pool is not None:
        await pool.disconnect()


async def redis_call(where: str, what: str, command: Awaitable[Any]) -> Any:
    """Await a Redis command; its failure becomes an ``AdapterError`` naming Redis, the URL and what was being done
    (temporary when the connection broke or timed out, so callers can retry later)."""
    try:
        return await command
    except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
        raise AdapterError(f"Redis at {where} unreachable while {what}: {exc}", temporary=True) from exc
    except exceptions.RedisError as exc:
        raise AdapterError(f"Redis at {where} failed while {what}: {exc}") from exc
