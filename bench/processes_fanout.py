"""Fan-out across ``streamhub serve --processes 2`` on Redis, next to one process on Redis and one in memory.

The same load as ``bench.fanout`` (N subscribers on group ``bench/g``, a worker sets M items, burst and trickle),
against three systems in one run, alternating within each round:

- ``memory``: one engine, in-memory store, pinned to core 0 (the ``bench.fanout`` row);
- ``redis``: one engine on Redis, pinned to core 0;
- ``redis x2``: ``streamhub serve --processes 2`` on the same Redis, unpinned (both cores). Subscribers connect
  to the shared stream port and the kernel spreads them over both engines; the worker connects to the shared
  worker port, so it lands on one engine and the subscribers of the other get their events through Redis.

A private ``redis-server`` (no persistence, unpinned) serves both Redis systems; every engine start gets a fresh
key prefix. The load generator stays on core 1, so with two engines it shares a core with one of them (the
machine has 2 cores). Engine CPU is the sum over every engine process; Redis CPU is reported apart.

Usage: python -m bench.processes_fanout [--subscribers 1000] [--events 5000] [--trickle-events 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import servers
from bench.common import GENERATOR_CPU, ROOT, Child, cpu_seconds, free_port, machine_busy_seconds, unpin
from bench.fanout import SHAPES, write_sets
from bench.redis_fanout import redis_binary

__all__ = ["SYSTEMS", "main", "run"]

SYSTEMS = ("memory", "redis", "redis x2")


def start_redis(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    """A private ``redis-server`` on ``port`` without persistence, once it accepts connections."""
    proc = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", data_dir], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            unpin(proc.pid)  # every thread: it shares both cores with whoever needs them
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not listen on port {port} within 10 s")


def socket_count(pid: int) -> int:
    """Open sockets of process ``pid`` (its accepted connections among them)."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


def measure(server: servers.Server, redis_pid: int | None, subscribers: int, events: int, window: int,
            timeout: float) -> dict[str, Any]:
    """One run: subscribe N, write M through the worker port, wait for every delivery; figures of this run."""
    engines = [p for p in server.pids() if p != server.pid] or [server.pid]
    sockets = [socket_count(p) for p in engines]
    with Child.python("subscribers", "bench.subscribers", "streamhub", server.port, subscribers, events,
                      "--timeout", timeout, cpu=GENERATOR_CPU) as subs:
        subscribed = json.loads(subs.expect("subscribed", timeout))
        time.sleep(0.3)  # let the engines settle after the last join
        split = [socket_count(p) - before for p, before in zip(engines, sockets, strict=True)]
        parties = [server.pid, *engines, subs.pid, *([redis_pid] if redis_pid else [])]
        cpu0 = {p: cpu_seconds(p) for p in set(parties)}
        busy0, own0, start = machine_busy_seconds(), time.process_time(), time.monotonic()
        asyncio.run(write_sets(server.worker_port, events, window))
        done = json.loads(subs.expect("done", timeout + 5))
        used = {p: cpu_seconds(p) - cpu0[p] for p in cpu0}
        wall, busy, own = time.monotonic() - start, machine_busy_seconds() - busy0, time.process_time() - own0
    frames, expected = int(done["frames"]), subscribers * events
    if frames != expected:
        return {"error": f"{frames} of {expected} deliveries arrived", "subscribe_failures": subscribed["failed"]}
    elapsed = max(float(done["last"]) - start, 1e-9)
    engine_cpu = sum(used[p] for p in {server.pid, *engines})
    redis_cpu = used[redis_pid] if redis_pid else 0.0
    return {
        "deliveries": frames,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(frames / elapsed),
        "engine_cpu_s_per_million": round(engine_cpu / frames * 1e6, 3),
        "redis_cpu_s_per_million": round(redis_cpu / frames * 1e6, 3),
        "engine_cpu_util": round(engine_cpu / elapsed, 2),
        "redis_cpu_util": round(redis_cpu / elapsed, 2),
        "engine_util_each": [round(used[p] / elapsed, 2) for p in engines],
        "generator_cpu_util": round(used[subs.pid] / elapsed, 2),
        "writer_cpu_util": round(own / elapsed, 2),  # this process: the worker writing the events
        "others_cpu_util": round(max(0.0, busy - sum(used.values()) - own) / wall, 2),
        "subscribers_per_engine": split,
        "cores_per_engine": [len(os.sched_getaffinity(p)) for p in engines],
    }


def run_system(system: str, redis_url: str, redis_pid: int, shape: str, subscribers: int, events: int,
               timeout: float) -> dict[str, Any]:
    """One run of one system in one shape (a fresh server, and for Redis a fresh key prefix)."""
    window = SHAPES[shape][0]
    adapter = "memory" if system == "memory" else f"redis={redis_url}"
    processes = 2 if system == "redis x2" else 1
    try:
        with servers.streamhub(adapter, processes=processes) as server:
            return measure(server, None if system == "memory" else redis_pid, subscribers, events, window, timeout)
    except (RuntimeError, OSError) as exc:
        return {"error": str(exc)}


def run(subscribers: int, events: int, trickle_events: int, rounds: int, timeout: float) -> dict[str, Any]:
    """Every shape, every system, alternating within each round; every run and the best of each."""
    result: dict[str, Any] = {"subscribers": subscribers, "shapes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        redis = start_redis(port, tmp)
        try:
            for shape in SHAPES:
                count = events if shape == "burst" else trickle_events
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SYSTEMS}
                for _ in range(rounds):
                    for name in SYSTEMS:
                        print(f"{shape} {name} ...", file=sys.stderr, flush=True)
                        runs[name].append({"events": count, **run_system(
                            name, f"redis://127.0.0.1:{port}", redis.pid, shape, subscribers, count, timeout)})
                result["shapes"][shape] = {"runs": runs, "best": {n: _best(r) for n, r in runs.items()}}
        finally:
            redis.terminate()
            redis.wait(10)
    return result


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    return max(ok, key=lambda r: r["deliveries_per_s"]) if ok else runs[0]


def table(result: dict[str, Any]) -> str:
    """A markdown table of the best runs, with ratios to one process on Redis and to memory."""
    lines = [f"fan-out, {result['subscribers']} subscribers (best of rounds)", "",
             "| shape | system | deliveries/s | engine CPU s/M | Redis CPU s/M | engine util (each) | generator util "
             "| others | subscribers per engine | vs redis | vs memory |", "|---" * 11 + "|"]
    for shape, data in result["shapes"].items():
        best = data["best"]
        for name in SYSTEMS:
            row = best[name]
            if "error" in row:
                lines.append(f"| {shape} | {name} | error: {row['error']} | | | | | | | | |")
                continue
            ratio = {ref: (f"{row['deliveries_per_s'] / best[ref]['deliveries_per_s']:.2f}"
                           if "error" not in best[ref] else "-") for ref in ("redis", "memory")}
            lines.append(f"| {shape} | {name} | {row['deliveries_per_s']:,} | {row['engine_cpu_s_per_million']} "
                         f"| {row['redis_cpu_s_per_million']} | {'/'.join(map(str, row['engine_util_each']))} "
                         f"| {row['generator_cpu_util']} | {row['others_cpu_util']} "
                         f"| {'/'.join(map(str, row['subscribers_per_engine']))} | {ratio['redis']} "
                         f"| {ratio['memory']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.processes_fanout", description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--events", type=int, default=5000, help="events, burst shape")
    p.add_argument("--trickle-events", type=int, default=1000, help="events, trickle shape")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--json", type=Path, default=ROOT / "artifacts" / "processes_fanout.json")
    args = p.parse_args(argv)
    if (os.cpu_count() or 1) > GENERATOR_CPU:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    result = run(args.subscribers, args.events, args.trickle_events, args.rounds, args.timeout)
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()}, "results": result},
                                    indent=2))
    print(f"\nresults: {args.json}")
    failed = any("error" in r for d in result["shapes"].values() for runs in d["runs"].values() for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
