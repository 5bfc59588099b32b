"""Scenarios 3 and 5: request/response over the worker protocol.

- ``calls``: ``stream::set`` round trips/s with 1 and 50 concurrent callers (one connection each, one call in
  flight per caller, each on its own item), against the raw picows RPC limit (decode the call, encode a reply of
  the same shape, no store).
- ``contention``: 50 callers ``stream::update`` the same item with ``increment``; ops/s per adapter, and the final
  value must equal the number of increments (nothing acknowledged may be lost).

Callers run in this process (a separate process from the server, pinned to the other core).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import servers
from bench.common import cpu_seconds
from bench.worker_client import WorkerClient, connect

__all__ = ["run_calls", "run_contention"]


async def _drive(port: int, path: str, callers: int, total: int, request: Any) -> tuple[float, int]:
    """``callers`` connections, each sending its share of ``total`` calls one after another."""
    clients = [await connect(port, path, registered=path == "/") for _ in range(callers)]
    errors = 0

    async def caller(index: int, client: WorkerClient) -> None:
        nonlocal errors
        function_id, data = request(index)
        for _ in range(total // callers):
            reply = await asyncio.wait_for(client.invoke(function_id, data), 30)
            errors += reply.get("error") is not None

    start = time.monotonic()
    try:
        await asyncio.gather(*(caller(i, c) for i, c in enumerate(clients)))
        return time.monotonic() - start, errors
    finally:
        for client in clients:
            client.close()


def _set_call(index: int) -> tuple[str, dict[str, Any]]:
    return "stream::set", {"stream_name": "calls", "group_id": "g", "item_id": f"c{index}", "data": "x" * 64}


def _increment(index: int) -> tuple[str, dict[str, Any]]:
    return "stream::update", {"stream_name": "counter", "group_id": "g", "item_id": "n",
                              "ops": [{"type": "increment", "path": "n", "by": 1}]}


def _measure(server: servers.Server, port: int, path: str, callers: int, total: int, request: Any) -> dict[str, Any]:
    cpu0 = cpu_seconds(server.pid)
    seconds, errors = asyncio.run(_drive(port, path, callers, total, request))
    cpu = cpu_seconds(server.pid) - cpu0
    calls = total // callers * callers
    figures: dict[str, Any] = {"calls": calls, "seconds": round(seconds, 3), "calls_per_s": round(calls / seconds),
                               "server_cpu_us_per_call": round(cpu / calls * 1e6, 1)}
    if errors:
        figures["error"] = f"{errors} calls failed"
    return figures


def run_calls(total: int, rounds: int, adapters: list[str], callers: tuple[int, ...] = (1, 50),
              baselines: bool = True) -> dict[str, Any]:
    """Every system at every concurrency, alternating per round; the best run of each is kept as ``best``."""
    systems = [f"streamhub:{a}" for a in adapters] + (["raw"] if baselines else [])
    runs: dict[str, list[dict[str, Any]]] = {f"{s}/{c}": [] for s in systems for c in callers}
    for _ in range(rounds):
        for system in systems:
            for count in callers:
                runs[f"{system}/{count}"].append(_calls_once(system, count, total))
    return {"calls": total, "runs": runs, "best": {k: _best(v, "calls_per_s") for k, v in runs.items()}}


def _calls_once(system: str, callers: int, total: int) -> dict[str, Any]:
    if system == "raw":
        with servers.raw() as server:
            return _measure(server, server.port, "/rpc", callers, total, _set_call)
    with servers.streamhub(system.partition(":")[2]) as server:
        return _measure(server, server.worker_port, "/", callers, total, _set_call)


def run_contention(total: int, rounds: int, adapters: list[str], callers: int = 50) -> dict[str, Any]:
    """``callers`` concurrent increments of one item on each adapter; checks the final count."""
    runs: dict[str, list[dict[str, Any]]] = {f"streamhub:{a}": [] for a in adapters}
    for _ in range(rounds):
        for adapter in adapters:
            runs[f"streamhub:{adapter}"].append(_contention_once(adapter, callers, total))
    return {"callers": callers, "updates": total, "runs": runs,
            "best": {k: _best(v, "calls_per_s") for k, v in runs.items()}}


def _contention_once(adapter: str, callers: int, total: int) -> dict[str, Any]:
    with servers.streamhub(adapter) as server:
        asyncio.run(_call_once(server.worker_port, "stream::set",
                               {"stream_name": "counter", "group_id": "g", "item_id": "n", "data": {"n": 0}}))
        figures = _measure(server, server.worker_port, "/", callers, total, _increment)
        final = asyncio.run(_call_once(server.worker_port, "stream::get",
                                       {"stream_name": "counter", "group_id": "g", "item_id": "n"}))
    count = final.get("n") if isinstance(final, dict) else None
    figures["final_count"] = count
    if count != figures["calls"]:
        figures["error"] = f"counter is {count} after {figures['calls']} acknowledged increments"
    return figures


async def _call_once(port: int, function_id: str, data: Any) -> Any:
    client = await connect(port)
    try:
        return await client.call(function_id, data)
    finally:
        client.close()


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    return max(ok, key=lambda r: r[key]) if ok else runs[0]
