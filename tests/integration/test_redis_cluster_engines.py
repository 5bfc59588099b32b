"""Two real engine processes on one real Redis Cluster (3 primaries) form one system: presence of a client on
engine A seen by a client on engine B, a worker's function on A called through B, and the members of an engine
killed with ``kill -9`` removed by the survivor within the lease (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Subscriber, TestWorker, timeout
from tests.integration.test_cluster_engines import until_answers
from tests.integration.test_presence_engines import Roster, subscribed
from tests.process import EngineProcess
from tests.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis_cluster

TTL_MS = 1500
LEASE_MS = 1500


def engine(workdir: Path, url: str, prefix: str) -> EngineProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return EngineProcess(workdir, (
        f"presence_ttl_ms: {TTL_MS}\n"
        f"      cluster_lease_ms: {LEASE_MS}\n"
        "      adapter:\n"
        "        class: modules::stream::adapters::RedisAdapter\n"
        "        config:\n"
        f"          redis_url: \"{url}\"\n"
        f"          key_prefix: \"{prefix}\"\n"))


@pytest.fixture
async def pair(tmp_path: Path, redis_cluster: RedisCluster,
               key_prefix: str) -> AsyncIterator[tuple[EngineProcess, ...]]:
    engines = [engine(tmp_path / f"engine-{n}", redis_cluster.url, key_prefix) for n in range(2)]
    await asyncio.gather(*(e.start() for e in engines))
    try:
        yield tuple(engines)
    finally:
        await asyncio.gather(*(e.stop() for e in engines))


async def test_a_client_on_engine_a_is_present_for_a_client_on_engine_b(pair: tuple[EngineProcess, ...]) -> None:
    a, b = pair
    async with Subscriber(b.stream_url) as bob, Subscriber(a.stream_url) as ann, \
            TestWorker(b.worker_url) as worker:
        view = Roster(bob)
        await subscribed(bob, presence=True, sub_id="bob")
        await view.until({("bob",)})
        await subscribed(ann, sub_id="ann")
        await view.until({("bob",), ("ann",)})
        assert await worker.call("stream.presence_count", {"stream_name": "s", "group_id": "g"}) == {"count": 2}
        await ann.__aexit__(None, None, None)  # disconnects from engine A
        await view.until({("bob",)})


async def test_a_function_of_a_worker_on_engine_a_answers_calls_through_engine_b(
        pair: tuple[EngineProcess, ...]) -> None:
    a, b = pair
    async with TestWorker(a.worker_url) as on_a, TestWorker(b.worker_url) as on_b:
        async def square(data: Any) -> Any:
            return data["n"] ** 2

        await on_a.register("math::square", square)
        assert await until_answers(on_b, "math::square", {"n": 7}) == 49
        assert await asyncio.gather(*(on_b.call("math::square", {"n": n}) for n in range(20))) == [
            n * n for n in range(20)]


async def test_kill_9_of_an_engine_removes_its_members_within_the_lease(pair: tuple[EngineProcess, ...]) -> None:
    a, b = pair
    async with Subscriber(a.stream_url) as ann, Subscriber(b.stream_url) as bob, \
            Subscriber(b.stream_url) as cid, TestWorker(a.worker_url) as worker:
        view = Roster(ann)
        await subscribed(ann, presence=True, sub_id="ann")
        await subscribed(bob, sub_id="bob")
        await subscribed(cid, sub_id="cid")
        await view.until({("ann",), ("bob",), ("cid",)})
        b.kill()
        killed = time.monotonic()
        gone = await view.until({("ann",)})
        print(f"members of a killed engine gone after {(gone - killed) * 1000:.0f} ms (lease {TTL_MS} ms)")
        assert gone - killed < TTL_MS / 1000 + 0.5 * timeout(1)  # the lease, plus scheduling slack
        leaves = [f["event"]["member"]["subscription_ids"] for f in view.frames
                  if f["event"].get("action") == "leave"]
        assert sorted(leaves) == [["bob"], ["cid"]]
        assert await worker.call("stream.presence_count", {"stream_name": "s", "group_id": "g"}) == {"count": 1}
