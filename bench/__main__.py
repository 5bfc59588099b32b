"""``python -m bench``: every scenario, streamhub and its baselines alternating, a table and a JSON file.

Servers are pinned to core 0, load generators (and this process, which drives the writers and callers) to
core 1. Every wait is bounded (``--timeout``); a system that fails a run gets an ``error`` in its row instead of
figures, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from bench import calls, connections, fanout, latency, report, servers
from bench.common import GENERATOR_CPU, ROOT

__all__ = ["main"]

SCENARIOS = ("fanout", "latency", "calls", "connections", "contention")
BASELINES = ("raw", "python-socketio", "node-socket.io")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
    p.add_argument("--adapters", default="memory,file",
                   help="streamhub stores: memory, file, redis=URL, redis-cluster=URL, or redis-cluster (a private "
                        "3-primary Redis Cluster for the run) (comma-separated)")
    p.add_argument("--baselines", default=",".join(BASELINES), help="raw, python-socketio, node-socket.io")
    p.add_argument("--rounds", type=int, default=2, help="runs of each system; the best is reported")
    p.add_argument("--subscribers", type=int, default=1000, help="fan-out and latency subscribers")
    p.add_argument("--events", type=int, default=5000, help="fan-out events, burst shape")
    p.add_argument("--trickle-events", type=int, default=1000, help="fan-out events, trickle shape")
    p.add_argument("--slow-events", type=int, default=500, help="fan-out events for the socket.io baselines")
    p.add_argument("--latency-events", type=int, default=500)
    p.add_argument("--rate", type=float, default=100.0, help="latency: events per second")
    p.add_argument("--calls", type=int, default=20000, help="stream::set calls per run")
    p.add_argument("--callers", default="1,50", help="concurrent callers for the calls scenario")
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--per-generator", type=int, default=connections.PER_GENERATOR,
                   help="connections: most connections per load-generator process (each its own source address)")
    p.add_argument("--updates", type=int, default=10000, help="increments per contention run (50 callers)")
    p.add_argument("--json", type=Path, default=ROOT / "artifacts" / "bench.json", help="where to write results")
    p.add_argument("--timeout", type=float, default=300.0, help="bound on every wait, seconds")
    args = p.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def baselines(requested: str) -> list[str]:
    """The requested baselines that can run here (Node needs ``npm ci`` in bench/node)."""
    chosen = [b for b in requested.split(",") if b]
    for name in chosen:
        if name not in BASELINES:
            raise SystemExit(f"python -m bench: unknown baseline {name!r} (expected one of {', '.join(BASELINES)})")
    if "node-socket.io" in chosen and not servers.node_available():
        print("node-socket.io skipped: run `npm ci` in bench/node first", file=sys.stderr)
        chosen.remove("node-socket.io")
    return chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    adapters = [a for a in args.adapters.split(",") if a]
    for spec in adapters:
        try:
            servers.check_spec(spec)  # reject a bad spec before anything starts
        except ValueError as exc:
            raise SystemExit(f"python -m bench: --adapters: {exc}") from None
    chosen = baselines(args.baselines)
    with servers.private_stores(adapters):  # a bare redis-cluster: one private cluster for every scenario
        return run_scenarios(args, adapters, chosen)


def run_scenarios(args: argparse.Namespace, adapters: list[str], chosen: list[str]) -> dict[str, Any]:
    raw = "raw" in chosen
    results: dict[str, Any] = {}
    for scenario in args.scenarios:
        print(f"running {scenario} ...", file=sys.stderr, flush=True)
        if scenario == "fanout":
            results[scenario] = fanout.run(args.subscribers, args.events, args.rounds, adapters, chosen,
                                           args.trickle_events, args.slow_events, args.timeout)
        elif scenario == "latency":
            results[scenario] = latency.run(args.subscribers, args.latency_events, args.rate, args.rounds, adapters,
                                            raw, args.timeout)
        elif scenario == "calls":
            callers = tuple(int(c) for c in args.callers.split(","))
            results[scenario] = calls.run_calls(args.calls, args.rounds, adapters, callers, raw)
        elif scenario == "connections":
            results[scenario] = connections.run(args.connections, args.rounds, adapters, raw, args.timeout,
                                                  args.per_generator)
        else:
            results[scenario] = calls.run_contention(args.updates, args.rounds, adapters)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if (os.cpu_count() or 1) > GENERATOR_CPU:
        os.sched_setaffinity(0, {GENERATOR_CPU})
    results = run(args)
    print(report.table(results))
    report.write_json(args.json, report.machine(), vars(args), results)
    print(f"\nresults: {args.json}")
    return 1 if _has_error(results) else 0


def _has_error(value: object) -> bool:
    if isinstance(value, dict):
        return "error" in value or any(_has_error(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_error(v) for v in value)
    return False


if __name__ == "__main__":
    sys.exit(main())
