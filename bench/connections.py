"""Scenario 4, connections: N idle subscribed connections on one server; memory each, accept time, one fan-out.

Generator processes (``bench.subscribers``) open N connections together, 100 handshakes in flight in all, and
subscribe each: to streamhub with a ``join`` answered by ``sync``; to the raw picows server the upgrade is the
subscription. A generator holds at most ``PER_GENERATOR`` connections and connects from its own loopback source
address (127.0.0.2, 127.0.0.3, ...): one address has only ~28,000 ephemeral ports toward one server port, and one
process only as many descriptors as its open-files limit, so 100,000 connections need several of both.

Figures:

- memory per connection: the server's resident-set growth from before the first connection to after the last,
  divided by N, read once the server has been idle for a second (less for small N);
- accept time: from the first generator's first connect to the last generator's last subscription;
- fan-out of ONE event to all N: the writer notes the wall clock, then sends it (streamhub: a ``stream::set``
  over the worker port; raw: a frame on its ``/pub`` connection, broadcast in one loop tick); every subscriber
  socket records the kernel's receive time of the event (``SO_TIMESTAMPNS``), so first and last delivery are the
  server's times, not the generators'.

The server needs N descriptors and more: the run stops at once, with the figure, when the hard open-files limit
is lower (only a process with ``CAP_SYS_RESOURCE`` may raise it; ``ulimit -Hn`` before starting the bench).
"""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from bench import gc_probe, servers
from bench.common import GENERATOR_CPU, Child, cpu_seconds, event_json, rss_bytes
from bench.worker_client import connect

__all__ = ["PER_GENERATOR", "fd_shortfall", "plan", "run"]

PER_GENERATOR = 10_000  # per generator process: well under 20,000 descriptors, and ~1/3 of one address's ports
CONCURRENCY = 100  # handshakes in flight, shared by every generator
_SERVER_FDS = 200  # descriptors a server needs beside its connections (listeners, epoll, pipes, files)
_STREAM_CAP = 100_000  # the stream port's default max_connections


def fd_shortfall(count: int) -> str | None:
    """Why ``count`` connections cannot be held here (the open-files hard limit), or None.

    Tries to raise this process's hard limit first (servers and generators inherit it); that needs root with
    ``CAP_SYS_RESOURCE``.
    """
    need = count + _SERVER_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= need:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, need))
    except (ValueError, OSError) as exc:
        return (f"{count} connections need {need} open files in the server, above the hard limit {hard}, which "
                f"this process cannot raise ({exc}); raise it first (`ulimit -Hn {need}` as root, or LimitNOFILE "
                f"in a systemd unit), fs.nr_open permitting")
    return None


def plan(count: int, per_generator: int = PER_GENERATOR) -> list[tuple[str, int, int]]:
    """(source address, first index, connections) per generator process."""
    if count > per_generator * 250:
        raise ValueError(f"{count} connections at {per_generator} per generator need more than 127.0.0.2-251")
    return [(f"127.0.0.{2 + k}", first, min(per_generator, count - first))
            for k, first in enumerate(range(0, count, per_generator))]


def _start_generators(kind: str, port: int, count: int, per_generator: int, folder: Path, timeout: float
                      ) -> list[tuple[Child, Path]]:
    chunks = plan(count, per_generator)
    concurrency = max(1, CONCURRENCY // len(chunks))
    started = []
    try:
        for source, first, n in chunks:
            times = folder / f"times-{first}.f64"
            child = Child.python(f"subscribers {source}", "bench.subscribers", kind, port, n, 1, "--latency", times,
                                 "--source", source, "--first", first, "--concurrency", concurrency, "--hold",
                                 "--timeout", timeout, cpu=GENERATOR_CPU)
            started.append((child, times))
    except BaseException:
        for child, _ in started:
            child.stop()
        raise
    return started


async def _streamhub_write(worker_port: int) -> float:
    client = await connect(worker_port)
    try:
        sent = time.time()
        await client.call("stream::set", {"stream_name": "bench", "group_id": "g", "item_id": "00000000",
                                          "data": "x" * 64})
        return sent
    finally:
        client.close()


async def _raw_write(port: int) -> float:
    from picows import WSMsgType

    client = await connect(port, "/pub", registered=False)
    try:
        assert client.transport is not None
        sent = time.time()
        client.transport.send(WSMsgType.TEXT, event_json(0))
        await asyncio.sleep(0.2)
        return sent
    finally:
        client.close()


def _fan_out(server: servers.Server, kind: str, generators: list[tuple[Child, Path]], timeout: float
             ) -> dict[str, Any]:
    """Write one event; first and last delivery (kernel receive time) after the write, server CPU it took."""
    cpu = cpu_seconds(server.pid)
    sent = asyncio.run(_raw_write(server.port) if kind == "raw" else _streamhub_write(server.worker_port))
    for child, _ in generators:
        child.expect("done", timeout + 5)
    used = cpu_seconds(server.pid) - cpu  # before any generator lets its connections go
    received = array("d")
    for child, times in generators:
        child.expect("saved", timeout)
        received.frombytes(times.read_bytes())
    for child, _ in generators:
        child.send("close")
    stamps = [t for t in received if t > 0]
    if not stamps:
        return {"fanout_delivered": 0}
    return {"fanout_delivered": len(stamps), "fanout_first_ms": round((min(stamps) - sent) * 1000, 1),
            "fanout_last_ms": round((max(stamps) - sent) * 1000, 1), "fanout_server_cpu_ms": round(used * 1000, 1)}


def _server(system: str, count: int, gc_log: Path) -> tuple[servers.Server, str]:
    if system == "raw":
        return servers.raw(), "raw"
    cap = count + 1000 if count + 1000 > _STREAM_CAP else None  # the default cap is exactly 100,000
    return servers.streamhub(system.partition(":")[2] or "memory", cap, gc_log=gc_log), "streamhub"


def _collections(gc_log: Path, accept: tuple[float, float], fan_out: tuple[float, float]) -> dict[str, Any]:
    """The server's full garbage collections while accepting and during the fan-out (streamhub only)."""
    if not gc_log.exists():
        return {}
    during_accept = gc_probe.read(str(gc_log), *accept)
    during_fan_out = gc_probe.read(str(gc_log), *fan_out)
    return {"gc_full_accept": during_accept["count"], "gc_pause_accept_ms": during_accept["total_ms"],
            "gc_max_pause_accept_ms": during_accept["max_ms"], "gc_full_fanout": during_fan_out["count"],
            "gc_pause_fanout_ms": during_fan_out["total_ms"]}


def run_system(system: str, count: int, timeout: float, per_generator: int = PER_GENERATOR) -> dict[str, Any]:
    """Hold ``count`` subscribed connections on one server; memory, accept time, one event's fan-out."""
    settle = min(1.0, 0.2 + count / 10_000)  # long enough for 10,000 handshakes' garbage to be freed
    with tempfile.TemporaryDirectory() as tmp:
        gc_log = Path(tmp) / "gc.log"
        server, kind = _server(system, count, gc_log)
        figures = _hold(server, kind, count, timeout, per_generator, settle, Path(tmp), gc_log)
    return figures


def _hold(server: servers.Server, kind: str, count: int, timeout: float, per_generator: int, settle: float,
          tmp: Path, gc_log: Path) -> dict[str, Any]:
    with server:
        time.sleep(settle)
        before = rss_bytes(server.pid)
        generators = _start_generators(kind, server.port, count, per_generator, tmp, timeout)
        try:
            subscribed = [json.loads(child.expect("subscribed", timeout + 5)) for child, _ in generators]
            time.sleep(settle)
            after = rss_bytes(server.pid)
            writing = time.monotonic()
            fan = _fan_out(server, kind, generators, timeout)
            written = time.monotonic()
            alive = server.child.proc.poll() is None
        finally:
            for child, _ in generators:
                child.stop()
    held = count - sum(int(s["failed"]) for s in subscribed)
    seconds = max(s["finished"] for s in subscribed) - min(s["started"] for s in subscribed)
    figures: dict[str, Any] = {
        "connections": held,
        "generators": len(generators),
        "accept_seconds": round(seconds, 2),
        "accepts_per_s": round(held / max(seconds, 1e-9)),
        "rss_mib": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / max(held, 1) / 1024, 1),
        **fan,
        **_collections(gc_log, (min(s["started"] for s in subscribed), max(s["finished"] for s in subscribed)),
                       (writing, written)),
    }
    if held != count or fan["fanout_delivered"] != held or not alive:
        figures["error"] = (f"{held} of {count} connections subscribed, {fan['fanout_delivered']} got the event; "
                            f"server alive: {alive}")
    return figures


def run(count: int, rounds: int, adapters: list[str], baselines: bool = True, timeout: float = 300.0,
        per_generator: int = PER_GENERATOR) -> dict[str, Any]:
    """Each system per round, alternating; ``best`` keeps the run with the least memory per connection."""
    shortfall = fd_shortfall(count)
    if shortfall is not None:
        return {"connections": count, "error": shortfall, "runs": {}, "best": {}}
    systems = [f"streamhub:{a}" for a in adapters] + (["raw"] if baselines else [])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name in systems:
            runs[name].append(run_system(name, count, timeout, per_generator))
    best = {n: min(r, key=lambda x: x.get("kib_per_connection", float("inf"))) for n, r in runs.items()}
    return {"connections": count, "runs": runs, "best": best}
