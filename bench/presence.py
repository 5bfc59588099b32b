"""Presence: join/leave rate with presence on and off, and what a presence storm does to stream events, in one run.

One engine process (``--adapter memory`` or ``redis``: a private ``redis-server``). Three measurements, alternated
round by round:

* **churn**: C client connections each join and leave one group as fast as the engine answers (join, wait for the
  ``sync``, leave) for ``--seconds``; join+leave cycles/s. ``off``: nobody watches presence; ``on``: W subscriptions
  with ``"presence": true`` on the group get every join and leave.
* **events**: S subscribers of a group; a worker sets an item every ``1/--rate`` s carrying its send time; event
  delay (send -> received by the subscriber) p50/p99/max and delivered events/s, measured in a child process
  ``quiet``, during the same churn without presence watchers (``churn_off``: the cost of joins themselves), and
  during a presence **storm** (the churn with the W presence watchers, on the same group).

The churners and watchers run in this process: with many watchers, parsing their frames (aiohttp) bounds the churn
rate as much as the engine does, so compare ``off``/``on`` at the same watcher count.

Usage: python -m bench.presence [--adapter memory|redis] [--churners 20] [--watchers 50] [--subscribers 50]
       [--rate 200] [--seconds 3] [--rounds 1] [--storm-rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.redis_fanout import redis_binary
from bench.redis_fanout_support import free_port


def start_engine(tmp: Path, adapter: str) -> tuple[list[subprocess.Popen[Any]], int, int]:
    procs: list[subprocess.Popen[Any]] = []
    block = ""
    if adapter == "redis":
        redis_port = free_port()
        procs.append(subprocess.Popen([redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--save",
                                       "", "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL))
        time.sleep(0.3)
        block = ("      adapter:\n        class: modules::stream::adapters::RedisAdapter\n"
                 f"        config:\n          redis_url: redis://127.0.0.1:{redis_port}\n")
    worker_port, stream_port = free_port(), free_port()
    config = tmp / "engine.yaml"
    config.write_text(f"port: {worker_port}\nmodules:\n  - class: modules::stream::StreamModule\n"
                      f"    config:\n      port: {stream_port}\n      max_pending_bytes: 67108864\n{block}")
    engine = subprocess.Popen([sys.executable, "-m", "streamhub", "serve", "-c", str(config), "--log-level",
                               "WARNING"], cwd=tmp, stdout=subprocess.PIPE, text=True)
    assert engine.stdout is not None and engine.stdout.readline().startswith("streamhub ready")
    return [*procs, engine], worker_port, stream_port


def join(group: str, sub_id: str, presence: bool = False) -> str:
    data: dict[str, Any] = {"subscriptionId": sub_id, "streamName": "bench", "groupId": group}
    if presence:
        data["presence"] = True
    return orjson.dumps({"type": "join", "data": data}).decode()


async def churn(url: str, churners: int, watchers: int, seconds: float, rate: float = 0.0) -> dict[str, Any]:
    """C connections joining and leaving (as fast as answered, or ``rate`` cycles/s in all), W presence watchers
    counting what they get."""
    async with aiohttp.ClientSession() as session:
        watching = [await session.ws_connect(url) for _ in range(watchers)]
        for n, ws in enumerate(watching):
            await ws.send_str(join("g", f"w{n}", presence=True))
        got = [0]

        async def watch(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                got[0] += message.data.count('"type":"presence"')

        readers = [asyncio.create_task(watch(ws)) for ws in watching]
        await asyncio.sleep(0.3)
        got[0] = 0
        deadline = time.perf_counter() + seconds
        cycles = [0]

        async def one() -> None:
            async with session.ws_connect(url) as ws:
                n = 0
                began = time.perf_counter()
                while time.perf_counter() < deadline:
                    if rate:
                        n += 1
                        await asyncio.sleep(max(0.0, began + n * churners / rate - time.perf_counter()))
                    sub_id = uuid.uuid4().hex
                    await ws.send_str(join("g", sub_id))
                    await ws.receive()  # the sync
                    await ws.send_str(orjson.dumps({"type": "leave", "data": {
                        "subscriptionId": sub_id, "streamName": "bench", "groupId": "g"}}).decode())
                    cycles[0] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(churners)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.3)
        for ws in watching:
            await ws.close()
        for reader in readers:
            reader.cancel()
    return {"cycles_per_s": round(cycles[0] / elapsed), "cycles": cycles[0],
            "presence_frames_per_watcher": round(got[0] / max(watchers, 1))}


async def events(worker_url: str, url: str, subscribers: int, rate: float, seconds: float) -> dict[str, Any]:
    """S subscribers on group ``g``; a writer sets an item every 1/rate s; delays in ms."""
    delays: list[float] = []
    async with aiohttp.ClientSession() as session:
        subs = [await session.ws_connect(url) for _ in range(subscribers)]
        for n, ws in enumerate(subs):
            await ws.send_str(join("g", f"e{n}"))
            await ws.receive()

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                frame = orjson.loads(message.data)
                sent = frame.get("event", {}).get("data", {})
                if isinstance(sent, dict) and "t" in sent:
                    delays.append((time.time_ns() - sent["t"]) / 1e6)

        readers = [asyncio.create_task(read(ws)) for ws in subs]
        worker = await session.ws_connect(worker_url)
        count = int(rate * seconds)
        started = time.perf_counter()
        for n in range(count):
            await worker.send_str(orjson.dumps({"type": "invokefunction", "function_id": "stream::set", "data": {
                "stream_name": "bench", "group_id": "g", "item_id": f"i{n % 10}", "data": {"t": time.time_ns()}},
                "invocation_id": str(uuid.uuid4())}).decode())
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.perf_counter()))
        await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        for reader in readers:
            reader.cancel()
        await worker.close()
        for ws in subs:
            await ws.close()
    delays.sort()
    return {"deliveries": len(delays), "expected": count * subscribers,
            "deliveries_per_s": round(len(delays) / elapsed), "p50_ms": round(statistics.median(delays), 2),
            "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 2), "max_ms": round(delays[-1], 2)}


def _events_child(args: tuple[str, str, int, float, float], out: Any) -> None:
    out.put(asyncio.run(events(*args)))


def measure(worker_port: int, stream_port: int, opts: argparse.Namespace) -> dict[str, Any]:
    url, worker_url = f"ws://127.0.0.1:{stream_port}/", f"ws://127.0.0.1:{worker_port}/"
    result: dict[str, Any] = {
        "churn_off": asyncio.run(churn(url, opts.churners, 0, opts.seconds)),
        "churn_on": asyncio.run(churn(url, opts.churners, opts.watchers, opts.seconds)),
    }
    for label, watchers in (("events_quiet", None), ("events_churn_off", 0), ("events_storm", opts.watchers)):
        out: Any = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(target=_events_child, args=(
            (worker_url, url, opts.subscribers, opts.rate, opts.seconds), out))
        child.start()
        if watchers is not None:  # the same churn without presence watchers, then with them (the storm)
            time.sleep(0.5)  # the child's subscribers are in; the churn covers its whole window
            result[label.replace("events", "during")] = asyncio.run(churn(url, opts.churners, watchers,
                                                                          opts.seconds + 1, opts.storm_rate))
        result[label] = out.get(timeout=60 + opts.seconds * 4)
        child.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", choices=("memory", "redis"), default="memory")
    parser.add_argument("--churners", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--storm-rate", type=float, default=1000.0,
                        help="join+leave cycles/s of the churn during the events measurement (0: as fast as possible)")
    parser.add_argument("--json", type=Path, default=None)
    opts = parser.parse_args()
    runs = []
    for _ in range(opts.rounds):
        with tempfile.TemporaryDirectory() as tmp_dir:
            procs, worker_port, stream_port = start_engine(Path(tmp_dir), opts.adapter)
            try:
                runs.append(measure(worker_port, stream_port, opts))
            finally:
                for proc in reversed(procs):
                    proc.terminate()
                    proc.wait(10)
    for n, run in enumerate(runs, 1):
        print(f"round {n} ({opts.adapter}):")
        print(f"  join+leave cycles/s  presence off {run['churn_off']['cycles_per_s']:>7}   "
              f"presence on ({opts.watchers} watchers) {run['churn_on']['cycles_per_s']:>7}   "
              f"storm {run['during_storm']['cycles_per_s']:>7} (target {opts.storm_rate:g}; presence frames "
              f"per watcher {run['during_storm']['presence_frames_per_watcher']})")
        for label in ("events_quiet", "events_churn_off", "events_storm"):
            e = run[label]
            print(f"  {label:<13} {e['deliveries']}/{e['expected']} delivered, {e['deliveries_per_s']}/s, delay "
                  f"p50 {e['p50_ms']} ms  p99 {e['p99_ms']} ms  max {e['max_ms']} ms")
    if opts.json is not None:
        opts.json.write_text(json.dumps({"args": vars(opts) | {"json": str(opts.json)}, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
