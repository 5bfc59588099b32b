"""Baseline: python-socketio broadcasting the same event to a room of N subscribers.

Fast settings, as its docs recommend for throughput: the ``aiohttp`` async mode on uvloop, the WebSocket
transport only (no long-polling upgrade dance), no HTTP compression; ``ping_interval`` is raised past the length
of a run so no ping frame lands in the byte-counted stream (it would not change the cost measurably either way).
Every client joins room ``g`` on connect. On stdin ``go EVENTS PER_TICK`` it emits EVENTS events, PER_TICK per
event-loop tick, with ``emit(..., room="g")`` and prints ``sent``.

Usage: python -m bench.socketio_server PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import socketio
from aiohttp import web

from bench.common import event_wrapper

__all__ = ["main"]


async def main(port: int) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"], ping_interval=600,
                               ping_timeout=600, http_compression=False, cors_allowed_origins="*")

    async def connect(sid: str, environ: dict[str, Any]) -> None:
        await sio.enter_room(sid, "g")

    sio.on("connect", connect)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = line.split()
        if command and command[0] == "go":
            await burst(sio, int(command[1]), int(command[2]))
            print("sent", flush=True)
    await runner.cleanup()


async def burst(sio: socketio.AsyncServer, events: int, per_tick: int) -> None:
    """Emit ``events`` events to room ``g``, ``per_tick`` between yields to the loop."""
    payloads = [event_wrapper(i) for i in range(events)]
    for start in range(0, events, per_tick):
        for payload in payloads[start : start + per_tick]:
            await sio.emit("stream", payload, room="g")
        await asyncio.sleep(0)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1])))
