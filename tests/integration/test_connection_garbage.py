"""A closed connection must leave no cyclic garbage: reference counting frees it, no full collection needed.

Why it matters: a frozen heap (``streamhub.heap``) is only ever freed by reference counting, so a connection
that died in a reference cycle would leak for good; and cyclic garbage is what makes full collections grow with
the number of connections. N real sockets connect (stream port: upgrade, ``join``, ``sync``; worker port:
upgrade, ``workerregistered``), then close in one of the ways a connection ends; once the server has let go of
every one, ``gc.collect()`` must find (almost) nothing.

Tolerance: a per-connection cycle is at least two objects per connection, so ``2 * N`` or more; ``N // 4``
leaves room for a few objects the test run itself may leave (one-off caches, a logging record) and still
fails on any per-connection cycle. Runs on uvloop, the loop ``streamhub serve`` uses: the standard library's
selector transport of Python 3.11 holds itself in a cycle (its read callback), which is not ours to break.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from streamhub.transport.server import Server
from tests.conftest import make_config
from tests.raw_clients import RawClient, end_all, stream_client, worker_client

COUNT = 200


async def _cyclic_garbage(open_one: Callable[[Server, int], Awaitable[RawClient]], ending: str, port: str,
                          heartbeat: bool) -> int:
    config = make_config(heartbeat_ms=30_000 if heartbeat else 0)
    srv = Server(config)
    await srv.start()
    try:
        clients = [await open_one(srv, i) for i in range(COUNT)]
        assert srv.session_counts()[port] == COUNT
        gc.collect()
        gc.disable()  # from here on only the collection below may free cyclic garbage
        try:
            await end_all(srv, {port: clients}, ending)
            return gc.collect()
        finally:
            gc.enable()
    finally:
        await srv.close()


@pytest.mark.parametrize("heartbeat", [False, True], ids=["no-pings", "pings"])
@pytest.mark.parametrize("ending", ["drop", "clean", "server"])
def test_closed_stream_connections_leave_no_cyclic_garbage(ending: str, heartbeat: bool) -> None:
    garbage = uvloop.run(_cyclic_garbage(stream_client, ending, "stream", heartbeat))
    assert garbage <= COUNT // 4, f"{garbage} objects of cyclic garbage after closing {COUNT} connections"


@pytest.mark.parametrize("ending", ["drop", "clean", "server"])
def test_closed_worker_connections_leave_no_cyclic_garbage(ending: str) -> None:
    garbage = uvloop.run(_cyclic_garbage(worker_client, ending, "worker", False))
    assert garbage <= COUNT // 4, f"{garbage} objects of cyclic garbage after closing {COUNT} connections"
