"""Smoke run of ``python -m bench`` at tiny sizes: every scenario produces figures for streamhub and the raw limit.

No timing is asserted (the machine is shared); what is asserted is that each scenario ran to the end over real
sockets and real processes, delivered everything it should, and wrote numbers to the table and the JSON file.
Node and socket.io are left out: the suite does not install them.
"""

from __future__ import annotations

import json
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
