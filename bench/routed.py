"""Routed calls: a caller on engine B calls a function whose worker is connected to engine A (through Redis),
next to the same calls made on engine A (a local call), in the same run.

Two engine processes on a private ``redis-server`` (no persistence); the serving worker and the callers run in
this process (one connection per caller, one call in flight each). Reports calls/s and per-call latency
(p50/p99, ms) for 1 and 50 callers.

Usage: python -m bench.routed [--calls 4000] [--rounds 2] [--cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import orjson
from picows import WSFrame, WSMsgType, WSTransport

from bench.redis_fanout import two_engines
from bench.worker_client import WorkerClient, connect


class EchoWorker(WorkerClient):
    """Serves ``bench::echo`` by answering every call with its data, straight from the frame callback."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            message = orjson.loads(frame.get_payload_as_bytes())
            if message.get("type") == "invokefunction" and message.get("function_id") == "bench::echo":
                transport.send(WSMsgType.TEXT, orjson.dumps({
                    "type": "invocationresult", "invocation_id": message["invocation_id"],
                    "function_id": "bench::echo", "result": message.get("data")}))
                return
        super().on_ws_frame(transport, frame)


async def _drive(port: int, callers: int, total: int) -> dict[str, Any]:
    clients = [await connect(port) for _ in range(callers)]
    latencies: list[float] = []

    async def caller(client: WorkerClient) -> None:
        for n in range(total // callers):
            started = time.perf_counter()
            await client.call("bench::echo", {"n": n})
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    await asyncio.gather(*(caller(client) for client in clients))
    seconds = time.perf_counter() - start
    for client in clients:
        client.close()
    latencies.sort()
    return {"calls_per_s": round(len(latencies) / seconds), "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3)}


async def _measure(worker_a: int, worker_b: int, total: int) -> dict[str, Any]:
    from picows import ws_connect

    _, server = await ws_connect(EchoWorker, f"ws://127.0.0.1:{worker_a}/")
    assert isinstance(server, EchoWorker)
    await asyncio.wait_for(server.ready, 10)
    assert server.transport is not None
    server.transport.send(WSMsgType.TEXT, orjson.dumps({"type": "registerfunction", "id": "bench::echo"}))
    probe = await connect(worker_b)
    for _ in range(200):  # until engine B knows engine A serves it
        reply = await probe.invoke("bench::echo", {})
        if reply.get("error") is None:
            break
        await asyncio.sleep(0.05)
    probe.close()
    results: dict[str, Any] = {}
    for callers in (1, 50):
        results[f"local_{callers}"] = await _drive(worker_a, callers, total)
        results[f"routed_{callers}"] = await _drive(worker_b, callers, total)
    server.close()
    return results


def run_once(total: int, cluster: bool = False) -> dict[str, Any]:
    with two_engines(cluster) as (_, (_, worker_a, _), (_, worker_b, _)):
        return asyncio.run(_measure(worker_a, worker_b, total))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cluster", action="store_true", help="the engines on a private 3-primary Redis Cluster")
    args = parser.parse_args()
    runs = [run_once(args.calls, args.cluster) for _ in range(args.rounds)]
    best = {key: max((run[key] for run in runs), key=lambda r: r["calls_per_s"]) for key in runs[0]}
    print(json.dumps({"calls": args.calls, "cluster": args.cluster, "best": best}, indent=2))


if __name__ == "__main__":
    main()
