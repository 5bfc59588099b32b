"""Frames no peer should send: each one is answered, never logs a traceback, and never costs the connection.

Stream port: an ``error`` frame. Worker port: an error ``invocationresult`` when the frame names an
``invocation_id`` (or, for a worker's unusable answer to the engine, the waiting caller's call fails), else an
``error`` frame and exactly one WARNING. REST port: an HTTP 400, and a request that does not parse is one INFO line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from streamhub.config import RestApiConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import CallFailed, RawClient, Subscriber, TestWorker, timeout, wait_until

DEEP = "[" * 1100 + "]" * 1100
BIG_INT = "1180591620717411303424"  # 2**70


def _join(**override: Any) -> dict[str, Any]:
    data = {"subscriptionId": "s1", "streamName": "s", "groupId": "g", **override}
    return {"type": "join", "data": data}


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == []


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_stream_port_answers_undecodable_frames_and_keeps_the_connection(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    join = orjson.dumps(_join()).decode()
    bad: list[tuple[str | bytes, str, str]] = [  # frame, code, text the message must contain
        (DEEP, "frame_too_deep", "1100 levels"),
        ('{"type":"join","extra":' + "[" * 5000 + ',"data":{}}', "frame_too_deep", "5002 levels"),
        (join.replace('"g"}', '"g","position":{"epoch":"e","offset":1e400}}'), "invalid_message",
         "$.data.position.offset"),
        (join.replace('"g"}', f'"g","position":{{"epoch":"e","offset":{BIG_INT}}}}}'), "invalid_message",
         "$.data.position.offset"),
        (join.replace('"g"}', '"g","position":{"epoch":"e","offset":NaN}}'), "invalid_json", "not valid JSON"),
        (join.replace('"s1"', "17"), "invalid_message", "$.data.subscriptionId"),
        (join.encode().replace(b'"g"', b'"g\xff"'), "invalid_json", "UTF-8"),
        (b"\x00\x81\xfe garbage", "invalid_json", "not valid JSON"),
        ("[1, 2]", "invalid_message", "object"),
    ]
    caplog.set_level(logging.INFO)
    async with Subscriber(stream_url(server)) as sub:
        assert sub.ws is not None
        for frame, code, text in bad:
            await (sub.ws.send_bytes(frame) if isinstance(frame, bytes) else sub.ws.send_str(frame))
            answer = await sub.next()
            assert answer["type"] == "error" and answer["error"]["code"] == code, (frame[:80], answer)
            assert text in answer["error"]["message"]
        await sub.join("s", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}
        assert not sub.closed.is_set()
    _no_traceback(caplog)


async def test_text_frame_that_is_not_utf8_closes_with_1007(server: Server) -> None:
    """RFC 6455 §8.1: the WebSocket layer must fail such a connection; binary frames are the way to send bytes."""
    raw = RawClient(server.stream_port)
    await raw.connect()
    assert raw.writer is not None
    payload, mask = b'{"type":"\xff"}', b"\x01\x02\x03\x04"
    raw.writer.write(bytes((0x81, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    assert await raw.read_until_close(5) == (0, 1007)
    raw.close()


@contextlib.asynccontextmanager
async def _serving_worker(server: Server) -> AsyncIterator[tuple[TestWorker, asyncio.Event, list[Any]]]:
    """A worker with a function, a stream trigger and a slow function, to check nothing of it is lost."""
    release = asyncio.Event()
    changes: list[Any] = []

    async def echo(data: Any) -> Any:
        return {"echo": data}

    async def slow(data: Any) -> Any:
        await release.wait()
        return {"slow": data}

    async def on_change(data: Any) -> None:
        changes.append(data)

    async with TestWorker(worker_url(server)) as worker:
        await worker.register("fz.echo", echo)
        await worker.register("fz.slow", slow)
        await worker.register("fz.changed", on_change)
        await worker.trigger("stream", "fz.changed", {"stream_name": "watched"})
        yield worker, release, changes


def _bad_worker_frames(invocation_id: str) -> list[bytes]:
    head = f'{{"type":"invokefunction","invocation_id":"{invocation_id}","function_id":"fz.echo","data":'.encode()
    return [
        head + b'{"n":1e400}}',
        head + b'{"n":NaN}}',
        head + DEEP.encode() + b"}",
        head + b'"\xff\xfe"}',
        head + b'{"cut',
        f'{{"type":"invokefunction","invocation_id":"{invocation_id}","function_id":42}}'.encode(),
    ]


async def test_worker_call_frames_get_error_invocationresults_and_the_worker_keeps_everything(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with _serving_worker(server) as (worker, release, changes), TestWorker(worker_url(server)) as caller:
        in_flight = asyncio.create_task(caller.call("fz.slow", 1))
        assert worker.ws is not None
        expected = {"0": "invalid_message", "1": "invalid_json", "2": "frame_too_deep", "3": "invalid_json",
                    "4": "invalid_json", "5": "invalid_message"}
        for index, frame in enumerate(_bad_worker_frames("bad")):
            await worker.ws.send_bytes(frame.replace(b'"bad"', f'"{index}"'.encode()))
            answer = await asyncio.wait_for(worker.other.get(), timeout(5))
            assert answer["type"] == "invocationresult" and answer["invocation_id"] == str(index), answer
            assert answer["error"]["code"] == expected[str(index)], answer
            assert "invokefunction frame" in answer["error"]["message"]
        release.set()
        assert await in_flight == {"slow": 1}
        assert await caller.call("fz.echo", 2) == {"echo": 2}
        await caller.call("stream.set", {"stream_name": "watched", "group_id": "g", "item_id": "i", "data": 1})
        await wait_until(lambda: changes, 5)
    _no_traceback(caplog)
    assert _warnings(caplog) == []  # every one was answered to the worker that sent it


async def test_worker_frames_without_invocation_id_get_an_error_frame_and_one_warning(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    frames: list[tuple[bytes, str]] = [
        (b'{"type":"registerfunction","id":1e400}', "invalid_message"),
        (b'{"type":"registerfunction","id":' + BIG_INT.encode() + b"}", "invalid_message"),
        (b'{"type":"registertrigger","id":"t","trigger_type":"stream","function_id":"f","config":NaN}',
         "invalid_json"),
        (b'{"type":"registerfunction","id":"f","metadata":' + DEEP.encode() + b"}", "frame_too_deep"),
        (b'{"type":"registerfunction","id":"\xff"}', "invalid_json"),
        (b'{"type":"registertrigger","id":["t"],"trigger_type":"stream","function_id":"f"}', "invalid_message"),
        (b"\x00\x01\x02\x03binary", "invalid_json"),
        (b"[]", "invalid_message"),
    ]
    async with _serving_worker(server) as (worker, _, _), TestWorker(worker_url(server)) as caller:
        assert worker.ws is not None
        await asyncio.sleep(0.05)
        caplog.set_level(logging.INFO)
        caplog.clear()
        for frame, code in frames:
            await worker.ws.send_bytes(frame)
            answer = await asyncio.wait_for(worker.other.get(), timeout(5))
            assert answer["type"] == "error" and answer["error"]["code"] == code, (frame[:60], answer)
        for empty in (b"", b"  \n"):  # ignored: no answer, no log
            await worker.ws.send_bytes(empty)
        await worker.send({"type": "ping"})
        assert await asyncio.wait_for(worker.other.get(), timeout(5)) == {"type": "pong"}
        assert len(_warnings(caplog)) == len(frames)
        assert await caller.call("fz.echo", 3) == {"echo": 3}
    _no_traceback(caplog)


@pytest.mark.parametrize("bad_result", [b"1e400", b"NaN", DEEP.encode(), b'"\xff"'])
async def test_unusable_result_fails_the_waiting_call_at_once(
        server: Server, caplog: pytest.LogCaptureFixture, bad_result: bytes) -> None:
    caplog.set_level(logging.INFO)
    async with TestWorker(worker_url(server)) as worker, TestWorker(worker_url(server)) as caller:
        assert worker.ws is not None
        await worker.send({"type": "registerfunction", "id": "fz.broken"})
        await asyncio.sleep(0.05)
        call = asyncio.create_task(caller.call("fz.broken", {}, wait=2))
        invoke = await asyncio.wait_for(worker.other.get(), timeout(5))
        assert invoke["type"] == "invokefunction"
        await worker.ws.send_bytes(b'{"type":"invocationresult","invocation_id":"' + invoke["invocation_id"].encode()
                                   + b'","function_id":"fz.broken","result":' + bad_result + b"}")
        with pytest.raises(CallFailed) as failure:
            await call
        assert failure.value.code in {"invalid_message", "invalid_json", "frame_too_deep"}
        assert "unusable" in str(failure.value.message)
        told = await asyncio.wait_for(worker.other.get(), timeout(5))
        assert told["type"] == "error" and told["error"]["code"] == failure.value.code
        assert len(_warnings(caplog)) == 1
        await worker.send({"type": "ping"})
        assert await asyncio.wait_for(worker.other.get(), timeout(5)) == {"type": "pong"}
    _no_traceback(caplog)


async def _raw_http(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout(5))
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))
        return head + await asyncio.wait_for(reader.readexactly(length), timeout(5))
    finally:
        writer.close()


async def test_rest_port_answers_bad_requests_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    async def handler(request: Any) -> Any:
        seen.append(request)
        return {"ok": True}

    caplog.set_level(logging.INFO)
    async with running(replace(make_config(), rest_api=RestApiConfig(port=0))) as srv, \
            TestWorker(worker_url(srv)) as worker:
        await worker.register("fz.http", handler)
        await worker.trigger("http", "fz.http", {"path": "/fz", "method": "POST"})
        await worker.call("stream.list_all", {})
        port = srv.rest_port
        assert (await _raw_http(port, b"\x16\x03\x01 not http\r\n\r\n")).startswith(b"HTTP/1.0 400")
        assert (await _raw_http(port, b"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n")).startswith(b"HTTP/1.0 400")
        body = b"[" * 300 + b"]" * 300  # orjson would take it (up to 1024), then nothing could encode it again
        deep = await _raw_http(port, b"POST /fz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert deep.startswith(b"HTTP/1.1 400") and b"300 levels" in deep
        latin1 = await _raw_http(port, b"POST /fz HTTP/1.1\r\nHost: x\r\nX-Name: Jos\xe9\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        assert latin1.startswith(b"HTTP/1.1 200")
        assert seen[-1]["headers"]["x-name"] == "Jos\ufffd"  # not UTF-8: replaced, and the call still made
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert any("400" in r.getMessage() for r in caplog.records if r.name == "aiohttp.server")
