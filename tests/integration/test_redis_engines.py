"""Two real engine processes sharing one Redis (a server, then a Redis Cluster), run from the example configs in
``examples/redis/``.

Clients subscribe on engine A while workers call engine B (and the other way round); Redis is killed and
restarted under them.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import CallFailed, Subscriber, TestWorker, free_port, timeout, wait_until
from tests.process import EngineProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "redis"


async def start_engines(tmp_path: Path, url: str, prefix: str) -> tuple[EngineProcess, EngineProcess]:
    env = {"REDIS_URL": url, "KEY_PREFIX": prefix, "REST_PORT": str(free_port())}
    engines = (EngineProcess(tmp_path, config=EXAMPLES / "engine-a.yaml", env=env),
               EngineProcess(tmp_path, config=EXAMPLES / "engine-b.yaml", env=env))
    await asyncio.gather(*(engine.start() for engine in engines))
    return engines


@contextlib.asynccontextmanager
async def running_engines(tmp_path: Path, url: str, prefix: str) -> AsyncIterator[tuple[EngineProcess, EngineProcess]]:
    pair = await start_engines(tmp_path, url, prefix)
    try:
        yield pair
    finally:
        assert await asyncio.gather(*(engine.stop() for engine in pair)) == [0, 0]


@pytest.fixture
async def engines(tmp_path: Path, redis_url: str,
                  key_prefix: str) -> AsyncIterator[tuple[EngineProcess, EngineProcess]]:
    """Engines A and B on one Redis server, then on a 3-primary Redis Cluster (the same tests hold on both)."""
    async with running_engines(tmp_path, redis_url, key_prefix) as pair:
        yield pair


@pytest.fixture
async def engines_on_one_server(tmp_path: Path, redis_server: RedisServer,
                                key_prefix: str) -> AsyncIterator[tuple[EngineProcess, EngineProcess]]:
    async with running_engines(tmp_path, redis_server.url, key_prefix) as pair:
        yield pair


def ref(item: str, group: str = "g") -> dict[str, str]:
    return {"stream_name": "s", "group_id": group, "item_id": item}


async def test_client_on_a_gets_calls_made_on_b_in_order(engines: tuple[EngineProcess, EngineProcess]) -> None:
    a, b = engines
    async with Subscriber(a.stream_url) as sub, TestWorker(b.worker_url) as on_b, TestWorker(a.worker_url) as on_a:
        await sub.join("s", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}
        expected: list[dict[str, Any]] = []
        for n in range(30):
            item = f"i{n % 4}"
            if n % 5 == 4:
                await on_b.call("stream.send", {"stream_name": "s", "group_id": "g", "type": "ping", "data": n})
                expected.append({"type": "event", "event": {"type": "ping", "data": n}})
            elif n % 7 == 6:
                old = (await on_b.call("stream.delete", ref(item)))["old_value"]
                if old is not None:
                    expected.append({"type": "delete", "data": old})
            else:
                result = await on_b.call("stream.update", {**ref(item), "ops": [
                    {"type": "set", "path": "n", "value": n}]})
                kind = "update" if result["old_value"] is not None else "create"
                expected.append({"type": kind, "data": result["new_value"]})
        await on_a.call("stream.set", {**ref("own"), "data": "from a"})  # A's own write: delivered exactly once
        expected.append({"type": "create", "data": "from a"})
        assert [(await sub.next())["event"] for _ in expected] == expected
        with pytest.raises(asyncio.TimeoutError):
            await sub.next(wait=0.3)


async def test_item_and_group_subscribers_on_a_get_b_s_events_as_b_encoded_them(
        engines: tuple[EngineProcess, EngineProcess]) -> None:
    a, b = engines  # events cross Redis as JSON and are framed as they came; item routing decodes them
    async with Subscriber(a.stream_url) as group, Subscriber(a.stream_url) as item, \
            TestWorker(b.worker_url) as on_b:
        await group.join("s", "g")
        await item.join("s", "g", item="x")
        assert (await group.next())["event"]["type"] == "sync" and (await item.next())["event"]["type"] == "sync"
        value = {"text": "ünïcødé \"quoted\"\n", "n": 1.5, "list": [None, True]}
        for name in ("y", "x", "y", "x"):
            await on_b.call("stream.set", {**ref(name), "data": value})
        frames = [await group.next() for _ in range(4)]
        assert [(f["id"], f["event"]["type"], f["offset"]) for f in frames] == [
            ("y", "create", 1), ("x", "create", 2), ("y", "update", 3), ("x", "update", 4)]
        assert all(f["event"]["data"] == value for f in frames)
        assert [(f["id"], f["offset"]) for f in [await item.next(), await item.next()]] == [("x", 2), ("x", 4)]
        with pytest.raises(asyncio.TimeoutError):
            await item.next(wait=0.3)


async def test_fifty_concurrent_increments_on_each_engine_are_exact(
        engines: tuple[EngineProcess, EngineProcess]) -> None:
    a, b = engines
    async with TestWorker(a.worker_url) as on_a, TestWorker(b.worker_url) as on_b:
        op = {**ref("counter"), "ops": [{"type": "increment", "path": "n", "by": 1}]}
        started = time.perf_counter()
        results = await asyncio.gather(*(worker.call("stream.update", op) for worker in (on_a, on_b)
                                         for _ in range(50)))
        elapsed = time.perf_counter() - started
        assert await on_b.call("stream.get", ref("counter")) == {"n": 100}
        assert sorted(result["new_value"]["n"] for result in results) == list(range(1, 101))
        print(f"2 engines x 50 concurrent increments: {elapsed * 1000:.0f} ms")


async def test_every_stream_trigger_fires_once_per_change_on_the_engine_that_applied_it(
        engines: tuple[EngineProcess, EngineProcess]) -> None:
    """One trigger registered through each engine: both fire once per change, on the writer (docs/cluster.md);
    both call ``audit``, which the writer's own worker serves (a local worker is never bypassed)."""
    fired: dict[str, list[Any]] = {"a": [], "b": []}
    async with TestWorker(engines[0].worker_url) as on_a, TestWorker(engines[1].worker_url) as on_b:
        triggers = []
        for name, worker in (("a", on_a), ("b", on_b)):
            async def handler(event: Any, name: str = name) -> None:
                fired[name].append(event["id"])

            await worker.register("audit", handler)
            triggers.append(await worker.trigger("stream", "audit", {"stream_name": "s"}))
            await worker.call("stream.list_all", {})  # registration is processed before this answers
        await asyncio.sleep(0.5)  # the announcements reach the other engine
        for n in range(5):
            await on_a.call("stream.set", {**ref(f"a{n}"), "data": n})
            await on_b.call("stream.set", {**ref(f"b{n}"), "data": n})
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: len(fired["a"]) + len(fired["b"]) >= 20, 5)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
        assert sorted(fired["a"]) == sorted([f"a{n}" for n in range(5)] * 2)
        assert sorted(fired["b"]) == sorted([f"b{n}" for n in range(5)] * 2)


async def test_a_route_of_a_worker_on_engine_a_answers_through_engine_b(
        engines: tuple[EngineProcess, EngineProcess], tmp_path: Path) -> None:
    """examples/redis/worker.py connects to engine A; its route answers on engine B's REST port, and its stream
    trigger counts each greeting once."""
    a, b = engines
    env = {**a.env, "STREAMHUB_URL": a.worker_url}
    worker = await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLES / "worker.py"), env=env,
                                                  stdout=asyncio.subprocess.PIPE)
    try:
        assert worker.stdout is not None
        assert await asyncio.wait_for(worker.stdout.readline(), timeout(20)) == b"greeter ready\n"
        url = f"http://127.0.0.1:{b.env['REST_PORT']}/hello/ann"
        async with aiohttp.ClientSession() as http, TestWorker(b.worker_url) as on_b:
            for _ in range(200):  # until engine B knows the route
                async with http.get(url) as response:
                    answer = (response.status, await response.json())
                if answer[0] != 404:
                    break
                await asyncio.sleep(0.05)
            assert answer == (200, {"hello": "ann"})
            stats = {"stream_name": "greeting_stats", "group_id": "all", "item_id": "count"}
            for _ in range(100):
                if await on_b.call("stream.get", stats) == {"changes": 1}:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert await on_b.call("stream.get", stats) == {"changes": 1}
    finally:
        worker.terminate()
        await worker.wait()


async def test_subscription_per_group_per_engine_released_by_the_last_client(
        engines_on_one_server: tuple[EngineProcess, EngineProcess], redis_server: RedisServer,
        key_prefix: str) -> None:
    a, b = engines_on_one_server
    channel = f"{key_prefix}e:1:s:g".encode()

    async def subscribers() -> int:
        with redis_server.client() as client:
            count: int = client.pubsub_numsub(channel)[0][1]
            return count

    async def settles_at(count: int) -> None:
        deadline = time.monotonic() + timeout(5)
        while await subscribers() != count:
            assert time.monotonic() < deadline, f"{await subscribers()} subscriptions, expected {count}"
            await asyncio.sleep(0.02)

    async with Subscriber(a.stream_url) as one, Subscriber(a.stream_url) as two, Subscriber(b.stream_url) as three:
        ids = [await client.join("s", "g") for client in (one, two)]
        await one.join("s", "g", item="x")
        await three.join("s", "g")
        for client in (one, two, one, three):
            assert (await client.next())["event"]["type"] == "sync"
        assert await subscribers() == 2  # one per engine, not one per client
        await one.leave("s", "g", ids[0])
        await two.leave("s", "g", ids[1])
        await asyncio.sleep(0.1)
        assert await subscribers() == 2  # the item subscription still needs the group
    await settles_at(0)  # disconnects release the rest


async def test_redis_killed_and_restarted_under_two_engines(tmp_path: Path, key_prefix: str) -> None:
    redis = RedisServer(tmp_path / "redis", durable=True)
    redis.start()
    a, b = await start_engines(tmp_path, redis.url, key_prefix)
    try:
        async with Subscriber(a.stream_url) as sub, TestWorker(b.worker_url) as writer:
            await sub.join("s", "g")
            assert (await sub.next())["event"]["type"] == "sync"
            outcome = await _write_through_outage(writer, redis)
            assert max(outcome["failure_seconds"]) < 2.0, outcome["failure_seconds"]
            stored = await writer.call("stream.list", {"stream_name": "s", "group_id": "g"})
            assert {v["n"] for v in outcome["acknowledged"]} <= {v["n"] for v in stored}  # nothing acked lost
            frames = await _drain(sub)
            assert sum(frame["event"]["type"] == "sync" for frame in frames) >= 1  # a fresh sync after the outage
            assert _client_state(frames) == {v["id"]: v for v in stored}  # so the client missed nothing
        assert a.proc is not None and b.proc is not None
        assert a.proc.returncode is None and b.proc.returncode is None
    finally:
        assert await asyncio.gather(a.stop(), b.stop()) == [0, 0]
        redis.kill()


async def _write_through_outage(writer: TestWorker, redis: RedisServer) -> dict[str, list[Any]]:
    """Sequential writes on B: Redis is killed after 20 acks and restarted after 5 failures; 20 more acks."""
    acknowledged: list[dict[str, Any]] = []
    failure_seconds: list[float] = []
    n = 0
    while len(acknowledged) < 40:
        value = {"id": f"i{n}", "n": n}
        started = time.monotonic()
        try:
            await writer.call("stream.set", {**ref(value["id"]), "data": value})
            acknowledged.append(value)
        except CallFailed as failure:
            failure_seconds.append(time.monotonic() - started)
            assert failure.code == "adapter_error" and redis.url in str(failure.message), failure
        n += 1
        if len(acknowledged) == 20 and redis.proc is not None:
            redis.kill()
        if len(failure_seconds) == 5:
            redis.start()
        await asyncio.sleep(0.005)
    assert len(failure_seconds) >= 5
    return {"acknowledged": acknowledged, "failure_seconds": failure_seconds}


async def _drain(sub: Subscriber) -> list[dict[str, Any]]:
    """Every frame after the first sync, until none arrives for a second (resyncs included)."""
    frames = []
    while True:
        try:
            frames.append(await sub.next(wait=1.0))
        except TimeoutError:
            return frames


def _client_state(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client holds after applying the frames as the reference clients do (values carry their id)."""
    state: dict[str, Any] = {}
    for frame in frames:
        event = frame["event"]
        if event["type"] == "sync":
            state = {value["id"]: value for value in event["data"]}
        elif event["type"] in ("create", "update"):
            state[event["data"]["id"]] = event["data"]
        elif event["type"] == "delete":
            state.pop(event["data"]["id"], None)
    return state


@pytest.mark.parametrize(("url", "code", "shown"), [
    ("redis://user:secret@127.0.0.1:{port}", 1, "redis://user:***@127.0.0.1:{port}"),  # nothing listens there
    ("redis://127.0.0.1:notaport", 2, "redis://127.0.0.1:notaport"),
    ("redis+cluster://user:secret@127.0.0.1:{port}", 1, "redis+cluster://user:***@127.0.0.1:{port}"),
    ("redis+cluster://127.0.0.1:1,h:notaport", 2, "'h:notaport' is not a host[:port] of a cluster node"),
])
def test_unusable_redis_stops_start_up_with_one_clear_line(tmp_path: Path, url: str, code: int, shown: str) -> None:
    port = free_port()
    engine = EngineProcess(tmp_path, config=EXAMPLES / "engine-a.yaml", env={"REDIS_URL": url.format(port=port)})
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "streamhub", "serve", "-c", str(engine.config)], env=engine.env,
                            capture_output=True, text=True, timeout=timeout(30))
    assert time.monotonic() - started < timeout(10)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, result.stderr
    assert shown.format(port=port) in lines[0] and "secret" not in lines[0]
