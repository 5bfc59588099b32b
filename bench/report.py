"""Turning scenario results into the printed table, the ratios against the baselines, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["machine", "ratios", "table", "write_json"]

_PACKAGES = ("streamhub", "aiohttp", "uvloop", "orjson", "msgspec", "picows", "python-socketio", "python-engineio")


def machine() -> dict[str, Any]:
    """Date, CPU, kernel and the versions that shape the figures."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    versions["node"] = _node_version()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "versions": versions,
    }


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """streamhub (first adapter) divided by each baseline, per scenario, from the ``best`` runs."""
    out: dict[str, float] = {}
    for shape, data in results.get("fanout", {}).get("shapes", {}).items():
        best = data["best"]
        ours = _first(best, "streamhub", "deliveries_per_s")
        for name in ("raw", "python-socketio", "node-socket.io"):
            theirs = best.get(name, {}).get("deliveries_per_s")
            if ours and theirs:
                out[f"fanout.{shape}.streamhub/{name}"] = round(ours / theirs, 2)
    conns = results.get("connections", {}).get("best", {})
    for key, name in (("kib_per_connection", "memory"), ("accept_seconds", "accept_time"),
                      ("fanout_last_ms", "fanout_last")):
        ours, theirs = _first(conns, "streamhub", key), conns.get("raw", {}).get(key)
        if ours and theirs:
            out[f"connections.{name}.streamhub/raw"] = round(ours / theirs, 2)
    latency = results.get("latency", {}).get("best", {})
    ours, theirs = _first(latency, "streamhub", "p99_ms"), latency.get("raw", {}).get("p99_ms")
    if ours and theirs:
        out["latency.p99.streamhub/raw"] = round(ours / theirs, 2)
    return out


def table(results: dict[str, Any]) -> str:
    """Plain-text tables, one per scenario that ran."""
    parts = []
    if "fanout" in results:
        fan = results["fanout"]
        rows = [[shape, name, r.get("events"), r.get("deliveries_per_s"), r.get("server_cpu_s_per_million"),
                 r.get("server_cpu_util"), r.get("generator_cpu_util"), r.get("others_cpu_util"), r.get("error", "")]
                for shape, data in fan["shapes"].items() for name, r in data["best"].items()]
        parts.append(_grid(f"fan-out, {fan['subscribers']} subscribers",
                           ["shape", "system", "events", "deliveries/s", "CPU s/M", "srv util", "gen util",
                            "others", ""], rows))
    if "latency" in results:
        lat = results["latency"]
        rows = [[n, r.get("deliveries"), r.get("p50_ms"), r.get("p99_ms"), r.get("max_ms"), r.get("others_cpu_util"),
                 r.get("error", "")] for n, r in lat["best"].items()]
        parts.append(_grid(f"latency, {lat['subscribers']} subscribers, {lat['rate_per_s']} events/s",
                           ["system", "deliveries", "p50 ms", "p99 ms", "max ms", "others", ""], rows))
    for key, title, metric in (("calls", "calls (stream::set)", "calls_per_s"),
                               ("contention", "update contention (increment, one item)", "calls_per_s")):
        if key in results:
            rows = [[n, r.get(metric), r.get("server_cpu_us_per_call"), r.get("final_count", ""), r.get("error", "")]
                    for n, r in results[key]["best"].items()]
            parts.append(_grid(title, ["system/callers", "ops/s", "CPU µs/op", "final", ""], rows))
    if "connections" in results:
        conns = results["connections"]
        rows = [[n, r.get("connections"), r.get("accept_seconds"), r.get("kib_per_connection"), r.get("rss_mib"),
                 r.get("fanout_first_ms"), r.get("fanout_last_ms"), r.get("fanout_server_cpu_ms"), r.get("error", "")]
                for n, r in conns["best"].items()]
        if "error" in conns:
            rows.append(["(none ran)", conns["connections"], "", "", "", "", "", "", conns["error"]])
        parts.append(_grid(f"idle subscribed connections, {conns['connections']}, then one event to all",
                           ["system", "held", "accept s", "KiB/conn", "RSS MiB", "first ms", "last ms", "CPU ms", ""],
                           rows))
    summary = ratios(results)
    if summary:
        parts.append(_grid("ratios (streamhub / baseline)", ["what", "ratio"], [[k, v] for k, v in summary.items()]))
    return "\n\n".join(parts)


def write_json(path: Path, meta: dict[str, Any], args: dict[str, Any], results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": meta, "arguments": args, "ratios": ratios(results), "results": results}
    path.write_text(json.dumps(document, indent=2, default=str))


def _first(best: dict[str, Any], prefix: str, key: str) -> Any:
    for name, run in best.items():
        if name.startswith(prefix) and key in run:
            return run[key]
    return None


def _grid(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells[1:]]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _node_version() -> str | None:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())["results"]))
