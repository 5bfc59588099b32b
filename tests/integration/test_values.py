"""Values are checked once, at the edge: a value the wire cannot carry is refused with ``invalid_value`` and
leaves no trace (item, offsets, subscribers, later writes, restart) on the memory, file and Redis engines."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamhub.config import REDIS_ADAPTER, AdapterConfig, EngineConfig, RestApiConfig
from streamhub.errors import InvalidRequest
from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import CallFailed, Subscriber, TestWorker

BIG = 1180591620717411303424  # 2**70: the value that wedged the file store (issue 10, finding 2)


class Worker(TestWorker):
    """A worker whose frames may carry integers past 64 bits (the stdlib encoder writes any integer)."""

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message, allow_nan=False))


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"d": value}
    return value


def at(item: str, stream: str = "s") -> dict[str, str]:
    return {"stream_name": stream, "group_id": "g", "item_id": item}


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=pytest.mark.redis)])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> EngineConfig:
    """An engine config per store, built the way ``streamhub serve`` builds it (config -> Server -> adapter)."""
    if request.param == "memory":
        adapter = AdapterConfig()
    elif request.param == "file":
        adapter = AdapterConfig(store_method="file_based", file_path=str(tmp_path / "data"))
    else:
        server = request.getfixturevalue("redis_server")
        adapter = AdapterConfig(class_name=REDIS_ADAPTER, redis_url=server.url,
                                key_prefix=request.getfixturevalue("key_prefix"))
    return make_config(adapter=adapter)


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("stream.set", {**at("a"), "data": {"n": BIG}},
     f"stream.set: data.n: integer {BIG} is outside the 64-bit range"),
    ("stream.set", {**at("b"), "data": [nested(64)]}, "stream.set: data[0].d.d"),
    ("stream.update", {**at("a"), "ops": [{"type": "increment", "path": "n", "by": 1},
                                          {"type": "merge", "value": {"n": BIG}}]},
     f"stream.update: ops[1].value.n: integer {BIG} is outside the 64-bit range"),
    ("stream.update", {**at("a"), "ops": [{"type": "set", "path": ["x", "y"], "value": nested(63)}]},
     "stream.update: ops[0].value.d"),
    ("stream.send", {"stream_name": "s", "group_id": "g", "type": "t", "data": [1, -BIG]},
     f"stream.send: data[1]: integer {-BIG} is outside the 64-bit range"),
    ("stream.send", {"stream_name": "s", "group_id": "g", "type": "t", "data": nested(65)}, "stream.send: data.d"),
]


async def refuse_all(srv: Server, worker: Worker) -> None:
    """Every refused call answers ``invalid_value`` naming the field; NaN (which JSON frames cannot carry) is
    tried in-process."""
    for function_id, data, message in REFUSED:
        with pytest.raises(CallFailed) as caught:
            await worker.call(function_id, data)
        assert caught.value.code == "invalid_value", caught.value
        assert caught.value.message is not None and caught.value.message.startswith(message), caught.value
    with pytest.raises(InvalidRequest, match=r"stream.set: data.x: nan is not a JSON number") as nan:
        await srv.engine.call("stream.set", {**at("a"), "data": {"x": math.nan}})
    assert nan.value.code == "invalid_value"


async def test_a_refused_value_leaves_no_trace(config: EngineConfig) -> None:
    async with running(config) as srv, Worker(worker_url(srv)) as worker:
        await worker.call("stream.set", {**at("a"), "data": {"n": 1}})  # offset 1
        async with Subscriber(stream_url(srv)) as sub:
            await sub.join("s", "g")
            before = (await sub.next())["position"]
            assert before["offset"] == 1
            await refuse_all(srv, worker)
            await worker.call("stream.update", {**at("a"), "ops": [{"type": "increment", "path": "n", "by": 1}]})
            await worker.call("stream.send", {"stream_name": "s", "group_id": "g", "type": "t", "data": nested(64)})
            # nothing of the refused calls reached the subscriber; the good writes took the next offsets
            first, second = await sub.next(), await sub.next()
            assert (first["offset"], first["event"]) == (2, {"type": "update", "data": {"n": 2}})
            custom = {"type": "event", "event": {"type": "t", "data": nested(64)}}
            assert (second["offset"], second["event"]) == (3, custom)
            with pytest.raises(asyncio.TimeoutError):
                await sub.next(wait=0.2)
        assert await worker.call("stream.get", at("a")) == {"n": 2}
        assert await worker.call("stream.get", at("b")) == "<no result>"
        assert await worker.call("stream.set", {**at("x", stream="other"), "data": "fine"}) == {
            "old_value": None, "new_value": "fine"}
        async with Subscriber(stream_url(srv)) as late, Subscriber(stream_url(srv)) as back:
            await late.join("s", "g")  # a join sees the old state and a position without holes
            sync = await late.next()
            assert (sync["event"]["data"], sync["position"]["offset"]) == ([{"n": 2}], 3)
            await back.join("s", "g", position=before)  # the change log replays exactly the good writes
            resumed = await back.next()
            assert resumed["recovered"] is True
            assert [(await back.next())["offset"] for _ in range(2)] == [2, 3]
    if config.stream is not None and config.stream.adapter.store_method == "file_based":
        async with running(config) as again, Worker(worker_url(again)) as worker:
            assert await worker.call("stream.list", {"stream_name": "s", "group_id": "g"}) == [{"n": 2}]


async def test_the_depth_limit_comes_from_the_config() -> None:
    async with running(make_config(max_value_depth=3)) as srv, Worker(worker_url(srv)) as worker:
        assert (await worker.call("stream.set", {**at("a"), "data": nested(3)}))["new_value"] == nested(3)
        with pytest.raises(CallFailed, match=r"stream.set: data.d.d.d: nested deeper than 3 levels"):
            await worker.call("stream.set", {**at("a"), "data": nested(4)})
        await worker.call("stream.update", {**at("b"), "ops": [{"type": "set", "path": ["p", "q"], "value": [1]}]})
        with pytest.raises(CallFailed, match=r"ops\[0\].value\[0\]: nested deeper than 3 levels \(counting the 2"):
            await worker.call("stream.update", {**at("b"), "ops": [{"type": "set", "path": ["p", "q"],
                                                                    "value": [[1]]}]})
        assert await worker.call("stream.get", at("b")) == {"p": {"q": [1]}}


@pytest.fixture
async def api() -> AsyncIterator[Server]:
    config = replace(make_config(max_value_depth=3), rest_api=RestApiConfig(port=0))
    async with running(config) as srv:
        yield srv


async def test_a_rest_body_past_the_limits_is_a_400_and_never_reaches_the_handler(api: Server) -> None:
    bodies: list[Any] = []

    async def handler(request: Any) -> Any:
        bodies.append(request["body"])
        return {"ok": True}

    async with TestWorker(worker_url(api)) as backend, aiohttp.ClientSession() as http:
        await backend.register("echo", handler)
        await backend.trigger("http", "echo", {"path": "/echo", "method": "POST"})
        await backend.call("stream.list_all", {})  # the registrations above are processed
        url = f"http://127.0.0.1:{api.rest_port}/echo"
        async with http.post(url, json={"a": {"b": {"c": 1}}}) as response:
            assert response.status == 200 and await response.json() == {"ok": True}
        async with http.post(url, json={"a": {"b": {"c": [1]}}}) as response:
            assert response.status == 400
            error = await response.json()
        assert error["code"] == "invalid_value"
        assert error["message"] == "body.a.b.c: nested deeper than 3 levels"
        assert bodies == [{"a": {"b": {"c": 1}}}]
