"""Auto-pipelining (``adapters/redis_pipe.py``) against a real redis-server, seen through a TCP relay.

The relay sits between the adapter and Redis: it counts how many reads the commands arrived in (one tick's calls
share one write, so they arrive together), can hold Redis's replies back (calls stay in flight) and can cut the
connection mid-pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamhub.adapters.redis import RedisAdapter
from streamhub.adapters.redis_pipe import pack, packed
from streamhub.core.model import CUSTOM, EncodedEvent, ItemRef, StreamEvent
from streamhub.errors import AdapterError
from tests.adapters.conftest import Store
from tests.helpers import wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


class Relay:
    """A TCP relay to Redis that records the client's writes and can hold replies or cut every connection."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self.chunks: list[bytes] = []  # client -> Redis, as received
        self.released = asyncio.Event()
        self.released.set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Close every connection in both directions (Redis went away mid-pipeline)."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def commands(self, name: bytes) -> int:
        return b"".join(self.chunks).count(b"\r\n" + name + b"\r\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pump(reader, up_writer, record=True), self._pump(up_reader, writer, record=False),
                             return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool) -> None:
        try:
            while data := await reader.read(1 << 16):
                if record:
                    self.chunks.append(data)
                else:
                    await self.released.wait()
                writer.write(data)
        finally:
            writer.transport.abort()


@pytest.fixture
async def relay(redis_server: RedisServer) -> AsyncIterator[Relay]:
    async with Relay(redis_server.port) as running:
        yield running


@pytest.fixture
async def relayed(relay: Relay, key_prefix: str) -> AsyncIterator[Store]:
    """An adapter whose command connection goes through the relay (timeout short, for the held-replies test)."""
    store = await Store("redis", RedisAdapter(relay.url, key_prefix, timeout=0.5)).start()
    try:
        yield store
    finally:
        await store.adapter.close()


async def test_concurrent_writes_to_few_groups_share_writes_and_keep_each_groups_order(
        relayed: Store, relay: Relay, redis_server: RedisServer, key_prefix: str) -> None:
    watcher = await Store("redis", RedisAdapter(redis_server.url, key_prefix)).start()
    try:
        groups = ["g0", "g1", "g2"]
        for group in groups:
            await watcher.adapter.watch("s", group)
        relay.chunks.clear()
        calls = [relayed.adapter.set(ItemRef("s", groups[n % 3], f"i{n % 7}"), n) for n in range(300)]
        changes = await asyncio.gather(*calls)
        # 300 scripts issued in one tick reach Redis in a handful of reads, not 300 round trips
        assert relay.commands(b"EVALSHA") == 300 and len(relay.chunks) <= 10, len(relay.chunks)
        events = await watcher.events(300)
        for group in groups:
            sent = [change.event for change in changes if change.event and change.event.group == group]
            assert [event.offset for event in sent] == list(range(1, 101))  # issue order = commit order
            seen = [event for event in events if event.group == group]
            assert [event.offset for event in seen] == list(range(1, 101))  # in order, no gap
            assert seen == sent  # and exactly the events the writes returned
        assert all(isinstance(event, EncodedEvent) for event in events)
    finally:
        await watcher.adapter.close()


async def test_one_failing_command_among_many_fails_alone(
        relayed: Store, relay: Relay, redis_server: RedisServer, key_prefix: str) -> None:
    adapter = relayed.adapter
    assert isinstance(adapter, RedisAdapter)
    with redis_server.client() as client:
        client.set(adapter.keys.items("s", "broken"), "a string where the items hash belongs")
    relay.chunks.clear()
    results: list[Any] = await asyncio.gather(
        *(adapter.set(ItemRef("s", "g", f"i{n}"), n) for n in range(20)),
        adapter.set(ItemRef("s", "broken", "i"), "x"),  # WRONGTYPE inside the script
        adapter.get(ItemRef("s", "broken", "i")),  # WRONGTYPE on a plain command
        *(adapter.set(ItemRef("s", "g", f"j{n}"), n) for n in range(20)),
        return_exceptions=True)
    assert len(relay.chunks) <= 3  # they were in the same pipeline
    failed = results[20:22]
    assert all(isinstance(error, AdapterError) and not error.temporary and "WRONGTYPE" in error.message
               and "s/broken/i" in error.message for error in failed), failed
    assert [change.event.offset for change in results[:20] + results[22:]] == list(range(1, 41))
    assert await adapter.list_items("s", "g") == [*range(20), *range(20)]


async def test_a_connection_cut_mid_pipeline_fails_the_calls_in_flight_then_reconnects(
        relayed: Store, relay: Relay, redis_server: RedisServer) -> None:
    adapter = relayed.adapter
    assert isinstance(adapter, RedisAdapter)
    relay.released.clear()  # Redis runs the commands; its replies stay in the relay
    calls = [asyncio.ensure_future(adapter.set(ItemRef("s", "g", f"i{n}"), n)) for n in range(30)]
    with redis_server.client() as client:
        await wait_until(lambda: client.hlen(adapter.keys.items("s", "g")) == 30, 5)
    relay.cut()
    relay.released.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(error, AdapterError) and error.temporary and error.code == "adapter_error"
               and "unreachable" in error.message for error in results), results
    assert (await adapter.set(ItemRef("s", "g", "after"), 1)).event.offset == 31  # type: ignore[union-attr]
    assert await adapter.get(ItemRef("s", "g", "i29")) == (True, 29)  # applied, though its reply was lost


async def test_replies_held_past_the_timeout_fail_in_flight_calls_then_a_new_connection_serves(
        relayed: Store, relay: Relay) -> None:
    adapter = relayed.adapter
    relay.released.clear()
    results = await asyncio.gather(*(adapter.get(ItemRef("s", "g", f"i{n}")) for n in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(error, AdapterError) and error.temporary and "did not answer within 0.5s" in error.message
               for error in results), results
    relay.released.set()
    assert await adapter.set(ItemRef("s", "g", "i"), "fine") is not None
    assert await adapter.get(ItemRef("s", "g", "i")) == (True, "fine")


async def test_a_flushed_script_cache_falls_back_to_eval(
        relayed: Store, relay: Relay, redis_server: RedisServer) -> None:
    adapter = relayed.adapter
    await adapter.set(ItemRef("s", "g", "a"), 1)
    with redis_server.client() as client:
        client.script_flush()
    relay.chunks.clear()
    changes = await asyncio.gather(*(adapter.set(ItemRef("s", "g", f"i{n}"), n) for n in range(10)),
                                   adapter.send(StreamEvent("s", "g", None, CUSTOM, "hi", "t")))
    assert [change.offset if isinstance(change, StreamEvent) else change.event.offset  # type: ignore[union-attr]
            for change in changes] == list(range(2, 13))
    assert relay.commands(b"EVAL") == 11  # each NOSCRIPT answered by EVAL with the body
    with redis_server.client() as client:
        assert all(client.script_exists(*(script.sha.decode() for script in (adapter._write, adapter._send))))


async def test_encoded_events_decode_only_when_read(redis_server: RedisServer, key_prefix: str) -> None:
    store = await Store("redis", RedisAdapter(redis_server.url, key_prefix)).start()
    try:
        await store.adapter.watch("s", "g")
        change = await store.adapter.set(ItemRef("s", "g", "é:\n\"x\""), {"v": [1.5, "ünï", None]})
        [event] = await store.events(1)
        assert isinstance(event, EncodedEvent) and event.offset == 1 and event.group == "g"
        assert event._decoded is None  # routing needed only the group and the offset
        assert event.to_json() == change.event.to_json()  # type: ignore[union-attr]  # the same bytes
        assert event == change.event and event.item == "é:\n\"x\"" and event.data == {"v": [1.5, "ünï", None]}
    finally:
        await store.adapter.close()


def test_packed_segments_splice_into_a_command_as_their_arguments() -> None:
    keys = [b"k1", "k\u00e9", b""]
    assert pack([b"EVALSHA", b"sha", 3, packed(keys), 42, packed([]), b"x"]) == pack(
        [b"EVALSHA", b"sha", 3, *keys, 42, b"x"]) == (
        b"*8\r\n$7\r\nEVALSHA\r\n$3\r\nsha\r\n$1\r\n3\r\n$2\r\nk1\r\n$3\r\nk\xc3\xa9\r\n$0\r\n\r\n$2\r\n42\r\n$1\r\nx\r\n")
