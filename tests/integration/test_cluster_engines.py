"""Three real engine processes on one Redis form one system; kill -9 of the engine serving a function or holding
a trigger (docs/cluster.md: what is guaranteed while an engine dies)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CallFailed, Subscriber, TestWorker, timeout, wait_until
from tests.process import EngineProcess, redis_engine
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

LEASE_MS = 1500


def engine(workdir: Path, url: str, prefix: str) -> EngineProcess:
    return redis_engine(workdir, url, prefix, f"cluster_lease_ms: {LEASE_MS}")


@pytest.fixture
async def engines(tmp_path: Path, redis_url: str, key_prefix: str) -> AsyncIterator[list[EngineProcess]]:
    """Three engines on one Redis server, then on a 3-primary Redis Cluster (the same tests hold on both)."""
    trio = [engine(tmp_path / f"engine-{n}", redis_url, key_prefix) for n in range(3)]
    await asyncio.gather(*(e.start() for e in trio))
    try:
        yield trio
    finally:
        await asyncio.gather(*(e.stop() for e in trio))


async def until_answers(worker: TestWorker, function_id: str, data: Any = None, seconds: float = 5.0) -> Any:
    """Call until the function is known on the caller's engine (announcements take a moment to arrive)."""
    deadline = time.monotonic() + timeout(seconds)
    while True:
        try:
            return await worker.call(function_id, data)
        except CallFailed as exc:
            if exc.code != "function_not_found" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def until_code(worker: TestWorker, function_id: str, code: str, seconds: float) -> float:
    """Call until the call fails with ``code``; returns when (monotonic)."""
    deadline = time.monotonic() + timeout(seconds)
    while True:
        try:
            await worker.call(function_id, {}, wait=seconds)
        except CallFailed as exc:
            if exc.code == code:
                return time.monotonic()
        assert time.monotonic() < deadline, f"{function_id} never failed with {code}"
        await asyncio.sleep(0.05)


async def test_calls_through_every_engine_reach_a_worker_on_another(engines: list[EngineProcess]) -> None:
    a, b, c = engines
    async with TestWorker(a.worker_url) as on_a, TestWorker(b.worker_url) as on_b, \
            TestWorker(c.worker_url) as on_c:
        async def square(data: Any) -> Any:
            return data["n"] ** 2

        async def broken(data: Any) -> Any:
            raise RuntimeError("out of order")

        await on_a.register("square", square)
        await on_a.register("broken", broken)
        assert await until_answers(on_b, "square", {"n": 7}) == 49
        assert await until_answers(on_c, "square", {"n": 3}) == 9
        with pytest.raises(CallFailed) as failed:
            await until_answers(on_c, "broken", {})
        assert (failed.value.code, failed.value.message) == ("handler_error", "out of order")


async def test_kill_9_of_the_serving_engine_fails_calls_in_flight_then_its_functions_go(
        engines: list[EngineProcess]) -> None:
    a, b, _ = engines
    async with TestWorker(a.worker_url) as on_a, TestWorker(b.worker_url) as on_b:
        never = asyncio.Event()

        async def hang(data: Any) -> Any:
            await never.wait()

        async def quick(data: Any) -> Any:
            return "ok"

        await on_a.register("hang", hang)
        await on_a.register("quick", quick)
        assert await until_answers(on_b, "quick") == "ok"
        in_flight = asyncio.ensure_future(on_b.call("hang", {}, wait=20))
        await asyncio.sleep(0.2)
        killed = time.monotonic()
        a.kill()
        with pytest.raises(CallFailed) as failed:
            await in_flight
        assert failed.value.code == "engine_unreachable"
        assert time.monotonic() - killed < timeout(LEASE_MS / 1000 + 1)
        gone = await until_code(on_b, "quick", "function_not_found", LEASE_MS / 1000 + 2)
        assert gone - killed < timeout(LEASE_MS / 1000 + 1.5)


async def test_kill_9_of_the_engine_holding_triggers(engines: list[EngineProcess]) -> None:
    """Its stream trigger stops firing, its join guard stays in force (guard_unavailable) until served again."""
    a, b, c = engines
    async with TestWorker(a.worker_url) as on_a, TestWorker(b.worker_url) as on_b, \
            TestWorker(c.worker_url) as on_c:
        async def admit(data: Any) -> Any:
            return {"unauthorized": False}

        seen: list[Any] = []

        async def on_change(event: Any) -> None:
            seen.append(event["id"])

        await on_a.register("guard", admit)
        await on_a.trigger("stream_join", "guard", {"stream_name": "room"})
        await on_c.register("on_change", on_change)
        await on_c.trigger("stream", "on_change", {"stream_name": "s"})
        await until_answers(on_b, "guard", {})
        async with Subscriber(b.stream_url) as sub:
            await sub.join("room", "g", sub_id="s1")
            assert (await sub.next())["event"]["type"] == "sync"
        a.kill()
        await until_code(on_b, "guard", "function_not_found", LEASE_MS / 1000 + 2)
        async with Subscriber(b.stream_url) as sub:
            await sub.join("room", "g", sub_id="s2")
            assert (await sub.next())["event"] == {"type": "unauthorized", "reason": "guard_unavailable"}
        await on_c.register("guard", admit)  # served again, on another engine: joins pass everywhere
        await until_answers(on_b, "guard", {})
        async with Subscriber(b.stream_url) as sub:
            await sub.join("room", "g", sub_id="s3")
            assert (await sub.next())["event"]["type"] == "sync"
        for n in range(4):  # the trigger on C still fires once per write through B
            await on_b.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": f"i{n}", "data": n})
        await wait_until(lambda: len(seen) >= 4)
        await asyncio.sleep(0.3)
        assert sorted(seen) == ["i0", "i1", "i2", "i3"]


async def test_processes_2_share_each_port_and_form_one_system(tmp_path: Path, redis_server: RedisServer,
                                                               key_prefix: str) -> None:
    pair = engine(tmp_path, redis_server.url, key_prefix)
    pair.args = ("--processes", "2")
    await pair.start()
    try:
        with redis_server.client() as client:  # two engines hold a lease
            assert client.zcard(f"{key_prefix}cluster:engines") == 2
        async with TestWorker(pair.worker_url) as server:
            seen: list[Any] = []

            async def on_change(event: Any) -> None:
                seen.append(event["id"])

            async def whoami(data: Any) -> Any:
                return "server"

            await server.register("whoami", whoami)
            await server.register("on_change", on_change)
            await server.trigger("stream", "on_change", {"stream_name": "s"})
            callers = [TestWorker(pair.worker_url) for _ in range(12)]  # the kernel spreads them over both
            for caller in callers:
                await caller.__aenter__()
            try:
                for n, caller in enumerate(callers):
                    assert await until_answers(caller, "whoami") == "server"
                    await caller.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": f"i{n}",
                                                      "data": n})
            finally:
                for caller in callers:
                    await caller.close()
            await wait_until(lambda: len(seen) >= 12)
            await asyncio.sleep(0.3)
            assert sorted(seen) == sorted(f"i{n}" for n in range(12))  # once per write, whichever process took it
    finally:
        assert await pair.stop() == 0


def test_processes_need_the_redis_adapter(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"modules:\n  - class: modules::stream::StreamModule\n    config:\n"
                      f"      adapter:\n        class: modules::stream::adapters::KvStore\n"
                      f"        config:\n          file_path: {tmp_path / 'data'}\n")
    result = subprocess.run([sys.executable, "-m", "streamhub", "serve", "-c", str(config), "--processes", "2"],
                            capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--processes 2 needs the Redis adapter" in lines[0]
