"""The SDK never puts a token into an error message or a log line (query strings, Authorization headers)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import pytest

from streamhub.config import WorkerAuthConfig
from streamhub.errors import StreamhubError
from streamhub.sdk import Client, ConnectError, StreamClient, SubscriptionError
from streamhub.sdk.credentials import redact, redact_url
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import free_port, timeout, wait_until

SECRETS = ("s3cr3t-in-query", "s3cr3t-in-header", "s3cr3t-api-key", "s3cr3t-password")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into: {text}"


def everything(error: BaseException, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The exception as a program would print it, and every captured log line with its traceback."""
    lines = [str(error), repr(error), getattr(error, "message", "")]
    lines += [caplog.text] + [record.getMessage() for record in caplog.records]
    return lines


@pytest.fixture(autouse=True)
def capture_all(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.mark.parametrize("userinfo", ["", f"user:{SECRETS[3]}@"])  # with it aiohttp refuses the URL at once
async def test_connect_failure_hides_the_url_token(userinfo: str, caplog: pytest.LogCaptureFixture) -> None:
    url = f"ws://{userinfo}127.0.0.1:{free_port()}/?token={SECRETS[0]}&api_key={SECRETS[2]}"
    with pytest.raises(ConnectError) as failed:
        await Client(url, token=SECRETS[1], connect_timeout=0.5).connect()
    assert "127.0.0.1" in failed.value.message and "token=***" in failed.value.message
    assert_no_secret(*everything(failed.value, caplog))


async def test_refused_worker_hides_header_and_url_tokens(caplog: pytest.LogCaptureFixture) -> None:
    config = replace(make_config(), worker_auth=WorkerAuthConfig(tokens=("the-real-token",)))
    async with running(config) as server:
        with pytest.raises(ConnectError) as refused:
            await Client(f"{worker_url(server)}?access_token={SECRETS[0]}", token=SECRETS[1],
                         connect_timeout=timeout(5)).connect()
        assert refused.value.code == "unauthorized" and "HTTP 401" in refused.value.message
        with pytest.raises(ConnectError) as by_header:
            await Client(worker_url(server), headers={"Authorization": f"Bearer {SECRETS[1]}"},
                         connect_timeout=timeout(5)).connect()
    assert_no_secret(*everything(refused.value, caplog), *everything(by_header.value, caplog))


async def test_refused_subscription_hides_its_tokens(caplog: pytest.LogCaptureFixture) -> None:
    async with running(make_config(auth_function="auth::deny")) as server:
        async with Client(worker_url(server), call_timeout=timeout(5)) as worker:
            worker.register_function("auth::deny", lambda request: None)
            await worker.call("stream.list_all", {})
            url = f"{stream_url(server)}?token={SECRETS[0]}&client_secret={SECRETS[2]}"
            async with StreamClient(url, headers={"Authorization": f"Bearer {SECRETS[1]}"}) as streams:
                sub = streams.subscribe("todos", "u1")
                with pytest.raises(SubscriptionError) as refused:
                    await sub.wait_synced(timeout(5))
    assert refused.value.code == "unauthorized" and "401" in refused.value.message
    assert_no_secret(*everything(refused.value, caplog))


async def test_lost_connection_messages_hide_the_token(caplog: pytest.LogCaptureFixture) -> None:
    server_cm = running(make_config())
    server = await server_cm.__aenter__()
    worker = Client(f"{worker_url(server)}?token={SECRETS[0]}", stream_url=f"{stream_url(server)}?token={SECRETS[0]}",
                    call_timeout=0.5)
    errors: list[StreamhubError] = []
    try:
        await worker.connect()
        sub = worker.stream.subscribe("todos", "u1")
        await sub.wait_synced(timeout(5))
        slow = asyncio.ensure_future(worker.call("stream.list_all", {}))
        await server_cm.__aexit__(None, None, None)
        await wait_until(lambda: not worker.connected)
        for pending in (slow, worker.call("stream.list_all", {})):
            try:
                await pending
            except StreamhubError as exc:
                errors.append(exc)
        await asyncio.sleep(0.3)  # a few reconnect attempts against the closed port
    finally:
        await worker.close()
    assert errors and any("lost" in line or "no connection" in line for line in (str(e) for e in errors))
    assert "connection to ws://127.0.0.1" in caplog.text
    for error in errors:
        assert_no_secret(*everything(error, caplog))


@pytest.mark.parametrize(("url", "expected"), [
    ("ws://h:1/?token=abc", "ws://h:1/?token=***"),
    ("wss://h/p?a=1&api_key=k&x=2#f", "wss://h/p?a=1&api_key=***&x=2#f"),
    ("ws://h/?Access-Token=a&PASSWORD=b&sig=c&plain=d", "ws://h/?Access-Token=***&PASSWORD=***&sig=***&plain=d"),
    ("ws://me:pw@h/", "ws://***@h/"),
    ("ws://h/stream/todos/u1/", "ws://h/stream/todos/u1/"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(("text", "hidden"), [
    ("401, message='Invalid response status', url='ws://h/?token=abc123'", "abc123"),
    ("headers={'Authorization': 'Bearer abc123'}", "abc123"),
    ("Authorization: Basic YWxhZGRpbjpvcGVu", "YWxhZGRpbjpvcGVu"),
    ("Cannot connect to host ws://u:abc123@h:1 ssl:default", "abc123"),
])
def test_redact_free_text(text: str, hidden: str) -> None:
    assert hidden not in redact(text) and "***" in redact(text)


def test_redaction_keeps_ordinary_text() -> None:
    text: Any = "cannot connect to ws://127.0.0.1:3112/ within 1 s: Connect call failed ('127.0.0.1', 3112)"
    assert redact(text) == text
