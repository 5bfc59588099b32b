"""``streamhub serve --processes N``: N engine processes sharing each port, forming one system through Redis.

Why processes and not threads: one engine is one event loop on one core; N processes use N cores. Each child is
an ordinary ``streamhub serve`` with ``--reuse-port`` (every listening socket gets ``SO_REUSEPORT``, so the
kernel spreads connections over the children); they form one system because they share one Redis
(docs/cluster.md), which is why the Redis adapter is required. The parent only starts the children, prints one
ready line once all are ready, forwards SIGINT/SIGTERM, and stops the others when one exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from streamhub.config import EngineConfig
from streamhub.errors import ConfigError

__all__ = ["check_processes", "run_processes"]


def check_processes(config: EngineConfig, processes: int) -> None:
    """Raise ``ConfigError`` (one line) if ``processes`` engines cannot share this config."""
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, got {processes}")
    if processes == 1:
        return
    if config.stream is None or not config.stream.adapter.is_redis:
        raise ConfigError(f"--processes {processes} needs the Redis adapter (modules::stream::adapters::"
                          "RedisAdapter): the engine processes share functions, triggers and data through it")
    ports = {"port": config.port, "stream config.port": config.stream.port,
             "rest_api config.port": config.rest_api.port if config.rest_api else None,
             "admin config.port": config.admin.port if config.admin else None}
    for key, port in ports.items():
        if port == 0:
            raise ConfigError(f"{key}: --processes {processes} shares each port between the processes; "
                              "port 0 would give each process its own")


def run_processes(argv: list[str], processes: int) -> int:
    """Run ``processes`` children of ``streamhub serve`` (``argv`` without ``--processes``); their exit code."""
    return asyncio.run(_supervise(argv, processes))


async def _supervise(argv: list[str], processes: int) -> int:
    command = [sys.executable, "-m", "streamhub", "serve", *argv, "--reuse-port"]
    children = [await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
                for _ in range(processes)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(child.wait()) for child in children]
    ready = asyncio.ensure_future(_ready_lines(children))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([ready, stopping, *waits], return_when=asyncio.FIRST_COMPLETED)
    if ready.done() and ready.exception() is None and not stop.is_set() and not any(w.done() for w in waits):
        line = ready.result()
        print(f"{line} ({processes} processes sharing each port)", flush=True)
        await asyncio.wait([stopping, *waits], return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    stopping.cancel()
    with contextlib.suppress(BaseException):
        await ready
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*waits)
    return next((code for code in codes if code), 0) if stop.is_set() else (max(codes) or 1)


async def _ready_lines(children: list[asyncio.subprocess.Process]) -> str:
    """Wait for every child's ready line; returns the first child's."""
    lines = []
    for child in children:
        assert child.stdout is not None
        while True:
            raw = await child.stdout.readline()
            if not raw:
                raise ConnectionError("an engine process exited before it was ready")
            if raw.startswith(b"streamhub ready"):
                lines.append(raw.decode(errors="replace").rstrip())
                break
    return lines[0]
