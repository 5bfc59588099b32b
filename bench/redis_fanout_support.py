"""Helpers of ``bench.redis_fanout`` (two engines on one Redis): a byte-counting subscriber process, a pipelined
``stream::set`` writer, and a one-engine in-memory run for comparison. The main suite (``python -m bench``) has its
own, richer versions; these stay small because the two-engine run only needs throughput and CPU.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.common import DATA_BYTES, ROOT, cpu_seconds, free_port

__all__ = ["cpu_seconds", "expected_bytes", "free_port", "run_streamhub", "run_subscribers", "streamhub_writer"]


# Subscribers (run in their own process: python -m bench.redis_fanout_support --subscribe ...)


async def _subscriber(port: int, path: str, join: bytes | None, expected: int, done: asyncio.Queue[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    if join is not None:
        mask = b"\0\0\0\0"
        size = len(join)
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big") if size >= 126 else bytes((0x81, 0x80 | size))
        writer.write(header + mask + join)
    received = 0
    while received < expected:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    await done.put(time.perf_counter())
    writer.close()


async def run_subscribers(port: int, count: int, expected_bytes: int, with_join: bool) -> None:
    done: asyncio.Queue[float] = asyncio.Queue()
    tasks = []
    for i in range(count):
        join = (
            orjson.dumps({"type": "join", "data": {"subscriptionId": f"s{i}", "streamName": "bench", "groupId": "g"}})
            if with_join
            else None
        )
        tasks.append(asyncio.create_task(_subscriber(port, "/", join, expected_bytes, done)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)
    print("subscribed", flush=True)
    finished = [await done.get() for _ in range(count)]
    print(json.dumps({"last": max(finished)}), flush=True)
    await asyncio.gather(*tasks)


# Writers


async def streamhub_writer(worker_port: int, events: int, window: int = 64) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{worker_port}/") as ws:
        await ws.receive()  # workerregistered
        pending: set[str] = set()
        sent = 0
        while sent < events or pending:
            while sent < events and len(pending) < window:
                invocation_id = str(uuid.uuid4())
                pending.add(invocation_id)
                await ws.send_bytes(
                    orjson.dumps(
                        {
                            "type": "invokefunction",
                            "invocation_id": invocation_id,
                            "function_id": "stream::set",
                            "data": {
                                "stream_name": "bench",
                                "group_id": "g",
                                "item_id": f"{sent:08d}",
                                "data": "x" * DATA_BYTES,
                            },
                        }
                    )
                )
                sent += 1
            reply = orjson.loads((await ws.receive()).data)
            pending.discard(reply.get("invocation_id"))


def event_frame_size(offset: int) -> int:
    """Bytes of the event frame of change number ``offset`` (events carry their offset, so sizes vary)."""
    wrapper = {
        "type": "stream",
        "timestamp": 1_764_370_000_123,
        "streamName": "bench",
        "groupId": "g",
        "id": "00000000",
        "event": {"type": "create", "data": "x" * DATA_BYTES},
        "offset": offset,
    }
    payload = len(orjson.dumps(wrapper))
    return payload + (2 if payload < 126 else 4)


def sync_frame_size(subscription_id: str) -> int:
    """Bytes of the ``sync`` of an empty group (position with a 16-character epoch, offset 0)."""
    wrapper = {
        "type": "stream",
        "timestamp": 1_764_370_000_123,
        "streamName": "bench",
        "groupId": "g",
        "id": None,
        "event": {"type": "sync", "data": []},
        "subscriptionId": subscription_id,
        "position": {"epoch": "0" * 16, "offset": 0},
        "recovered": False,
    }
    payload = len(orjson.dumps(wrapper))
    return payload + (2 if payload < 126 else 4)


def expected_bytes(events: int) -> int:
    """Bytes one subscriber receives: its sync, then ``events`` creates numbered 1..events."""
    return sync_frame_size("s0") + sum(event_frame_size(offset) for offset in range(1, events + 1))


# Runs


def _spawn_subscribers(port: int, count: int, expected: int, with_join: bool) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.redis_fanout_support",
            "--subscribe",
            str(port),
            str(count),
            str(expected),
            "1" if with_join else "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "subscribed"
    return proc


def run_streamhub(subscribers: int, events: int) -> dict[str, Any]:
    worker_port, stream_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"port: {worker_port}\nmodules:\n  - class: modules::stream::StreamModule\n"
            f"    config:\n      port: {stream_port}\n      max_pending_bytes: 67108864\n"
            "      adapter: {class: modules::stream::adapters::KvStore, config: {store_method: in_memory}}\n"
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "streamhub", "serve", "-c", str(config), "--log-level", "WARNING"],
            cwd=tmp,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().startswith("streamhub ready")
            expected = expected_bytes(events)
            subs = _spawn_subscribers(stream_port, subscribers, expected, True)
            time.sleep(0.5)
            cpu0, start = cpu_seconds(server.pid), time.perf_counter()
            asyncio.run(streamhub_writer(worker_port, events))
            return _finish(subs, server.pid, cpu0, start, subscribers * events)
        finally:
            server.terminate()
            server.wait()


def _finish(subs: subprocess.Popen[str], pid: int, cpu0: float, start: float, deliveries: int) -> dict[str, Any]:
    assert subs.stdout is not None
    last = json.loads(subs.stdout.readline())["last"]
    cpu = cpu_seconds(pid) - cpu0
    subs.wait()
    elapsed = last - start
    return {
        "deliveries": deliveries,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(deliveries / elapsed),
        "server_cpu_s_per_million": round(cpu / deliveries * 1e6, 2),
    }


if __name__ == "__main__":
    port, count, expected, join = (int(v) for v in sys.argv[2:6])
    asyncio.run(run_subscribers(port, count, expected, bool(join)))
