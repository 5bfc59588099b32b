"""Starting the systems under test, each as its own process on 127.0.0.1.

streamhub runs as a real ``streamhub serve`` with a generated config; its store is chosen by an adapter spec
(``memory``, ``file``, ``redis=URL``, ``redis-cluster=URL`` or a bare ``redis-cluster``), so every scenario can gain
a Redis row by passing ``--adapters memory,redis=redis://127.0.0.1:6379``. A bare ``redis-cluster`` is a private
3-primary Redis Cluster (bench/redis_cluster.py) started once for the whole run by :func:`private_stores`.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.common import ROOT, SERVER_CPU, Child, children, free_port, unpin

__all__ = ["NODE_DIR", "PRIVATE_CLUSTER", "Server", "check_spec", "node_available", "private_stores", "raw",
           "socketio_node", "socketio_python", "streamhub"]

NODE_DIR = ROOT / "bench" / "node"
_START_TIMEOUT = 30.0
ADMIN_SUFFIX = "+admin"  # adapter spec suffix: also run the admin module (metrics counted)
PRIVATE_CLUSTER = "redis-cluster"  # adapter spec without a URL: the run's private Redis Cluster
_private_cluster_url: str | None = None  # set by private_stores() for the length of a run


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


def check_spec(spec: str) -> None:
    """Raise ValueError for an adapter spec nothing can run, before anything starts."""
    name, _, url = spec.removesuffix(ADMIN_SUFFIX).partition("=")
    if name in ("memory", "file") or (name == "redis" and url) or name == PRIVATE_CLUSTER:
        return
    raise ValueError(f"adapter spec {spec!r}: expected memory, file, redis=URL, redis-cluster or redis-cluster=URL")


@contextlib.contextmanager
def private_stores(adapters: list[str]) -> Iterator[None]:
    """Run the block with what the specs need for the whole run: a bare ``redis-cluster`` gets a private 3-primary
    Redis Cluster (no persistence, free on every core like the bench's other private Redis), stopped afterwards.

    One cluster for the run rather than one per engine start: forming one takes about 2 s (a fresh primary reports
    ``cluster_state:ok`` only 2 s after it started), and every engine start gets its own key prefix anyway.
    """
    global _private_cluster_url
    if not any(spec.removesuffix(ADMIN_SUFFIX) == PRIVATE_CLUSTER for spec in adapters):
        yield
        return
    from bench.redis_cluster import RedisCluster
    from bench.redis_fanout import redis_binary

    with tempfile.TemporaryDirectory(prefix="streamhub-bench-cluster-") as tmp:
        cluster = RedisCluster(Path(tmp), binary=redis_binary())
        cluster.start()
        try:
            for node in cluster.nodes:
                if node.pid is not None:
                    unpin(node.pid)
            print(f"{PRIVATE_CLUSTER}: {cluster.url}, 3 primaries, formed in {cluster.start_seconds:.2f} s",
                  file=sys.stderr, flush=True)
            _private_cluster_url = cluster.url
            yield
        finally:
            _private_cluster_url = None
            cluster.stop()


def adapter_yaml(spec: str, data_dir: Path, key_prefix: str = "streamhub:") -> str:
    """The ``adapter:`` block of the stream module for an adapter spec (a ``+admin`` suffix is read elsewhere)."""
    check_spec(spec)
    name = spec.removesuffix(ADMIN_SUFFIX).partition("=")[0]
    if name == "memory":
        return "class: modules::stream::adapters::KvStore\nconfig: {store_method: in_memory}"
    if name == "file":
        return f"class: modules::stream::adapters::KvStore\nconfig: {{store_method: file_based, file_path: {data_dir}}}"
    return (f"class: modules::stream::adapters::RedisAdapter\n"
            f"config: {{redis_url: \"{store_url(spec)}\", key_prefix: \"{key_prefix}\"}}")


def store_url(spec: str) -> str:
    """The Redis URL of a ``redis=URL`` or ``redis-cluster[=URL]`` spec (a bare one: the private cluster's)."""
    name, _, url = spec.removesuffix(ADMIN_SUFFIX).partition("=")
    if name == PRIVATE_CLUSTER and not url:
        if _private_cluster_url is None:
            raise RuntimeError(f"adapter spec {PRIVATE_CLUSTER!r}: no private cluster runs (servers.private_stores)")
        return _private_cluster_url
    return url


def streamhub(adapter: str = "memory", max_connections: int | None = None, processes: int = 1,
              gc_log: Path | None = None) -> Server:
    """``streamhub serve`` on two free ports; slow clients get 64 MiB of backlog so bursts never cut them off.

    ``max_connections`` overrides the stream port's cap (default 100,000) for runs that hold more sockets.

    Server pings are off: the byte-counting subscribers do not answer them, and the baselines send none. A spec
    ending in ``+admin`` (``memory+admin``) also runs the admin module, so every metric is counted: run it beside
    the plain spec (``--adapters memory,memory+admin``) to see what the counting costs, alternating in one run.

    ``processes`` > 1 runs ``streamhub serve --processes N`` (Redis only): N engines share both ports, free to run
    on every core; ``Server.pids()`` lists them for CPU figures. ``gc_log``: log every full garbage collection
    there (``bench.gc_probe``).
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
    command = ["bench.gc_probe", str(gc_log)] if gc_log is not None else ["streamhub"]
    child = Child("streamhub", [sys.executable, "-m", *command, "serve", "-c", str(config),
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
    store = adapter.removesuffix(ADMIN_SUFFIX).partition("=")[0]  # memory, file, redis or redis-cluster
    cleanup = None
    if store in ("redis", PRIVATE_CLUSTER):
        cleanup = _redis_cleanup(store_url(adapter), prefix, cluster=store == PRIVATE_CLUSTER)
    return Server(f"streamhub[{adapter}]", child, stream_port, worker_port, tmp, cleanup)


def _redis_cleanup(url: str, prefix: str, *, cluster: bool) -> Callable[[], None]:
    def cleanup() -> None:
        import redis
        import redis.cluster

        # A cluster client scans every primary and splits a DEL by slot.
        client: redis.Redis | redis.cluster.RedisCluster = (
            redis.cluster.RedisCluster.from_url(url.replace("redis+cluster://", "redis://", 1)) if cluster
            else redis.Redis.from_url(url))
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
