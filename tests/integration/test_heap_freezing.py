"""With survivors frozen (``streamhub.heap``), connections that come and go in rounds leave memory flat.

Frozen objects are freed only by reference counting, so anything of a connection left in a cycle would pile up
round after round. Each round: 150 stream connections (upgrade, join, sync) and 10 worker connections that
send an event each to the subscribers, then a full collection (which freezes them: the threshold is set low),
then every connection ends one of three ways. Thaws are off here (``turnover`` infinite), so nothing but
reference counting frees what was frozen. Measured after each round, once the server let go: GC-tracked
objects, frozen ones included, and RSS.

Tolerance: a leak of one object per connection is 160 per round, 640 over the four rounds after the first; the
bound is 100 objects in all (one-off caches may warm up after the first round; measured: 0). RSS is the coarse
check: 4 MiB over those rounds; aiohttp's cycles left in the frozen heap (~45 objects per connection) grew it by
6.8 MiB, and the object count by 19,770.
"""

from __future__ import annotations

import asyncio
import gc
import resource
from pathlib import Path

import orjson
import uvloop

from streamhub.config import AdapterConfig
from streamhub.heap import SurvivorFreezer
from streamhub.transport.server import Server
from tests.conftest import make_config
from tests.raw_clients import RawClient, end_all, frame, stream_client, worker_client

STREAM, WORKERS, ROUNDS = 150, 10, 5
ENDINGS = ("drop", "clean", "server")


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


async def _call(client: RawClient, index: int) -> None:
    """One ``stream::send`` from a worker connection (an event to every subscriber, nothing stored)."""
    call = {"type": "invokefunction", "invocation_id": f"c{index}", "function_id": "stream::send",
            "data": {"stream_name": "s", "group_id": "g", "type": "ping", "data": {"n": index}}}
    await asyncio.get_running_loop().sock_sendall(client.sock, frame(0x1, orjson.dumps(call)))
    await client.read_until(b"invocationresult")


async def _round(srv: Server, number: int) -> None:
    ending = ENDINGS[number % len(ENDINGS)]
    streams = [await stream_client(srv, i) for i in range(STREAM)]
    workers = [await worker_client(srv, i) for i in range(WORKERS)]
    await asyncio.gather(*(_call(worker, i) for i, worker in enumerate(workers)))
    gc.collect()  # survivors: the connections of this round, frozen by the hook
    await end_all(srv, {"stream": streams, "worker": workers}, ending)


async def _rounds(freezer: SurvivorFreezer) -> list[tuple[int, int]]:
    # The store keeps the last events for replays: a change log of 5 is full after the first round, not growing.
    srv = Server(make_config(heartbeat_ms=30_000, adapter=AdapterConfig(change_log_size=5)))
    await srv.start()
    figures = []
    try:
        for number in range(ROUNDS):
            await _round(srv, number)
            gc.collect()
            figures.append((len(gc.get_objects()) + gc.get_freeze_count(), _rss()))
    finally:
        await srv.close()
    assert freezer.freezes >= ROUNDS
    assert freezer.thaws == 0
    return figures


def test_frozen_connections_leave_memory_flat() -> None:
    gc.collect()
    freezer = SurvivorFreezer(min_survivors=2_000, turnover=float("inf"))
    freezer.install()
    try:
        figures = uvloop.run(_rounds(freezer))
    finally:
        freezer.uninstall()
        gc.unfreeze()
    objects = [count for count, _ in figures]
    rss = [size for _, size in figures]
    print(f"tracked objects after each round: {objects}; RSS MiB: {[round(r / 2**20, 1) for r in rss]}")
    assert objects[-1] - objects[1] <= 100, objects
    assert rss[-1] - rss[1] <= 4 * 2**20, rss
