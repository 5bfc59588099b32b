"""Scenario 4, connections: memory per idle subscribed connection, and the time to accept them all.

One process opens N connections (100 handshakes in flight) and subscribes each: to streamhub with a ``join``
answered by ``sync``; to the raw picows server the upgrade is the subscription. Memory per connection is the
server's resident-set growth from before the first connection to after the last, divided by N, read once the
server has been idle for a second (less for small N).
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench import servers
from bench.common import GENERATOR_CPU, Child, rss_bytes

__all__ = ["run"]


def run_system(system: str, count: int, timeout: float) -> dict[str, Any]:
    """Hold ``count`` subscribed connections on one server; memory and accept time."""
    if system == "raw":
        server, kind = servers.raw(), "raw"
    else:
        server, kind = servers.streamhub(system.partition(":")[2] or "memory"), "streamhub"
    settle = min(1.0, 0.2 + count / 10_000)  # long enough for 10,000 handshakes' garbage to be freed
    with server:
        time.sleep(settle)
        before = rss_bytes(server.pid)
        with Child.python("subscribers", "bench.subscribers", kind, server.port, count, 0, "--timeout", timeout,
                          cpu=GENERATOR_CPU) as subs:
            subscribed = json.loads(subs.expect("subscribed", timeout + 5))
            time.sleep(settle)
            after = rss_bytes(server.pid)
            alive = server.child.proc.poll() is None
            subs.send("close")
    held = count - int(subscribed["failed"])
    figures: dict[str, Any] = {
        "connections": held,
        "accept_seconds": subscribed["seconds"],
        "accepts_per_s": round(held / max(subscribed["seconds"], 1e-9)),
        "rss_mib": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / max(held, 1) / 1024, 1),
    }
    if held != count or not alive:
        figures["error"] = f"{held} of {count} connections subscribed; server alive: {alive}"
    return figures


def run(count: int, rounds: int, adapters: list[str], baselines: bool = True, timeout: float = 300.0) -> dict[str, Any]:
    """Each system per round, alternating; ``best`` keeps the run with the least memory per connection."""
    systems = [f"streamhub:{a}" for a in adapters] + (["raw"] if baselines else [])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name in systems:
            runs[name].append(run_system(name, count, timeout))
    best = {n: min(r, key=lambda x: x.get("kib_per_connection", float("inf"))) for n, r in runs.items()}
    return {"connections": count, "runs": runs, "best": best}
