"""Engines in one process sharing one Redis form one system: routed calls, replicated triggers (docs/cluster.md).

Real sockets, real Redis; the engines share the test's event loop so their state can be inspected. Killed
engines (kill -9) are in ``test_cluster_engines.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamhub.config import AdapterConfig, EngineConfig, RestApiConfig, StreamModuleConfig
from streamhub.errors import AdapterError, InvocationTimeout
from streamhub.transport.server import Server
from tests.conftest import running, stream_url, worker_url
from tests.helpers import CallFailed, Subscriber, TestWorker, timeout, wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

LEASE_MS = 1000


def redis_config(url: str, prefix: str, **stream: Any) -> EngineConfig:
    adapter = AdapterConfig("modules::stream::adapters::RedisAdapter", redis_url=url, key_prefix=prefix)
    module = StreamModuleConfig(port=0, adapter=adapter, cluster_lease_ms=LEASE_MS, **stream)
    return EngineConfig(port=0, stream=module, invocation_timeout_ms=5000,
                        rest_api=RestApiConfig(port=0, default_timeout_ms=5000))


@contextlib.asynccontextmanager
async def cluster(url: str, prefix: str, count: int, **stream: Any) -> AsyncIterator[list[Server]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running(redis_config(url, prefix, **stream))) for _ in range(count)]


async def served_everywhere(servers: list[Server], function_id: str) -> None:
    """Wait until every engine but the serving one knows another engine serves ``function_id``."""
    await wait_until(lambda: all(s.engine.cluster is not None and (
        s.engine.cluster.serves(function_id) or function_id in s.engine.functions.remote()) for s in servers))


async def test_a_function_on_engine_a_answers_calls_through_engine_b(redis_server: RedisServer,
                                                                     key_prefix: str) -> None:
    async with cluster(redis_server.url, key_prefix, 2) as (a, b), \
            TestWorker(worker_url(a)) as on_a, TestWorker(worker_url(b)) as on_b:
        async def double(data: Any) -> Any:
            return {"twice": data["n"] * 2}

        async def fail(data: Any) -> Any:
            raise ValueError("no such thing")

        await on_a.register("math::double", double)
        await on_a.register("math::fail", fail)
        await served_everywhere([a, b], "math::fail")
        assert await on_b.call("math::double", {"n": 21}) == {"twice": 42}
        with pytest.raises(CallFailed) as failed:
            await on_b.call("math::fail", {})
        assert (failed.value.code, failed.value.message) == ("handler_error", "no such thing")
        with pytest.raises(CallFailed) as missing:
            await on_b.call("math::nothing", {})
        assert missing.value.code == "function_not_found"
        assert b.engine.cluster is not None and b.engine.cluster.routed == 2
        assert a.engine.cluster is not None and a.engine.cluster.routed == 0 and a.engine.cluster.served == 2



async def test_the_callers_timeout_travels_with_the_call(redis_server: RedisServer, key_prefix: str) -> None:
    async with cluster(redis_server.url, key_prefix, 2) as (a, b), TestWorker(worker_url(a)) as on_a:
        release = asyncio.Event()

        async def slow(data: Any) -> Any:
            await release.wait()
            return "late"

        await on_a.register("slow", slow)
        await served_everywhere([a, b], "slow")
        started = asyncio.get_running_loop().time()
        with pytest.raises(InvocationTimeout):
            await b.engine.call("slow", {}, timeout=0.3)
        assert asyncio.get_running_loop().time() - started < timeout(1.0)
        await wait_until(lambda: len(a.engine.invocations) == 0, 2)  # engine A gave up too: it got the 0.3 s
        release.set()


async def test_several_engines_share_the_calls_and_a_local_worker_wins(redis_server: RedisServer,
                                                                       key_prefix: str) -> None:
    async with cluster(redis_server.url, key_prefix, 3) as (a, b, c), \
            TestWorker(worker_url(a)) as on_a, TestWorker(worker_url(c)) as on_c:
        await on_a.register("where", lambda data: _answer("a"))
        await on_c.register("where", lambda data: _answer("c"))
        await wait_until(lambda: b.engine.cluster is not None and len(b.engine.cluster.engines().get("where", [])) == 2)
        answers = [await b.engine.call("where", {}) for _ in range(10)]
        assert sorted(answers) == ["a"] * 5 + ["c"] * 5
        assert [await a.engine.call("where", {}) for _ in range(3)] == ["a"] * 3  # served here: never routed


async def test_redis_down_fails_routed_calls_fast(tmp_path: Path) -> None:
    private = RedisServer(tmp_path / "redis")
    private.start()
    try:
        async with cluster(private.url, "down:", 2) as (a, b), TestWorker(worker_url(a)) as on_a:
            await on_a.register("f", lambda data: _answer("ok"))
            await served_everywhere([a, b], "f")
            private.kill()
            started = asyncio.get_running_loop().time()
            with pytest.raises(AdapterError):
                await b.engine.call("f", {}, timeout=5)
            assert asyncio.get_running_loop().time() - started < timeout(2.5)
    finally:
        private.kill()


async def _answer(value: Any) -> Any:
    return value



async def everywhere(servers: list[Server], trigger_id: str) -> None:
    """Wait until every engine's index holds ``trigger_id``."""
    await wait_until(lambda: all(s.engine.triggers.get(trigger_id) is not None for s in servers))


async def test_a_stream_trigger_fires_once_per_change_whichever_engine_took_the_write(
        redis_server: RedisServer, key_prefix: str) -> None:
    async with cluster(redis_server.url, key_prefix, 3) as servers, \
            TestWorker(worker_url(servers[0])) as on_a, TestWorker(worker_url(servers[1])) as on_b, \
            TestWorker(worker_url(servers[2])) as on_c:
        seen: list[tuple[str, Any]] = []

        async def on_change(event: Any) -> None:
            seen.append((event["item_id"] if "item_id" in event else event.get("id"), event["event"]["type"]))

        async def odd_only(event: Any) -> bool:
            return int(str(event.get("id"))[1:]) % 2 == 1

        await on_a.register("on_change", on_change)
        await on_c.register("odd_only", odd_only)
        trigger = await on_a.trigger("stream", "on_change", {"stream_name": "s", "group_id": "g",
                                                            "condition_function_id": "odd_only"})
        await everywhere(servers, trigger)
        await served_everywhere(servers, "odd_only")
        writers = [on_a, on_b, on_c]
        for n in range(12):
            await writers[n % 3].call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": f"i{n}",
                                                      "data": n})
        await writers[0].call("stream::set", {"stream_name": "s", "group_id": "other", "item_id": "i1", "data": 0})
        await wait_until(lambda: len(seen) >= 6)
        await asyncio.sleep(0.3)  # a second firing would land by now
        assert sorted(item for item, _ in seen) == sorted(f"i{n}" for n in range(1, 12, 2))


async def test_guards_routes_and_auth_of_a_worker_on_engine_a_serve_engine_b(redis_server: RedisServer,
                                                                            key_prefix: str) -> None:
    async with cluster(redis_server.url, key_prefix, 2, auth_function="auth::check") as (a, b), \
            TestWorker(worker_url(a)) as on_a:
        async def auth(data: Any) -> Any:
            return {"context": {"user": "ann"}}

        async def guard(data: Any) -> Any:
            return {"unauthorized": data["group_id"] == "secret"}

        async def hello(data: Any) -> Any:
            return {"status_code": 200, "body": {"hi": data["path_params"]["name"]}}

        await on_a.register("auth::check", auth)
        await on_a.register("guard", guard)
        await on_a.register("hello", hello)
        guard_id = await on_a.trigger("stream_join", "guard", {"stream_name": "s"})
        route_id = await on_a.trigger("http", "hello", {"api_path": "/hello/:name", "http_method": "GET"})
        await everywhere([a, b], guard_id)
        await everywhere([a, b], route_id)
        await served_everywhere([a, b], "hello")
        async with Subscriber(stream_url(b)) as sub:
            await sub.join("s", "open", sub_id="s1")
            assert (await sub.next())["event"]["type"] == "sync"
            await sub.join("s", "secret", sub_id="s2")
            assert (await sub.next())["event"] == {"type": "unauthorized", "reason": "refused"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{b.rest_port}/hello/bob") as response:
                assert (response.status, await response.json()) == (200, {"hi": "bob"})
            await on_a.close()  # the worker leaves: its route goes everywhere, its guard stays (fail closed)
            await wait_until(lambda: b.engine.triggers.routes.match("GET", "/hello/bob") is None)
            async with http.get(f"http://127.0.0.1:{b.rest_port}/hello/bob") as response:
                assert response.status == 404
        assert b.engine.triggers.get(guard_id) is not None


async def test_garbage_on_the_cluster_keys_and_channels_is_dropped(redis_server: RedisServer,
                                                                   key_prefix: str) -> None:
    """Redis is the trust boundary, but a malformed message or announcement must not stop an engine."""
    async with cluster(redis_server.url, key_prefix, 2) as (a, b), TestWorker(worker_url(a)) as on_a:
        assert b.engine.cluster is not None
        with redis_server.client() as client:
            client.zadd(f"{key_prefix}cluster:engines", {"fake": 2**52, "list": 2**52})
            client.set(f"{key_prefix}ca:list", b"[1, 2]")
            client.set(f"{key_prefix}ca:fake", b'{"functions": 7, "triggers": {"t": [1], "u": ["http", "{"]}}')
            client.hset(f"{key_prefix}cg", "bad-guard", b"not json")
            channel = f"{key_prefix}cx:{b.engine.cluster.engine_id}"
            for garbage in (b"", b"[]", b"{", b'{"q": 1}', b'{"a": "nope", "e": 5}', b"\xff" * 10, b'"x"'):
                client.publish(channel, garbage)
            client.publish(f"{key_prefix}cn", b"\xff")
        await on_a.register("still", lambda data: _answer("fine"))
        await served_everywhere([a, b], "still")
        assert await b.engine.call("still", {}) == "fine"
        assert b.engine.triggers.get("bad-guard") is None and b.engine.triggers.get("u") is None


async def test_a_trigger_is_not_doubled_while_its_worker_moves_to_another_engine(redis_server: RedisServer,
                                                                                 key_prefix: str) -> None:
    """The worker registers the same trigger id on engine B before its connection to A is gone: one trigger."""
    async with cluster(redis_server.url, key_prefix, 3) as (a, b, c), TestWorker(worker_url(c)) as writer:
        seen: list[str] = []

        async def on_change(event: Any) -> None:
            seen.append(event["id"])

        config = {"stream_name": "s"}
        old = TestWorker(worker_url(a))
        await old.__aenter__()
        await old.register("on_change", on_change)
        await old.send({"type": "registertrigger", "id": "audit", "trigger_type": "stream",
                        "function_id": "on_change", "config": config})
        async with TestWorker(worker_url(b)) as new:
            await new.register("on_change", on_change)
            await new.send({"type": "registertrigger", "id": "audit", "trigger_type": "stream",
                            "function_id": "on_change", "config": config})
            await everywhere([a, b, c], "audit")
            await served_everywhere([a, b, c], "on_change")
            for n, via in enumerate([old, new, writer]):  # both connections up: one trigger
                await via.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": f"x{n}", "data": n})
            await wait_until(lambda: len(seen) >= 3)  # a call in flight to a worker that leaves is stopped
            await old.close()  # moved: A forgets it, B still has it
            await wait_until(lambda: a.engine.triggers.get("audit") is not None
                             and a.engine.triggers.get("audit").owner != old.worker_id)  # type: ignore[union-attr]
            for n, via in enumerate([writer, new]):
                await via.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": f"y{n}", "data": n})
            await wait_until(lambda: len(seen) >= 5)
            await asyncio.sleep(0.3)
        assert sorted(seen) == ["x0", "x1", "x2", "y0", "y1"]


async def test_a_call_the_chosen_engine_cannot_take_goes_to_the_next(redis_server: RedisServer,
                                                                     key_prefix: str) -> None:
    """An engine still announced but no longer listening (its lease not yet run out) never loses a call."""
    async with cluster(redis_server.url, key_prefix, 2) as (a, b), TestWorker(worker_url(a)) as on_a:
        with redis_server.client() as client:
            client.zadd(f"{key_prefix}cluster:engines", {"ghost": 2**52})
            client.set(f"{key_prefix}ca:ghost", b'{"functions": ["where"], "triggers": {}}')
        await on_a.register("where", lambda data: _answer("a"))
        await wait_until(lambda: b.engine.cluster is not None and len(b.engine.cluster.engines().get("where", [])) == 2)
        assert [await b.engine.call("where", {}) for _ in range(6)] == ["a"] * 6
        assert b.engine.cluster is not None and b.engine.cluster.routed == 9  # 3 of them tried the ghost first
