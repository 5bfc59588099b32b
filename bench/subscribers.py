"""The subscriber load generator: COUNT WebSocket clients in one process, counting bytes, never parsing events.

Run as its own process (``python -m bench.subscribers KIND PORT COUNT EVENTS``) so it never shares a core's time
slice with the server's event loop. Each connection does the handshake of its KIND (``raw``: upgrade only;
``streamhub``: upgrade, ``join``, wait for ``sync``; ``socketio``: upgrade, Engine.IO open, namespace connect),
then counts bytes: every event frame has the same size (read from the first frame's header), so frame ``k`` is
complete when ``(k + 1) * size`` bytes have arrived. That keeps the generator to one ``recv`` per wake-up and
no Python work per frame, so the server stays the bottleneck (the orchestrator records this process's CPU).

With ``--latency FILE`` each connection asks the kernel for receive timestamps (``SO_TIMESTAMPNS``), so a
delivery's time is when its bytes reached the socket, not when this process got round to it; the per-event
times of every connection are written to FILE as float64 (CLOCK_REALTIME seconds), connection-major.

With ``--source IP`` every connection leaves from that loopback address (each source address has its own ~28,000
ephemeral ports, so several generators on 127.0.0.2, 127.0.0.3, ... together open more than one address could).

Lines printed: ``subscribed {"seconds": ..., "failed": ..., "started": ..., "finished": ...}`` (``started`` and
``finished`` are ``time.monotonic()``, one clock for every process of the machine), then
``done {"last": ..., "complete": ...}`` (``last`` is ``time.monotonic()`` when the last connection got its last
byte; with ``--hold``, then ``saved`` once the times file is written). With EVENTS 0, or with ``--hold``, the
connections stay open until a line arrives on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import struct
import sys
import time
from array import array

import orjson

from bench.common import frame_length, text_frame

__all__ = ["Connection", "main"]

_SO_TIMESTAMPNS = 35  # Linux; SCM_TIMESTAMPNS has the same value
_IP_BIND_ADDRESS_NO_PORT = 24  # Linux: a bind to (source, 0) leaves the port to connect, which knows the peer
_ANC_SIZE = socket.CMSG_SPACE(16)
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_PATHS = {"raw": "/", "streamhub": "/", "socketio": "/socket.io/?EIO=4&transport=websocket"}
_READ = memoryview(bytearray(1 << 20))  # one receive buffer for every connection: its bytes are never kept


class Connection:
    """One subscriber socket: handshake, then byte counting.

    Args:
        kind: which handshake to do (``raw``, ``streamhub`` or ``socketio``).
        events: how many event frames to wait for.
        timestamps: record the kernel receive time of each event (latency runs).
    """

    def __init__(self, kind: str, index: int, events: int, timestamps: bool, source: str | None = None) -> None:
        self.kind = kind
        self.index = index
        self.events = events
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            self.sock.bind((source, 0))
        self.timestamps = timestamps
        if timestamps:
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.times = array("d", bytes(8 * events)) if timestamps else array("d")
        self.pending = b""  # handshake bytes not yet parsed
        self.head = b""  # first bytes of the first event frame, until its size is known
        self.counting = False
        self.frame_size = 0
        self.received = 0  # event bytes so far
        self.completed = 0  # event frames so far
        self.finished_at = 0.0
        loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    async def open(self, port: int) -> None:
        """Connect and start the handshake; ``subscribed`` resolves when the server has taken the subscription."""
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", port))
        self.sock.send(
            f"GET {_PATHS[self.kind]} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    # Reading

    def _on_readable(self) -> None:
        try:
            if self.timestamps:
                size, ancdata, _, _ = self.sock.recvmsg_into([_READ], _ANC_SIZE)
                stamp = _stamp(ancdata)
            else:
                size, stamp = self.sock.recv_into(_READ), 0.0
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(f"receive failed: {exc}")
            return
        if size == 0:
            self._fail("server closed the connection")
        elif self.counting:
            self._count(_READ[:size], stamp)
        else:
            self._handshake(bytes(_READ[:size]), stamp)

    def _count(self, data: memoryview, stamp: float) -> None:
        if not self.frame_size:
            self.head += bytes(data[: 10 - len(self.head)])
            self.frame_size = frame_length(self.head) or 0
        self.received += len(data)
        if not self.frame_size:
            return
        completed = min(self.events, self.received // self.frame_size)
        if self.timestamps:
            for k in range(self.completed, completed):
                self.times[k] = stamp
        self.completed = completed
        if completed >= self.events and not self.done.done():
            self.finished_at = time.monotonic()
            self.done.set_result(None)

    def _handshake(self, data: bytes, stamp: float) -> None:
        self.pending += data
        if not self.subscribed.done() and self.pending.startswith(b"HTTP/"):
            if b"\r\n\r\n" not in self.pending:
                return
            status, self.pending = self.pending.split(b"\r\n\r\n", 1)
            if b" 101 " not in status.split(b"\r\n", 1)[0]:
                self._fail(f"upgrade refused: {status.splitlines()[0]!r}")
                return
            self._upgraded()
        while not self.counting:
            size = frame_length(self.pending)
            if size is None or len(self.pending) < size:
                return
            header = {126: 4, 127: 10}.get(self.pending[1] & 0x7F, 2)
            payload, self.pending = self.pending[header:size], self.pending[size:]
            self._handshake_frame(payload)
        rest, self.pending = self.pending, b""
        if rest:
            self._count(memoryview(rest), stamp)

    def _upgraded(self) -> None:
        if self.kind == "streamhub":
            join = {"subscriptionId": f"s{self.index}", "streamName": "bench", "groupId": "g"}
            self.sock.send(text_frame(orjson.dumps({"type": "join", "data": join}), mask=True))
        elif self.kind == "raw":
            self._subscribed()

    def _handshake_frame(self, payload: bytes) -> None:
        if self.kind == "streamhub" and b'"sync"' in payload:
            self._subscribed()
        elif self.kind == "socketio" and payload.startswith(b"0{"):
            self.sock.send(text_frame(b"40", mask=True))  # Engine.IO open -> connect to the default namespace
        elif self.kind == "socketio" and payload.startswith(b"40"):
            self._subscribed()
        elif payload.startswith(b"44") or b'"error"' in payload:
            self._fail(f"refused: {payload[:200]!r}")

    def _subscribed(self) -> None:
        self.counting = True
        if not self.subscribed.done():
            self.subscribed.set_result(None)
        if self.events == 0 and not self.done.done():
            self.done.set_result(None)

    def _fail(self, reason: str) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        error = ConnectionError(f"subscriber {self.index}: {reason}")
        for future in (self.subscribed, self.done):
            if not future.done():
                future.set_exception(error)


def _stamp(ancdata: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
            seconds: int
            nanoseconds: int
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return time.time()


# The process


async def _subscribe_all(conns: list[Connection], port: int, concurrency: int) -> int:
    """Open every connection, at most ``concurrency`` handshakes at a time (a full listen backlog costs 1 s)."""
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(conn: Connection) -> None:
        nonlocal failed
        async with gate:
            try:
                await conn.open(port)
                await conn.subscribed
            except OSError:
                failed += 1

    await asyncio.gather(*(one(conn) for conn in conns))
    return failed


async def run(args: argparse.Namespace) -> None:
    conns = [Connection(args.kind, args.first + i, args.events, args.latency is not None, args.source)
             for i in range(args.count)]
    start = time.monotonic()
    failed = await asyncio.wait_for(_subscribe_all(conns, args.port, args.concurrency), args.timeout)
    end = time.monotonic()
    _report("subscribed", {"seconds": round(end - start, 4), "failed": failed, "started": start, "finished": end})
    if args.events == 0:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    else:
        await _wait_done(conns, args.timeout)
    if args.latency:
        await asyncio.to_thread(_save_latencies, args.latency, conns)
    if args.hold and args.events:
        _report("saved", {})
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for conn in conns:
        conn.close()


def _save_latencies(path: str, conns: list[Connection]) -> None:
    with open(path, "wb") as out:
        for conn in conns:
            conn.times.tofile(out)


async def _wait_done(conns: list[Connection], timeout: float) -> None:
    """Wait for every connection's last byte (bounded); report the last arrival and how many completed."""
    try:
        await asyncio.wait_for(asyncio.gather(*(c.done for c in conns)), timeout)
    except (TimeoutError, ConnectionError) as exc:
        print(f"subscribers: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    complete = [c for c in conns if c.done.done() and not c.done.exception()]
    last = max((c.finished_at for c in complete), default=0.0)
    _report("done", {"last": last, "complete": len(complete), "frames": sum(c.completed for c in conns)})


def _report(word: str, values: dict[str, object]) -> None:
    print(word, json.dumps(values), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(_PATHS))
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("events", type=int)
    parser.add_argument("--latency", help="write kernel receive times of every event here")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--source", help="loopback address to connect from (default: the kernel's choice)")
    parser.add_argument("--hold", action="store_true",
                        help="after the events (and the times file: line ``saved``), keep the connections open "
                             "until a line arrives on stdin")
    parser.add_argument("--first", type=int, default=0, help="index of the first connection (subscription ids)")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on each phase, seconds")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.count + 100)), hard))
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
