"""Worker port authentication (``worker_auth``) and the start-up warning for an open worker port."""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest

from streamhub.config import EngineConfig, WorkerAuthConfig
from streamhub.errors import InvalidRequest
from streamhub.sdk import Client, ConnectError, NotConnected
from streamhub.transport import access
from streamhub.transport.access import BearerTokens
from tests.conftest import make_config, running
from tests.helpers import timeout, wait_until

TOKENS = ("alpha-token-1", "beta-token-22")


def secured(*tokens: str, **engine: Any) -> EngineConfig:
    return replace(make_config(), worker_auth=WorkerAuthConfig(tokens=tokens or TOKENS), **engine)


async def upgrade(port: int, path: str, headers: dict[str, str]) -> int | dict[str, Any]:
    """Open a worker socket; returns the first frame, or the HTTP status the upgrade was refused with."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}{path}", headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        async with ws:
            if path == "/otel":
                return {"open": True}
            first: dict[str, Any] = orjson.loads((await ws.receive(timeout(5))).data)
            return first


async def test_worker_port_admits_only_listed_bearer_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(secured()) as server:
        port = server.worker_port
        for path in ("/", "/otel"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "},
                            {"Authorization": f"Basic {TOKENS[0]}"}, {"Authorization": TOKENS[0]},
                            {"Authorization": f"Bearer {TOKENS[0]}x"}, {"X-Token": TOKENS[0]}):
                assert await upgrade(port, path, headers) == 401, (path, headers)
            assert server.workers.connections == {}
            for token in TOKENS:
                answer = await upgrade(port, path, {"Authorization": f"bearer  {token} "})
                assert isinstance(answer, dict), (path, token, answer)
                if path == "/":
                    assert answer["type"] == "workerregistered"
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/",
                                                                  headers={"Connection": "Upgrade",
                                                                           "Upgrade": "websocket"}) as refused:
            assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await refused.json())["error"] == "unauthorized"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("no bearer token" in line for line in refusals)
    assert any("not accepted" in line for line in refusals)
    assert all(token not in caplog.text for token in TOKENS)


async def test_every_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    tokens = BearerTokens(["one", "two", "three"])
    assert tokens.admits("Bearer one")
    assert len(compared) == 3  # no early exit on the first match
    assert all(len(a) == len(b) == 32 for a, b in compared)  # digests: the length of a token leaks nothing
    assert not tokens.admits("Bearer four") and not tokens.admits(None) and not tokens.admits("Bearer")
    assert len(compared) == 12


async def test_sdk_sends_its_token_and_says_why_it_was_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("III_TOKEN", raising=False)
    async with running(secured()) as server:
        url = f"ws://127.0.0.1:{server.worker_port}/"
        async with Client(url, token=TOKENS[1], connect_timeout=timeout(5)) as client:
            assert await client.call("stream.list_groups", {"stream_name": "todos"}) == []
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectError) as missing:
            await Client(url, connect_timeout=timeout(10)).connect()
        assert asyncio.get_running_loop().time() - started < timeout(2)  # refused at once, no retry loop
        assert missing.value.code == "unauthorized"
        assert "HTTP 401" in missing.value.message and "pass token= or set III_TOKEN" in missing.value.message
        with pytest.raises(ConnectError) as wrong:
            await Client(url, token="nope", connect_timeout=timeout(10)).connect()
        assert wrong.value.code == "unauthorized" and "did not accept the worker token" in wrong.value.message
        monkeypatch.setenv("III_TOKEN", f" {TOKENS[0]}\n")  # what the iii SDKs read, stripped as they do
        async with Client(url, connect_timeout=timeout(5)) as client:
            assert client.connected
        with pytest.raises(InvalidRequest):
            Client(url, token="x", headers={"authorization": "Bearer y"})


async def test_worker_refused_on_reconnect_stops_with_the_reason() -> None:
    """The engine comes back with other tokens: the worker stops and says so instead of retrying silently."""
    async with running(secured()) as first:
        port = first.worker_port
        client = Client(f"ws://127.0.0.1:{port}/", token=TOKENS[0], connect_timeout=timeout(5), call_timeout=1.0)
        await client.connect()
    async with running(secured("rotated-token", port=port)):
        with pytest.raises(ConnectError) as refused:
            await asyncio.wait_for(client.run_forever(), timeout(10))
        assert refused.value.code == "unauthorized" and "did not accept" in refused.value.message
        with pytest.raises(NotConnected) as call:
            await client.call("stream.list_groups", {"stream_name": "todos"})
        assert "refused the worker connection" in call.value.message
        await client.close()


@pytest.mark.parametrize(("host", "auth", "warned"), [("0.0.0.0", False, True), ("127.0.0.1", False, False),
                                                      ("0.0.0.0", True, False)])
async def test_open_worker_port_off_loopback_is_warned_about(host: str, auth: bool, warned: bool,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    config = secured(host=host) if auth else replace(make_config(), host=host)
    caplog.set_level(logging.WARNING, logger="streamhub.transport.server")
    async with running(config):
        lines = [r.getMessage() for r in caplog.records if r.name == "streamhub.transport.server"]
    assert any("without authentication" in line and "worker_auth" in line for line in lines) is warned


async def test_refused_workers_register_nothing() -> None:
    async with running(secured()) as server:
        client = Client(f"ws://127.0.0.1:{server.worker_port}/", connect_timeout=timeout(5))
        client.register_function("evil::steal", lambda event: event)
        with pytest.raises(ConnectError):
            await client.connect()
        await wait_until(lambda: not server.workers.connections)
        assert not server.engine.functions.exists("evil::steal")
