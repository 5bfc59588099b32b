"""The stream port's auth function fails closed: only ``true`` or an object whose ``unauthorized`` is absent or
``false`` lets a WebSocket in; every other answer (or none) is HTTP 401 before the upgrade."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker


class _NoResult:
    """The worker answers without a ``result`` key."""

    def __repr__(self) -> str:
        return "NO_RESULT"


NO_RESULT = _NoResult()


@contextlib.asynccontextmanager
async def _engine_answering(answer: Any) -> AsyncIterator[tuple[Server, list[Any]]]:
    """An engine whose auth function answers ``answer`` as raw wire JSON; yields it and the join contexts seen."""
    contexts: list[Any] = []

    async def on_join(event: Any) -> None:
        contexts.append(event["context"])

    async with running(make_config(auth_function="auth::check")) as srv, TestWorker(worker_url(srv)) as worker:
        await worker.send({"type": "registerfunction", "id": "auth::check"})  # answered below, not by a handler
        await worker.register("on_join", on_join)
        await worker.trigger("stream_join", "on_join", {})
        await worker.call("stream.list_all", {})
        replier = asyncio.create_task(_answer_auth(worker, answer))
        try:
            yield srv, contexts
        finally:
            replier.cancel()


async def _answer_auth(worker: TestWorker, answer: Any) -> None:
    while True:
        call = await worker.other.get()
        if call.get("type") != "invokefunction":
            continue
        reply = {"type": "invocationresult", "invocation_id": call["invocation_id"], "function_id": "auth::check"}
        if answer is not NO_RESULT:
            reply["result"] = answer
        await worker.send(reply)


@pytest.mark.parametrize("answer", [
    0, "", [], "yes", 1, {"unauthorized": 1}, {"unauthorized": "true"}, {"unauthorized": True},
    {"unauthorized": None}, {"unauthorized": 0}, None, False, NO_RESULT,
], ids=repr)
async def test_anything_but_a_clear_yes_is_401(answer: Any) -> None:
    async with _engine_answering(answer) as (srv, contexts), aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(stream_url(srv))
        assert refused.value.status == 401
        assert contexts == []


@pytest.mark.parametrize(("answer", "context"), [
    (True, True),
    ({}, {}),
    ({"unauthorized": False}, {"unauthorized": False}),
    ({"context": {"user": "ann"}}, {"user": "ann"}),
    ({"unauthorized": False, "context": 7}, 7),
], ids=repr)
async def test_true_or_an_object_without_unauthorized_admits(answer: Any, context: Any) -> None:
    async with _engine_answering(answer) as (srv, contexts), Subscriber(stream_url(srv)) as sub:
        await sub.join("s", "g")
        assert (await sub.next())["event"]["type"] == "sync"
        assert contexts == [context]
