"""The admin port over real sockets: probes, Prometheus metrics against a known workload, the token, garbage."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamhub.config import AdapterConfig, AdminConfig, EngineConfig, RestApiConfig, StreamModuleConfig
from streamhub.transport.admin_metrics import METRIC_NAMES
from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker, timeout, wait_until
from tests.redis_server import RedisServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def admin_config(token: str | None = None, **stream: Any) -> EngineConfig:
    return replace(make_config(**stream), admin=AdminConfig(port=0, token=token),
                   rest_api=RestApiConfig(port=0))


def admin_url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.admin_port}{path}"


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text()


async def scrape(srv: Server, token: str | None = None) -> Samples:
    """Every sample of /metrics, parsed by prometheus-client's own parser, keyed by (name, sorted labels)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    status, text = await get(admin_url(srv, "/metrics"), headers)
    assert status == 200, text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_healthz_and_readyz_answer_on_a_healthy_engine() -> None:
    async with running(admin_config()) as srv:
        status, body = await get(admin_url(srv, "/healthz"))
        assert status == 200 and '"ok"' in body
        status, body = await get(admin_url(srv, "/readyz"))
        assert (status, body) == (200, '{"status":"ready"}')


async def test_an_engine_without_the_admin_module_counts_nothing() -> None:
    async with running(make_config()) as srv:
        assert srv.engine.metrics.enabled is False  # the no-op seam: no timers, no counts
        assert "admin" not in srv.ports


async def test_metrics_count_a_known_workload() -> None:
    """3 sets (1 create + 2 updates), 1 delete, 1 send; one subscriber; one stream trigger; REST 200 + 404."""
    async with running(admin_config()) as srv, TestWorker(worker_url(srv)) as worker:
        seen: list[Any] = []

        async def on_change(data: Any) -> None:
            seen.append(data)

        async def hello(data: Any) -> Any:
            return {"status_code": 200, "body": {"hi": True}}

        await worker.register("on_change", on_change)
        await worker.register("hello", hello)
        await worker.trigger("stream", "on_change", {"stream_name": "s", "group_id": "g"})
        await worker.trigger("http", "hello", {"api_path": "/hello/:name", "http_method": "GET"})
        await wait_until(lambda: srv.engine.functions.exists("hello") and srv.engine.triggers.routes.match(
            "GET", "/hello/x") is not None)
        async with Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g")
            assert (await sub.next())["event"]["type"] == "sync"
            for n in range(3):
                await worker.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": n})
            await worker.call("stream::delete", {"stream_name": "s", "group_id": "g", "item_id": "a"})
            await worker.call("stream::send", {"stream_name": "s", "group_id": "g", "type": "ping", "data": 1})
            for _ in range(5):
                await sub.next()
            await wait_until(lambda: len(seen) == 5)
            rest = f"http://127.0.0.1:{srv.rest_port}"
            assert (await get(f"{rest}/hello/bob"))[0] == 200
            assert (await get(f"{rest}/nowhere/at/all"))[0] == 404
            during = await scrape(srv)
        await wait_until(lambda: srv.engine.hub.subscription_count() == 0)
        after = await scrape(srv)

    assert [value(during, "streamhub_events_total", type=kind) for kind in ("create", "update", "delete", "event")
            ] == [1, 2, 1, 1]
    assert value(during, "streamhub_deliveries_total") == 5
    assert value(during, "streamhub_joins_total") == 1
    assert value(during, "streamhub_subscriptions", port="stream") == 1
    assert value(during, "streamhub_websocket_connections", port="stream") == 1
    assert value(during, "streamhub_websocket_connections", port="worker") == 1
    assert value(during, "streamhub_bytes_out_total", port="stream") > 0
    assert value(during, "streamhub_function_calls_total", function="stream::set", outcome="ok") == 3
    assert value(during, "streamhub_function_call_seconds_count", function="stream::set") == 3
    assert value(during, "streamhub_function_call_seconds_bucket", function="stream::set", le="+Inf") == 3
    assert value(during, "streamhub_function_calls_total", function="on_change", outcome="ok") == 5
    assert value(during, "streamhub_trigger_invocations_total", type="stream") == 5
    assert value(during, "streamhub_trigger_failures_total", type="stream") == 0
    assert value(during, "streamhub_adapter_operation_seconds_count", operation="set") == 3
    assert value(during, "streamhub_adapter_operation_seconds_count", operation="snapshot") == 1
    assert value(during, "streamhub_rest_requests_total", method="GET", route="/hello/:name", status="200") == 1
    assert value(during, "streamhub_rest_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(during, "streamhub_functions") == 2
    assert value(after, "streamhub_leaves_total") == 1
    assert value(after, "streamhub_subscriptions", port="stream") == 0


async def test_metrics_count_resumes_refusals_and_fsync_batches(tmp_path: Path) -> None:
    config = admin_config(adapter=AdapterConfig(store_method="file_based", file_path=str(tmp_path / "data")),
                          max_subscriptions_per_connection=1)
    async with running(config) as srv, TestWorker(worker_url(srv)) as worker:
        await worker.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": 1})
        async with Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g")
            position = (await sub.next())["position"]
            await sub.join("s", "other")  # over max_subscriptions_per_connection
            assert (await sub.next())["type"] == "error"
        await worker.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": 2})
        async with Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g", position=position)
            assert (await sub.next())["recovered"] is True
        async with Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g", position={"epoch": "gone", "offset": 1})
            assert (await sub.next())["event"]["type"] == "sync"
        samples = await scrape(srv)

    assert value(samples, "streamhub_resumes_total", recovered="true") == 1
    assert value(samples, "streamhub_resumes_total", recovered="false") >= 1
    assert value(samples, "streamhub_join_refusals_total", reason="cap") == 1
    assert value(samples, "streamhub_fsync_seconds_count") == 2  # one group commit per (sequential) write
    assert value(samples, "streamhub_fsync_batch_size_sum") == 2
    assert value(samples, "streamhub_fsync_batch_size_bucket", le="1.0") == 2


async def test_the_token_guards_metrics_and_console_but_not_the_probes() -> None:
    async with running(admin_config(token="s3cret")) as srv:
        assert (await get(admin_url(srv, "/healthz")))[0] == 200
        assert (await get(admin_url(srv, "/readyz")))[0] == 200
        for path in ("/metrics", "/console", "/api/workers", "/api/overview", "/api/streams"):
            status, body = await get(admin_url(srv, path))
            assert status == 401 and "s3cret" not in body, path
            assert (await get(admin_url(srv, path), {"Authorization": "Bearer wrong"}))[0] == 401
            assert (await get(admin_url(srv, path), {"Authorization": "Bearer s3cret"}))[0] == 200
        assert (await get(admin_url(srv, "/console?token=s3cret")))[0] == 200
        assert (await get(admin_url(srv, "/console?token=s3cre")))[0] == 401
        assert (await get(admin_url(srv, "/metrics?token=s3cret")))[0] == 401  # query form is for the page only
        samples = await scrape(srv, token="s3cret")
        assert value(samples, "streamhub_connection_refusals_total", port="admin", reason="auth") == 12


async def test_admin_json_lists_workers_with_their_functions_and_triggers() -> None:
    async with running(admin_config()) as srv, TestWorker(worker_url(srv)) as worker:
        async def noop(data: Any) -> None:
            return None

        await worker.send({"type": "invokefunction", "function_id": "engine::workers::register",
                           "data": {"name": "billing", "runtime": "python", "version": "1.2"},
                           "action": {"type": "void"}})
        await worker.register("bill", noop)
        await worker.trigger("stream", "bill", {"stream_name": "orders"})
        await worker.call("stream::set", {"stream_name": "orders", "group_id": "g1", "item_id": "o", "data": 1})
        await wait_until(lambda: srv.engine.triggers.of_type("stream"))
        async with aiohttp.ClientSession() as session:
            async with session.get(admin_url(srv, "/api/workers")) as response:
                workers = (await response.json())["workers"]
            async with session.get(admin_url(srv, "/api/streams")) as response:
                streams = (await response.json())["streams"]
    assert len(workers) == 1
    assert workers[0]["name"] == "billing" and workers[0]["functions"] == ["bill"]
    assert [(t["type"], t["function_id"]) for t in workers[0]["triggers"]] == [("stream", "bill")]
    assert streams == [{"id": "orders", "groups": ["g1"]}]


async def test_garbage_on_the_admin_port_is_answered_and_the_port_keeps_serving() -> None:
    async with running(admin_config()) as srv:
        for garbage in (b"\x00\xff\x16\x03\x01 not http\r\n\r\n", b"GET /" + b"A" * 100_000 + b" HTTP/1.1\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.admin_port)
            writer.write(garbage)
            answer = await asyncio.wait_for(reader.read(200), timeout(5))
            assert answer[:9] in (b"HTTP/1.0 ", b"HTTP/1.1 ") and answer[9:10] == b"4", answer
            writer.close()
        assert (await get(admin_url(srv, "/healthz")))[0] == 200


@pytest.mark.redis
async def test_readyz_says_503_with_the_reason_while_redis_is_down(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        adapter = AdapterConfig(class_name="modules::stream::adapters::RedisAdapter", redis_url=redis.url,
                                key_prefix="admin-test:")
        config = replace(EngineConfig(port=0, stream=StreamModuleConfig(port=0, adapter=adapter)),
                         admin=AdminConfig(port=0))
        async with running(config) as srv:
            assert (await get(admin_url(srv, "/readyz")))[0] == 200
            redis.kill()
            status, body = await get(admin_url(srv, "/readyz"))
            assert status == 503
            assert "Redis at redis://127.0.0.1" in body and "not ready" in body
            assert (await get(admin_url(srv, "/healthz")))[0] == 200  # alive, just not ready
            redis.start()
            deadline = asyncio.get_running_loop().time() + timeout(10)
            while (await get(admin_url(srv, "/readyz")))[0] != 200:
                assert asyncio.get_running_loop().time() < deadline, "not ready again after Redis came back"
                await asyncio.sleep(0.1)
            samples = await scrape(srv)
        assert value(samples, "streamhub_redis_errors_total", kind="connection") >= 1
        assert value(samples, "streamhub_redis_reconnects_total") >= 1
    finally:
        redis.kill()


async def test_every_documented_metric_name_is_exported() -> None:
    """The README's list (``METRIC_NAMES``) and the output cannot drift apart; every sample is a streamhub_ or
    process_ series (no stray default collectors)."""
    async with running(admin_config()) as srv, TestWorker(worker_url(srv)) as worker:
        await worker.call("stream::set", {"stream_name": "s", "group_id": "g", "item_id": "a", "data": 1})
        assert (await get(f"http://127.0.0.1:{srv.rest_port}/nothing"))[0] == 404
        samples = await scrape(srv)
    names = {name for name, _ in samples}
    for documented in METRIC_NAMES:
        assert any(name == documented or name.startswith(f"{documented}_") for name in names), documented
    assert all(name.startswith(("streamhub_", "process_")) for name in names)
