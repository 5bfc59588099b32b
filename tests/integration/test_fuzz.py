"""A seeded fuzz run against all three ports: every hostile frame or request is answered and the engine lives on.

What each port must answer (anything else fails the test):

* stream port: every non-empty frame gets at least one frame back (``error``, ``sync`` or ``unauthorized``), in
  order, before the next frame's answer; empty frames get nothing. The connection stays open throughout.
* worker port: a call (``invokefunction`` with an ``invocation_id``) always gets its ``invocationresult``, whatever
  follows the id; any other unusable frame gets exactly one ``error`` frame (or an error ``invocationresult`` when
  it names an ``invocation_id``) and one WARNING; frames that may still be valid messages only must not break
  anything. The connection stays open throughout.
* REST port: every request gets an HTTP response.

Afterwards the engine must still serve a fresh subscriber and worker, no log record may carry a traceback, and the
process RSS must be back near where it started. The seed is fixed, so a failure replays exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from random import Random
from typing import Any

import aiohttp
import orjson
import pytest

from streamhub.config import RestApiConfig
from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.fuzz_frames import ALWAYS_INVALID, garbage, is_utf8, maybe_invalid, mutate_bytes, replace_value
from tests.helpers import Subscriber, TestWorker, timeout

SEED = 20_260_510
STREAM_FRAMES = 4000
WORKER_CALLS, WORKER_BAD, WORKER_ODD = 1500, 2000, 500
REST_REQUESTS = 3000
HUGE = 200_000  # bytes of the largest generated string: well within every port's size limit
BATCH = 100
RSS_SLACK = 12 * 1024 * 1024  # measured: about 2 MiB stays (allocator fragmentation), whatever the frame count

pytestmark = pytest.mark.timeout(120)


def _rss() -> int:
    """The process's resident memory, once freed memory is handed back (glibc keeps freed blocks otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_fuzz_every_port_answers_and_the_engine_lives_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stats: Counter[str] = Counter()
    async with running(replace(make_config(), rest_api=RestApiConfig(port=0))) as srv, _helper(srv) as helper:
        warm = Random(SEED - 1)
        await _fuzz_stream_port(srv, warm, 200, Counter())
        await _fuzz_rest_port(srv, warm, 200, Counter())
        start = _rss()
        rng = Random(SEED)
        await _fuzz_stream_port(srv, rng, STREAM_FRAMES, stats)
        await _fuzz_rest_port(srv, rng, REST_REQUESTS, stats)
        await _fuzz_worker_port(srv, rng, stats, caplog)
        await _still_serving(srv, helper)
        grown = _rss() - start
    print(f"\nfuzz answers: {dict(sorted(stats.items()))}\nRSS grew by {grown / 2**20:.1f} MiB")
    assert grown < RSS_SLACK, f"RSS grew by {grown / 2**20:.1f} MiB"
    tracebacks = [r.getMessage()[:200] for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == []


# Stream port


async def _fuzz_stream_port(srv: Server, rng: Random, count: int, stats: Counter[str]) -> None:
    frames = [_stream_frame(rng, index) for index in range(count)]
    async with aiohttp.ClientSession() as http, http.ws_connect(stream_url(srv), max_msg_size=0) as ws:
        for first in range(0, count, BATCH):
            batch = frames[first:first + BATCH]
            for index, frame in enumerate(batch, first):
                await _send(ws, frame, rng)
                await ws.send_bytes(orjson.dumps({"type": "join", "data": {
                    "subscriptionId": "sentinel", "streamName": "sentinel", "groupId": f"s{index}"}}))
            answers = await _stream_answers(ws, first + len(batch) - 1)
            _check_stream_answers(batch, first, answers, stats)


def _stream_frame(rng: Random, index: int) -> bytes:
    if index % 500 == 499:
        return rng.choice([b"", b" ", b"\n\t "])  # empty: ignored, never answered
    data: dict[str, Any] = {"subscriptionId": f"fz{index}", "streamName": "fz", "groupId": f"g{rng.randrange(20)}"}
    if rng.random() < 0.3:
        data["id"] = "i1"
    if rng.random() < 0.3:
        data["position"] = {"epoch": "e", "offset": rng.randrange(100)}
    join: dict[str, Any] = {"type": "join", "data": data}
    if rng.random() < 0.15:  # the presence request: answered with the members or an error frame
        join = {"type": "presence", "data": {"requestId": f"fz{index}", "streamName": "fz", "groupId": data["groupId"]}}
    roll = rng.random()
    if roll < 0.45:
        return replace_value(rng, join, [*ALWAYS_INVALID, *maybe_invalid(HUGE)])
    if roll < 0.75:
        return mutate_bytes(rng, orjson.dumps(join))
    return garbage(rng, HUGE)


async def _send(ws: aiohttp.ClientWebSocketResponse, frame: bytes, rng: Random) -> None:
    """Text when the bytes are UTF-8 (half the time), else binary: a non-UTF-8 text frame is closed with 1007."""
    if is_utf8(frame) and rng.random() < 0.5:
        await ws.send_str(frame.decode())
    else:
        await ws.send_bytes(frame)


async def _stream_answers(ws: aiohttp.ClientWebSocketResponse, last: int) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    while True:
        message = await asyncio.wait_for(ws.receive(), timeout(10))
        assert message.type == aiohttp.WSMsgType.TEXT, f"stream connection ended: {message}"
        frame = orjson.loads(message.data)
        answers.append(frame)
        if frame.get("subscriptionId") == "sentinel" and frame.get("groupId") == f"s{last}":
            return answers


def _check_stream_answers(batch: list[bytes], first: int, answers: list[dict[str, Any]],
                          stats: Counter[str]) -> None:
    per_frame: list[list[dict[str, Any]]] = [[]]
    for answer in answers:
        if answer.get("subscriptionId") == "sentinel":
            assert answer["groupId"] == f"s{first + len(per_frame) - 1}"
            per_frame.append([])
        else:
            per_frame[-1].append(answer)
    assert len(per_frame) == len(batch) + 1 and per_frame[-1] == []
    for frame, got in zip(batch, per_frame, strict=False):
        if not frame.strip():
            assert got == [], (frame, got)
            stats["stream: empty, ignored"] += 1
            continue
        assert got, f"stream frame not answered: {frame[:120]!r}"
        for answer in got:
            if answer["type"] == "error":
                kind = answer["error"]["code"]
            elif answer["type"] == "presence":
                kind = "presence answer"
            else:
                kind = answer["event"]["type"]
            stats[f"stream: {kind}"] += 1


# REST port


async def _fuzz_rest_port(srv: Server, rng: Random, count: int, stats: Counter[str]) -> None:
    requests = [_rest_request(rng) for _ in range(count)]
    for first in range(0, count, 8):
        statuses = await asyncio.gather(*(_http(srv.rest_port, raw) for raw in requests[first:first + 8]))
        for raw, status in zip(requests[first:first + 8], statuses, strict=True):
            assert status is not None, f"REST request not answered: {raw[:200]!r}"
            stats[f"rest: {status}"] += 1


def _rest_request(rng: Random) -> bytes:
    roll = rng.random()
    body = {"title": "t", "n": 1, "tags": ["a", "b"], "nested": {"k": [1, {"z": None}]}}
    if roll < 0.5:
        raw = (replace_value(rng, body, [*ALWAYS_INVALID, *maybe_invalid(HUGE)]) if rng.random() < 0.7
               else mutate_bytes(rng, orjson.dumps(body)))
        return _request(b"POST", b"/fz/echo", [(b"Content-Type", b"application/json")], raw)
    if roll < 0.8:
        method = rng.choice([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"FZ", b"get"])
        path = rng.choice([b"/fz/echo", b"/fz/items/1", b"/", b"/nope", b"/fz/items/%ff", b"/fz/items/\xc3\xa9",
                           b"/" + b"a" * 4000, b"/fz/echo?x=1&x=2&y=%zz", b"//", b"/fz/../fz/echo", b"*"])
        headers = rng.sample([(b"Content-Type", rng.choice([b"application/json", b"text/plain", b"a/json; x"])),
                              (b"Origin", b"http://evil.test"), (b"Access-Control-Request-Method", b"POST"),
                              (b"Authorization", b"Bearer x"), (b"X-Fz", b"v" * rng.randint(1, 6000))], k=2)
        head = _request(method, path, headers, b"")
        return mutate_bytes(rng, head[:-4]) + b"\r\n\r\n" if rng.random() < 0.5 else head
    return b"\x01" + rng.randbytes(rng.randint(1, 300)).replace(b"\r\n\r\n", b"") + b"\r\n\r\n"


def _request(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: fuzz", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _http(port: int, raw: bytes) -> int | None:
    """Send one raw request; the status of the response, or None if the connection ended without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout(10))
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    finally:
        writer.close()
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    assert status_line[0].startswith(b"HTTP/"), head[:200]
    return int(status_line[1])


# Worker port


async def _fuzz_worker_port(srv: Server, rng: Random, stats: Counter[str],
                            caplog: pytest.LogCaptureFixture) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(worker_url(srv), max_msg_size=0) as ws:
        assert orjson.loads((await ws.receive()).data)["type"] == "workerregistered"
        async with _watching(srv, "fzw"):  # what the calls store reaches a real subscriber
            await _worker_calls(ws, rng, stats)
        caplog.clear()
        errors = await _worker_bad_frames(ws, rng, stats)
        warnings = [r for r in caplog.records if r.name.endswith("worker_ws") and r.levelno == logging.WARNING]
        assert len(warnings) == errors  # exactly one per frame answered with an error frame
        caplog.clear()
        await _worker_odd_frames(ws, rng, stats)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) <= WORKER_ODD


_FUNCTIONS = ["fz.echo", "stream.get", "stream.set", "stream.update", "stream.send", "stream.delete",
              "stream.list", "stream.list_groups", "nope.missing"]


def _call_frame(rng: Random, index: int) -> bytes:
    """A call whose id comes first; whatever is mutated after it, the call must be answered."""
    function_id = rng.choice(_FUNCTIONS)
    # No "type" key before the end of data: a repeated slice could lift it to the top, and a frame whose type
    # names no message is ignored by design (a newer SDK's message), not answered.
    data: dict[str, Any] = {"stream_name": "fzw", "group_id": f"g{rng.randrange(10)}",
                            "item_id": f"i{rng.randrange(10)}", "data": {"n": 1, "s": "x", "l": [1, {"k": True}]},
                            "event_type": "ev", "ops": [{"type": "set", "path": "n", "value": 2},
                                                        {"type": "increment", "path": "c", "by": 1}]}
    body = {"function_id": function_id, "data": data}
    if rng.random() < 0.6:
        rest = replace_value(rng, body, [*ALWAYS_INVALID, *maybe_invalid(HUGE)], new_keys=False)
    else:
        rest = mutate_bytes(rng, orjson.dumps(body))
    return f'{{"invocation_id":"fz-{index}","type":"invokefunction",'.encode() + rest[1:]


async def _worker_calls(ws: aiohttp.ClientWebSocketResponse, rng: Random, stats: Counter[str]) -> None:
    waiting = {f"fz-{index}" for index in range(WORKER_CALLS)}
    for index in range(WORKER_CALLS):
        await _send(ws, _call_frame(rng, index), rng)
    async with asyncio.timeout(timeout(30)):
        while waiting:
            frame = orjson.loads((await ws.receive()).data)
            assert frame["type"] == "invocationresult", frame
            waiting.discard(frame["invocation_id"])
            stats[f"worker call: {frame['error']['code'] if frame.get('error') else 'result'}"] += 1


def _worker_base(rng: Random, index: int) -> tuple[dict[str, Any], list[str]]:
    """A valid frame that gets no answer when valid, and its required string fields."""
    return rng.choice([
        ({"type": "registerfunction", "id": f"fzb.{index}", "description": "d", "metadata": {"k": [1, 2]}},
         ["type", "id"]),
        ({"type": "unregisterfunction", "id": f"fzb.{index}"}, ["type", "id"]),
        ({"type": "registertrigger", "id": f"t{index}", "trigger_type": "stream", "function_id": "fz.none",
          "config": {"stream_name": "fzb"}}, ["type", "id", "trigger_type", "function_id"]),
        ({"type": "unregistertrigger", "id": f"t{index}", "trigger_type": "stream"}, ["type", "id"]),
        ({"type": "registertriggertype", "id": f"tt{index}", "description": "d"}, ["type", "id"]),
        ({"type": "invocationresult", "invocation_id": f"fzr-{index}", "result": {"v": [1]}},
         ["type", "invocation_id"]),
        ({"type": "ping"}, ["type"]),
    ])


_NOT_STRINGS = [lambda rng: rng.choice([b"0", b"null", b"[]", b"{}", b"true", b"1180591620717411303424"])]


def _bad_frame(rng: Random, index: int) -> bytes:
    """A frame no reading of which is a usable message."""
    base, required = _worker_base(rng, index)
    roll = rng.random()
    if roll < 0.4:
        return replace_value(rng, base, ALWAYS_INVALID, new_keys=False)
    if roll < 0.6:
        field = rng.choice(required)
        return replace_value(rng, {field: base[field]}, _NOT_STRINGS, new_keys=False)[:-1] + b"," + \
            orjson.dumps({k: v for k, v in base.items() if k != field})[1:]
    if roll < 0.7:
        encoded = orjson.dumps(base)
        return encoded[:rng.randint(1, len(encoded) - 1)]
    return garbage(rng, HUGE)


async def _worker_bad_frames(ws: aiohttp.ClientWebSocketResponse, rng: Random, stats: Counter[str]) -> int:
    """Each frame must be answered before the pong that follows it; returns how many got an ``error`` frame."""
    errors = 0
    for first in range(0, WORKER_BAD, BATCH):
        indexes = range(first, min(first + BATCH, WORKER_BAD))
        for index in indexes:
            await _send(ws, _bad_frame(rng, index), rng)
            await ws.send_bytes(b'{"type":"ping"}')
        for index in indexes:
            got = await _until_pong(ws)
            assert len(got) == 1, (index, got)
            answer = got[0]
            if answer["type"] == "error":
                errors += 1
                stats[f"worker frame: error {answer['error']['code']}"] += 1
            else:
                assert answer["type"] == "invocationresult" and answer["invocation_id"] == f"fzr-{index}", answer
                stats[f"worker frame: invocationresult {answer['error']['code']}"] += 1
    return errors


async def _until_pong(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        message = await asyncio.wait_for(ws.receive(), timeout(10))
        assert message.type == aiohttp.WSMsgType.TEXT, f"worker connection ended: {message}"
        frame = orjson.loads(message.data)
        if frame == {"type": "pong"}:
            return got
        got.append(frame)


async def _worker_odd_frames(ws: aiohttp.ClientWebSocketResponse, rng: Random, stats: Counter[str]) -> None:
    """Frames that may or may not be valid (big ints, huge strings, flipped bytes): only liveness is required."""
    for index in range(WORKER_ODD):
        base, _ = _worker_base(rng, WORKER_BAD + index)
        frame = (replace_value(rng, base, maybe_invalid(HUGE)) if rng.random() < 0.5
                 else mutate_bytes(rng, orjson.dumps(base)))
        await _send(ws, frame, rng)
    await ws.send_bytes(b'{"type":"ping"}')
    for answer in await _until_pong(ws):
        assert answer["type"] in {"error", "invocationresult", "triggerregistrationresult", "pong"}, answer
        stats[f"worker odd: {answer['type']}"] += 1


# Helpers


async def _still_serving(srv: Server, helper: TestWorker) -> None:
    async with Subscriber(stream_url(srv)) as sub, TestWorker(worker_url(srv)) as worker:
        await sub.join("after", "g")
        assert (await sub.next())["event"] == {"type": "sync", "data": []}
        await worker.call("stream.set", {"stream_name": "after", "group_id": "g", "item_id": "i", "data": {"ok": 1}})
        assert (await sub.next())["event"] == {"type": "create", "data": {"ok": 1}}
        assert await worker.call("fz.echo", [1]) == {"got": "list"}
    async with aiohttp.ClientSession() as http, \
            http.post(f"http://127.0.0.1:{srv.rest_port}/fz/echo", json={"a": 1}) as response:
        assert response.status == 200 and await response.json() == {"got": "dict"}


@contextlib.asynccontextmanager
async def _watching(srv: Server, stream: str) -> AsyncIterator[Subscriber]:
    """A subscriber of every group the fuzzed calls write to; it must stay connected and see a last write."""
    async with Subscriber(stream_url(srv), max_msg_size=0) as sub, TestWorker(worker_url(srv)) as writer:
        for group in range(10):
            await sub.join(stream, f"g{group}", sub_id=f"w{group}")
        for _ in range(10):
            assert (await sub.next())["event"]["type"] == "sync"
        yield sub
        await writer.call("stream.set", {"stream_name": stream, "group_id": "g0", "item_id": "last", "data": 1})
        async with asyncio.timeout(timeout(10)):
            while (frame := await sub.frames.get()).get("id") != "last":
                assert frame["type"] == "stream", frame
        assert frame["event"]["data"] == 1 and not sub.closed.is_set()


async def _echo(data: Any) -> Any:
    return {"got": type(data).__name__}


async def _http_echo(request: Any) -> Any:
    return {"status_code": 200, "body": {"got": type(request["body"]).__name__}}


@contextlib.asynccontextmanager
async def _helper(srv: Server) -> AsyncIterator[TestWorker]:
    """A worker serving the functions and routes the fuzz frames reach."""
    async with TestWorker(worker_url(srv)) as worker:
        await worker.register("fz.echo", _echo)
        await worker.register("fz.http", _http_echo)
        await worker.trigger("http", "fz.http", {"path": "/fz/echo", "method": "POST"})
        await worker.trigger("http", "fz.http", {"path": "/fz/items/:id", "method": "GET"})
        await worker.call("stream.list_all", {})  # the registrations above are processed
        yield worker
