"""Starting the systems under test, each as its own process on 127.0.0.1.

streamhub runs as a real ``streamhub serve`` with a generated config; its store is chosen by an adapter spec
(``memory``, ``file``, or ``redis=URL`` once the Redis adapter exists), so every scenario can gain a Redis row by
passing ``--adapters memory,redis=redis://127.0.0.1:6379``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.common import ROOT, SERVER_CPU, Child, children, free_port, unpin

__all__ = ["NODE_DIR", "Server", "node_available", "raw", "socketio_node", "socketio_python", "streamhub"]

NODE_DIR = ROOT / "bench" / "node"
_START_TIMEOUT = 30.0
ADMIN_SUFFIX = "+admin"  # adapter spec suffix: also run the admin module (metrics counted)


class Server:
    """A running server: its process, the port subscribers use and (streamhub) the worker port."""

    def __init__(self, name: str, child: Child, port: int, worker_port: int = 0, tmp: Path | None = None,
                 cleanup: Callable[[], None] | None = None) -> None:
        self.name = name
        self.child = child
        self.port = port
        self.worker_port = worker_port
        self._tmp = tmp
        self._cleanup = cleanup  # removes what the run left outside its temp folder (its Redis keys)

    @property
    def pid(self) -> int:
        return self.child.pid

    def pids(self) -> list[int]:
        """The server's process and its children (the engines of ``--processes N``)."""
        return [self.pid, *children(self.pid)]

    def go(self, events: int, per_tick: int, mode: str = "") -> None:
        """Baselines only: start writing ``events`` frames to every subscriber."""
        self.child.send(f"go {events} {per_tick} {mode}".strip())

    def stop(self) -> None:
        self.child.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def adapter_yaml(spec: str, data_dir: Path, key_prefix: str = "streamhub:") -> str:
    """The ``adapter:`` block of the stream module for an adapter spec (a ``+admin`` suffix is read elsewhere)."""
    name, _, url = spec.removesuffix(ADMIN_SUFFIX).partition("=")
    if name == "memory":
        return "class: modules::stream::adapters::KvStore\nconfig: {store_method: in_memory}"
    if name == "file":
        return f"class: modules::stream::adapters::KvStore\nconfig: {{store_method: file_based, file_path: {data_dir}}}"
    if name == "redis":
        return (f"class: modules::stream::adapters::RedisAdapter\n"
                f"config: {{redis_url: \"{url}\", key_prefix: \"{key_prefix}\"}}")
    raise ValueError(f"adapter spec {spec!r}: expected memory, file or redis=URL")


def streamhub(adapter: str = "memory", max_connections: int | None = None, processes: int = 1) -> Server:
    """``streamhub serve`` on two free ports; slow clients get 64 MiB of backlog so bursts never cut them off.

    ``max_connections`` overrides the stream port's cap (default 100,000) for runs that hold more sockets.

    Server pings are off: the byte-counting subscribers do not answer them, and the baselines send none. A spec
    ending in ``+admin`` (``memory+admin``) also runs the admin module, so every metric is counted: run it beside
    the plain spec (``--adapters memory,memory+admin``) to see what the counting costs, alternating in one run.

    ``processes`` > 1 runs ``streamhub serve --processes N`` (Redis only): N engines share both ports, free to run
    on every core; ``Server.pids()`` lists them for CPU figures.
    """
    worker_port, stream_port = free_port(), free_port()
    tmp = Path(tempfile.mkdtemp(prefix="streamhub-bench-"))
    # Redis: a fresh key prefix per engine start, so every run begins on an empty data set as embedded ones do.
    prefix = f"bench-{uuid.uuid4().hex[:12]}:"
    block = adapter_yaml(adapter, tmp / "data", prefix).replace("\n", "\n" + " " * 8)
    config = tmp / "config.yaml"
    config.write_text(
        f"port: {worker_port}\nmodules:\n  - class: modules::stream::StreamModule\n    config:\n"
        f"      port: {stream_port}\n      max_pending_bytes: 67108864\n      heartbeat_ms: 0\n"
        + (f"      max_connections: {max_connections}\n" if max_connections is not None else "")
        + f"      adapter:\n        {block}\n"
        + (f"  - class: modules::admin::AdminModule\n    config: {{port: {free_port()}}}\n"
           if adapter.endswith(ADMIN_SUFFIX) else "")
    )
    child = Child("streamhub", [sys.executable, "-m", "streamhub", "serve", "-c", str(config),
                                "--log-level", "WARNING", "--processes", str(processes)],
                  cwd=tmp, cpu=SERVER_CPU if processes == 1 else None)
    if processes > 1:
        unpin(child.pid)  # before it starts the engines, so they may use every core
    try:
        child.expect("streamhub ready", _START_TIMEOUT)
        for pid in children(child.pid) if processes > 1 else []:
            unpin(pid)
    except BaseException:
        child.stop()
        raise
    store = adapter.removesuffix(ADMIN_SUFFIX)
    cleanup = _redis_cleanup(store.partition("=")[2], prefix) if store.startswith("redis=") else None
    return Server(f"streamhub[{adapter}]", child, stream_port, worker_port, tmp, cleanup)


def _redis_cleanup(url: str, prefix: str) -> Callable[[], None]:
    def cleanup() -> None:
        import redis

        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))  # the run's own prefix only
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
        finally:
            client.close()

    return cleanup


def raw() -> Server:
    """The picows raw server (both write forms; the form is chosen per ``go``)."""
    return _line_server("raw_picows", lambda port: Child.python("raw picows", "bench.raw_server", port, cpu=SERVER_CPU))


def socketio_python() -> Server:
    return _line_server("python-socketio", lambda port: Child.python("python-socketio", "bench.socketio_server", port,
                                                                  cpu=SERVER_CPU))


def node_available() -> bool:
    """Node and the npm packages of ``bench/node`` are installed (``npm ci`` in that folder)."""
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "socket.io").is_dir()


def socketio_node() -> Server:
    node = shutil.which("node") or "node"
    return _line_server(
        "node-socket.io",
        lambda port: Child("node socket.io", [node, "socketio_server.js", str(port)], cwd=NODE_DIR,
                           cpu=SERVER_CPU),
    )


def _line_server(name: str, start: Callable[[int], Child]) -> Server:
    """Start a baseline that prints ``ready`` once it listens on the port it is given."""
    port = free_port()
    child = start(port)
    try:
        child.expect("ready", _START_TIMEOUT)
    except BaseException:
        child.stop()
        raise
    return Server(name, child, port)
