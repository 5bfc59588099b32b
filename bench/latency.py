"""Scenario 2, latency: set -> event received, p50/p99/max over every delivery, N subscribers, a fixed rate.

The writer sends one event every ``1/rate`` seconds and notes the wall-clock time it sent it; each subscriber
socket reports the kernel's receive time of the bytes that completed that event (``SO_TIMESTAMPNS``), so the
figure is the server's delay plus loopback, not the load generator's. streamhub gets ``stream::set`` calls over
the worker port; the raw baseline (picows, frames of one tick joined into one write) gets the same event JSON
from a publisher connection and broadcasts it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from bench import servers
from bench.common import GENERATOR_CPU, Child, Usage, event_json
from bench.worker_client import WorkerClient, connect, paced

__all__ = ["percentiles", "run"]


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``samples`` (seconds), in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 3)}


async def _streamhub_writer(port: int, events: int, rate: float) -> list[float]:
    client = await connect(port)
    calls: list[asyncio.Future[Any]] = []

    def send(k: int) -> None:
        calls.append(client.invoke("stream::set", {"stream_name": "bench", "group_id": "g",
                                                   "item_id": f"{k:08d}", "data": "x" * 64}))

    try:
        sent = await paced(events, rate, send)
        replies = await asyncio.wait_for(asyncio.gather(*calls), 30)
        errors = [r["error"] for r in replies if r.get("error") is not None]
        if errors:
            raise RuntimeError(f"stream::set failed during the latency run: {errors[0]}")
        return sent
    finally:
        client.close()


async def _raw_writer(port: int, events: int, rate: float) -> list[float]:
    from picows import WSMsgType

    client: WorkerClient = await connect(port, "/pub", registered=False)
    frames = [event_json(k) for k in range(events)]
    try:
        assert client.transport is not None
        transport = client.transport
        return await paced(events, rate, lambda k: transport.send(WSMsgType.TEXT, frames[k]))
    finally:
        await asyncio.sleep(0.2)
        client.close()


def run_system(system: str, subscribers: int, events: int, rate: float, timeout: float) -> dict[str, Any]:
    """One latency run of ``streamhub:<adapter>`` or ``raw``."""
    with tempfile.TemporaryDirectory() as tmp:
        times_file = Path(tmp) / "times.f64"
        if system == "raw":
            with servers.raw() as server:
                return _measure(server, "raw", subscribers, events, times_file, timeout,
                                lambda: asyncio.run(_raw_writer(server.port, events, rate)))
        with servers.streamhub(system.partition(":")[2] or "memory") as server:
            return _measure(server, "streamhub", subscribers, events, times_file, timeout,
                            lambda: asyncio.run(_streamhub_writer(server.worker_port, events, rate)))


def _measure(server: servers.Server, kind: str, subscribers: int, events: int, times_file: Path, timeout: float,
             write: Any) -> dict[str, Any]:
    with Child.python("subscribers", "bench.subscribers", kind, server.port, subscribers, events,
                      "--latency", times_file, "--timeout", timeout, cpu=GENERATOR_CPU) as subs:
        subs.expect("subscribed", timeout)
        time.sleep(0.3)
        usage = Usage(server.pid, subs.pid)
        sent: list[float] = write()
        subs.expect("done", timeout)
        used = usage.stop()
        subs.proc.wait(timeout)
    received = array("d")
    with times_file.open("rb") as source:
        received.fromfile(source, subscribers * events)
    latencies = [received[i] - sent[i % events] for i in range(len(received)) if received[i] > 0]
    missing = subscribers * events - len(latencies)
    figures: dict[str, Any] = {"deliveries": len(latencies), **percentiles(latencies),
                               "server_cpu_util": round(used["server"] / used["wall"], 2),
                               "others_cpu_util": round(used["others"] / used["wall"], 2)}
    if missing:
        figures["error"] = f"{missing} deliveries never arrived"
    return figures


def run(subscribers: int, events: int, rate: float, rounds: int, adapters: list[str], baselines: bool = True,
        timeout: float = 120.0) -> dict[str, Any]:
    """Each system per round, alternating; keeps every run and the one with the lowest p99."""
    systems = [f"streamhub:{a}" for a in adapters] + (["raw"] if baselines else [])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name in systems:
            runs[name].append(run_system(name, subscribers, events, rate, timeout))
    best = {name: min(r, key=lambda x: x.get("p99_ms", float("inf"))) for name, r in runs.items()}
    return {"subscribers": subscribers, "events": events, "rate_per_s": rate, "runs": runs, "best": best}
