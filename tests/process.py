"""Run a real ``streamhub serve`` process for tests that need to kill or restart the engine."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.helpers import free_port, timeout


class EngineProcess:
    """``python -m streamhub serve -c <config>`` in a subprocess, with the ports it was given.

    By default the config is written from ``adapter_yaml``; ``config`` runs an existing file instead, which
    must take its ports from ``${WORKER_PORT}`` and ``${STREAM_PORT}`` (``env`` adds more variables).
    """

    def __init__(self, workdir: Path, adapter_yaml: str | None = None, *, config: Path | None = None,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.args = args
        self.worker_port = free_port()
        self.stream_port = free_port()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "WORKER_PORT": str(self.worker_port),
                    "STREAM_PORT": str(self.stream_port), **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.killed = False
        if config is not None:
            self.config = config
            return
        adapter = adapter_yaml or (
            "adapter:\n        class: modules::stream::adapters::KvStore\n"
            f"        config:\n          store_method: file_based\n          file_path: {workdir / 'data'}\n")
        self.config = workdir / "config.yaml"
        self.config.write_text(
            f"port: {self.worker_port}\n"
            "modules:\n"
            "  - class: modules::stream::StreamModule\n"
            "    config:\n"
            f"      port: {self.stream_port}\n"
            f"      {adapter}"
        )

    @property
    def worker_url(self) -> str:
        return f"ws://127.0.0.1:{self.worker_port}/"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.stream_port}/"

    async def start(self) -> None:
        self.killed = False
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamhub", "serve", "-c", str(self.config), "--log-level", "WARNING",
            *self.args, cwd=self.workdir, stdout=asyncio.subprocess.PIPE, env=self.env)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout(20))
        assert line.startswith(b"streamhub ready"), line

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.killed = True

    async def stop(self) -> int:
        assert self.proc is not None
        # Never signal a killed child: Popen.send_signal polls first and may reap it before asyncio's child
        # watcher does, which then reports returncode 255 instead of -9.
        if self.proc.returncode is None and not self.killed:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout(20))


def redis_engine(workdir: Path, url: str, prefix: str, stream_keys: str) -> EngineProcess:
    """An engine on the Redis adapter (a server or a cluster, by ``url``) under ``prefix``; ``stream_keys`` are
    extra stream module keys, one YAML line each (``presence_ttl_ms: 1500``...)."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{line}\n      " for line in stream_keys.splitlines())
    return EngineProcess(workdir, (
        f"{lines}adapter:\n"
        "        class: modules::stream::adapters::RedisAdapter\n"
        "        config:\n"
        f"          redis_url: \"{url}\"\n"
        f"          key_prefix: \"{prefix}\"\n"))
