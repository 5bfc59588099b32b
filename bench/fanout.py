"""Scenario 1, fan-out: N subscribers on one group, M events; deliveries/s and server CPU per million deliveries.

Two shapes, each against the raw limit of the same shape:

- ``burst``: a worker keeps 64 ``stream::set`` calls in flight, so many events land in one loop tick; the baselines
  write 10 events per tick (raw: joined into one write per connection).
- ``trickle``: one call in flight, so one event per tick; the raw baseline writes one frame per tick (one write per
  frame per connection), socket.io emits one event per tick.

streamhub pays for everything a real deployment does (decoding the call, the store, the reply, the wrapper
encoding); the baselines write frames they encoded before the clock started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bench import servers
from bench.common import GENERATOR_CPU, Child, Usage
from bench.worker_client import connect

__all__ = ["SHAPES", "run"]

# shape -> (calls in flight for streamhub, events per tick for the baselines, raw write form)
SHAPES = {"burst": (64, 10, "coalesced"), "trickle": (1, 1, "per_frame")}
_SUBSCRIBER_KIND = {"raw": "raw", "socketio": "socketio", "streamhub": "streamhub"}


async def write_sets(worker_port: int, events: int, window: int) -> None:
    """Set ``events`` items of group ``bench/g`` with ``window`` calls in flight; every call must succeed."""
    client = await connect(worker_port)
    try:
        next_item = 0

        async def caller() -> None:
            nonlocal next_item
            while next_item < events:
                item, next_item = next_item, next_item + 1
                await client.call("stream::set", {"stream_name": "bench", "group_id": "g",
                                                  "item_id": f"{item:08d}", "data": "x" * 64})

        await asyncio.gather(*(caller() for _ in range(window)))
    finally:
        client.close()


def measure(server: servers.Server, kind: str, subscribers: int, events: int, trigger: Callable[[], None],
            timeout: float) -> dict[str, Any]:
    """Subscribe, fire ``trigger``, wait for every subscriber's last byte; figures for this one run."""
    with Child.python("subscribers", "bench.subscribers", kind, server.port, subscribers, events,
                      "--timeout", timeout, cpu=GENERATOR_CPU) as subs:
        subscribed = _json(subs.expect("subscribed", timeout))
        time.sleep(0.3)  # let the server settle after the last join
        usage, start = Usage(server.pid, subs.pid), time.monotonic()
        trigger()
        done = _json(subs.expect("done", timeout + 5))
        used = usage.stop()
    frames = int(done["frames"])
    expected = subscribers * events
    elapsed = max(float(done["last"]) - start, 1e-9)
    if frames != expected:
        return {"error": f"{frames} of {expected} deliveries arrived", "subscribe_failures": subscribed["failed"]}
    return {
        "deliveries": frames,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(frames / elapsed),
        "server_cpu_s_per_million": round(used["server"] / frames * 1e6, 3),
        "server_cpu_util": round(used["server"] / elapsed, 2),
        "generator_cpu_util": round(used["generator"] / elapsed, 2),
        "others_cpu_util": round(used["others"] / used["wall"], 2),
    }


def run_system(system: str, shape: str, subscribers: int, events: int, timeout: float) -> dict[str, Any]:
    """One run of one system in one shape."""
    window, per_tick, raw_form = SHAPES[shape]
    if system.startswith("streamhub"):
        adapter = system.partition(":")[2] or "memory"
        with servers.streamhub(adapter) as server:
            return measure(server, "streamhub", subscribers, events,
                           lambda: asyncio.run(write_sets(server.worker_port, events, window)), timeout)
    start, kind, mode = {
        "raw": (servers.raw, "raw", raw_form),
        "python-socketio": (servers.socketio_python, "socketio", ""),
        "node-socket.io": (servers.socketio_node, "socketio", ""),
    }[system]
    with start() as server:
        return measure(server, kind, subscribers, events, lambda: server.go(events, per_tick, mode), timeout)


SLOW = ("python-socketio", "node-socket.io")  # baselines that get ``slow_events`` events (same N, same payload)


def run(subscribers: int, events: int, rounds: int, adapters: list[str], baselines: list[str],
        trickle_events: int, slow_events: int, timeout: float = 300.0) -> dict[str, Any]:
    """Every shape, every system, alternating within each round; keeps every run and the best of each.

    Rates are per delivery, so the slow baselines run fewer events (``slow_events``) to keep a run short; the
    trickle shape runs ``trickle_events`` (one event per tick takes a while at 1,000 subscribers).
    """
    systems = [f"streamhub:{a}" for a in adapters] + baselines
    result: dict[str, Any] = {"subscribers": subscribers, "shapes": {}}
    for shape in SHAPES:
        shape_events = events if shape == "burst" else trickle_events
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
        for _ in range(rounds):
            for name in systems:
                count = min(shape_events, slow_events) if name in SLOW else shape_events
                runs[name].append({"events": count, **run_system(name, shape, subscribers, count, timeout)})
        result["shapes"][shape] = {"runs": runs, "best": {n: _best(r) for n, r in runs.items()}}
    return result


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    return max(ok, key=lambda r: r["deliveries_per_s"]) if ok else runs[0]


def _json(text: str) -> dict[str, Any]:
    import json

    value: dict[str, Any] = json.loads(text)
    return value
