"""Stream module ``allowed_origins``: a browser page from another site is refused before the auth function runs."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from streamhub.transport.access import OriginPolicy
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker

APP = "https://app.example.com"


async def status_of(url: str, headers: dict[str, str]) -> int:
    """The upgrade's outcome: 101 when the socket opened, else the HTTP status it was refused with."""
    try:
        async with Subscriber(url, headers=headers):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


async def test_foreign_origin_is_refused_before_auth_runs() -> None:
    config = make_config(auth_function="auth::check", allowed_origins=(APP, "http://localhost:8080/"))
    async with running(config) as server, TestWorker(worker_url(server)) as worker:
        seen: list[Any] = []

        async def check(data: Any) -> Any:
            seen.append(data["headers"].get("origin"))
            return {"context": {"user": "u1"}}

        await worker.register("auth::check", check)
        url = stream_url(server)
        for origin in ("https://evil.example.com", "http://app.example.com", "https://app.example.com.evil.io",
                       "null", ""):
            assert await status_of(url, {"Origin": origin}) == 403, origin
            assert await status_of(f"{url}stream/todos/u1/", {"Origin": origin}) == 403, origin
        assert seen == []  # the auth function was never called for a refused origin
        for origin in (APP, "HTTPS://App.Example.com:443", "http://localhost:8080"):
            assert await status_of(url, {"Origin": origin}) == 101, origin
        assert await status_of(url, {}) == 101  # no Origin: not a browser, auth decides
        assert seen == [APP, "HTTPS://App.Example.com:443", "http://localhost:8080", None]
        async with aiohttp.ClientSession() as session, session.get(
                url, headers={"Origin": "https://evil.example.com", "Connection": "Upgrade",
                              "Upgrade": "websocket"}) as refused:
            assert refused.status == 403 and (await refused.json())["error"] == "forbidden"


async def test_without_allowed_origins_any_origin_connects() -> None:
    async with running(make_config()) as server:
        assert await status_of(stream_url(server), {"Origin": "https://anywhere.example"}) == 101


@pytest.mark.parametrize(("listed", "origin", "allowed"), [
    ((), "https://x.io", True), (("*",), "https://x.io", True), ((APP,), None, True),
    ((APP,), f"{APP}/", True), ((APP,), "https://app.example.com:8443", False),
    (("http://[::1]:80",), "http://[::1]", True), ((APP,), "https://APP.example.com", True),
])
def test_origin_matching(listed: tuple[str, ...], origin: str | None, allowed: bool) -> None:
    assert OriginPolicy(listed).allows(origin) is allowed
