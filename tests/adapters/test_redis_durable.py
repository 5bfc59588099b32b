"""``durable_replicas``: a write is acknowledged only once that many replicas hold it (Redis ``WAIT``).

A real primary and a real replica (``REPLICAOF``). What must hold: an acknowledged write is already on the replica;
the writes of one loop tick share one ``WAIT`` (not one each); with the replica frozen, writes fail with a
temporary error that says the replica did not confirm, instead of being acknowledged unprotected.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streamhub.adapters.redis import RedisAdapter
from streamhub.core.model import ItemRef
from streamhub.errors import AdapterError
from tests.helpers import timeout, wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary, replica = RedisServer(tmp_path / "primary"), RedisServer(tmp_path / "replica")
    primary.start()
    replica.start()
    try:
        with primary.client() as client:
            client.config_set("repl-diskless-sync-delay", 0)  # the default waits 5 s for more replicas
        with replica.client() as client:
            client.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + timeout(10)
        while not (_linked(replica) and _online(primary)):
            assert time.monotonic() < deadline, "the replica did not link to the primary"
            time.sleep(0.02)
        with primary.client() as client:  # right after the sync the replica's first ack can take up to a second
            while client.set("warm-up", 1) and client.wait(1, 100) < 1:
                assert time.monotonic() < deadline, "the replica does not acknowledge writes"
        yield primary, replica
    finally:
        for server in (primary, replica):
            if server.proc is not None:
                os.kill(server.proc.pid, signal.SIGCONT)
            server.kill()


def _wait_calls(server: RedisServer) -> int:
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def test_acknowledged_writes_are_on_the_replica_and_share_one_wait_per_batch(
        primary_and_replica: tuple[RedisServer, RedisServer], key_prefix: str) -> None:
    primary, replica = primary_and_replica
    adapter = RedisAdapter(primary.url, key_prefix, durable_replicas=1)
    await adapter.start(lambda event: None)
    try:
        before = _wait_calls(primary)
        await asyncio.gather(*(adapter.set(ItemRef("s", f"g{n % 5}", f"i{n}"), {"n": n}) for n in range(200)))
        waits = _wait_calls(primary) - before
        assert 1 <= waits <= 20, f"{waits} WAITs for 200 concurrent writes: expected one per pipelined batch"
        with replica.client() as client:  # acknowledged means already on the replica, without waiting
            stored = sum(client.hlen(key) for key in client.keys(f"{key_prefix}i:*"))
        assert stored == 200
        change = await adapter.delete(ItemRef("s", "g0", "i0"))
        assert change.existed
        with replica.client() as client:
            assert client.hget(adapter.keys.items("s", "g0"), b"i0") is None
    finally:
        await adapter.close()


async def test_a_write_no_replica_confirms_fails_as_temporary_and_says_why(
        primary_and_replica: tuple[RedisServer, RedisServer], key_prefix: str) -> None:
    primary, replica = primary_and_replica
    adapter = RedisAdapter(primary.url, key_prefix, durable_replicas=1, timeout=1.0)
    await adapter.start(lambda event: None)
    try:
        await adapter.set(ItemRef("s", "g", "before"), 1)
        assert replica.proc is not None
        os.kill(replica.proc.pid, signal.SIGSTOP)
        with pytest.raises(AdapterError) as refused:
            await adapter.set(ItemRef("s", "g", "during"), 2)
        assert refused.value.temporary
        assert "0 of 1 replicas confirmed" in refused.value.message
        os.kill(replica.proc.pid, signal.SIGCONT)
        await wait_until(lambda: _linked(replica))
        await adapter.set(ItemRef("s", "g", "after"), 3)  # the same connection serves on once the replica is back
        assert await adapter.get(ItemRef("s", "g", "after")) == (True, 3)
    finally:
        await adapter.close()


def _online(primary: RedisServer) -> bool:
    """The primary counts its replica as online (so WAIT can count its acknowledgements)."""
    with primary.client() as client:
        replica = client.info("replication").get("slave0")
    return isinstance(replica, dict) and replica.get("state") == "online"


def _linked(server: RedisServer) -> bool:
    try:
        with server.client() as client:
            return client.info("replication").get("master_link_status") == "up"
    except redis.RedisError:
        return False
