"""A private Redis Cluster of ``redis-server`` processes on 127.0.0.1, for the bench and the tests.

It lives in bench/ because the bench must not import tests/, while the tests may import bench/ (both sit at the
repository root); ``tests/redis_cluster.py`` only adds the test binary and the test timeout factor.

The cluster is formed with the node commands themselves, no ``redis-cli``: slots split evenly over the primaries
(``CLUSTER ADDSLOTSRANGE``), distinct config epochs (``CLUSTER SET-CONFIG-EPOCH``, so no epoch collision has to be
resolved by gossip), ``CLUSTER MEET`` from the first node, ``CLUSTER REPLICATE`` for the replicas. Ready means every
running node reports ``cluster_state:ok``, all of them agree on which node serves which slots and which replica
follows which primary, and every replica's link to its primary is up.

Each node has its own directory (``nodes.conf``, its log, its append-only file when ``durable``) and two fixed
ports: the client port and the cluster bus port (``cluster-port``; the default, port + 10000, could pass 65535).
A killed node restarts on the same ports and directory, so it keeps its node id and rejoins as itself.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.crc import key_slot as _crc_key_slot
from redis.retry import Retry

from bench.common import free_port

__all__ = ["SLOTS", "ClusterNode", "RedisCluster", "key_slot"]

SLOTS = 16384
Role = Literal["primary", "replica"]
_POLL = 0.01  # seconds between two looks at the other processes' state (they offer nothing to await)
_NO_RETRY = Retry(NoBackoff(), 0)  # the harness polls itself; redis-py's default backs off for seconds
_PORT_TRIES = 3  # a free port taken by someone else before the node bound it: new ports, start again


def key_slot(key: bytes) -> int:
    """The hash slot of ``key`` (``{hash tags}`` honoured), as every node computes it."""
    return _crc_key_slot(key)


@dataclass(frozen=True)
class ClusterNode:
    """One node as the cluster sees it now: ``pid`` is None while the node is killed."""

    port: int
    role: Role
    pid: int | None


@dataclass(frozen=True)
class _Entry:
    """A node in one node's ``CLUSTER NODES``: the primary it follows (None for a primary) and the slots it serves."""

    primary: str | None
    slots: frozenset[int]


class _Node:
    """A node of the plan: its ports, directory and process; ``node_id`` once it started."""

    def __init__(self, index: int, workdir: Path, primary_index: int | None) -> None:
        self.index = index
        self.dir = workdir / f"node-{index}"
        self.primary_index = primary_index  # the primary it was started as a replica of
        self.port = free_port()
        self.bus_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.node_id = ""
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        role = "primary" if self.primary_index is None else f"replica of node {self.primary_index}"
        return f"node {self.index} (127.0.0.1:{self.port}, started as {role})"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join((self.dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class RedisCluster:
    """A Redis Cluster of ``primaries`` primaries with ``replicas_per_primary`` replicas each.

    Args:
        workdir: one directory per node is made in it.
        durable: append-only file fsynced on every write (``appendfsync always``); otherwise nothing is persisted.
        node_timeout_ms: ``cluster-node-timeout``: how soon a killed primary is failed over.
        binary: the ``redis-server`` to run (7.0 or later: ``ADDSLOTSRANGE``, ``cluster-port``).
        timeout_factor: scales every wait, for slow machines.

    Every method blocks until done: an async test whose engine runs in its own event loop calls them through
    ``asyncio.to_thread``, so the engine keeps serving meanwhile (a failover, a slot moving under it).
    """

    def __init__(self, workdir: Path, *, binary: str, primaries: int = 3, replicas_per_primary: int = 0,
                 durable: bool = False, node_timeout_ms: int = 1000, timeout_factor: float = 1.0) -> None:
        if primaries < 1 or replicas_per_primary < 0:
            raise ValueError("a Redis Cluster needs at least one primary and no negative replica count")
        self.workdir = workdir
        self.binary = binary
        self.durable = durable
        self.node_timeout_ms = node_timeout_ms
        self.timeout_factor = timeout_factor
        self.start_seconds = 0.0  # how long start() took, for reports
        self._nodes = [_Node(i, workdir, None) for i in range(primaries)]
        self._nodes += [_Node(primaries + p * replicas_per_primary + r, workdir, p)
                        for p in range(primaries) for r in range(replicas_per_primary)]
        self._clients: dict[int, redis.Redis] = {}
        self._killed: dict[int, tuple[frozenset[int], frozenset[str]]] = {}  # port -> slots, replicas at kill

    # Life cycle

    def start(self, timeout: float = 15.0) -> None:
        """Start every node, form the cluster and wait until it is ready; on failure stop what was started."""
        began = time.monotonic()
        try:
            for node in self._nodes:
                self._spawn(node)
            for node in self._nodes:
                self._await_ping(node, began + timeout * self.timeout_factor, retry_ports=True)
            self._form(began + timeout * self.timeout_factor)
            self._wait_ready(began + timeout * self.timeout_factor, "start")
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """SIGKILL every node this cluster started (nothing is kept: the cluster is thrown away)."""
        for node in self._nodes:
            self._kill_process(node)

    def __enter__(self) -> RedisCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self, port: int) -> None:
        """SIGKILL one node: it gets no chance to save or hand anything over."""
        node = self._node(port)
        snapshot = self._view_from_any(exclude=node)
        if snapshot is not None and node.node_id in snapshot:
            replicas = frozenset(i for i, e in snapshot.items() if e.primary == node.node_id)
            self._killed[port] = (snapshot[node.node_id].slots, replicas)
        self._kill_process(node)

    def restart(self, port: int, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Start a killed node again on its ports and directory; ``wait``: until the cluster is ready again."""
        node = self._node(port)
        if node.running:
            raise RuntimeError(f"{node.name} is running: kill it first")
        deadline = time.monotonic() + timeout * self.timeout_factor
        self._spawn(node)
        self._await_ping(node, deadline, retry_ports=False)
        self._killed.pop(port, None)
        if wait:
            self._wait_ready(deadline, f"restart of {node.name}")

    def wait_failover(self, old_primary_port: int, timeout: float = 15.0) -> int:
        """Wait until a replica of the (killed) primary serves its slots and the cluster is ready; its port."""
        old = self._node(old_primary_port)
        slots, replicas = self._killed.get(old_primary_port) or self._owned_and_followers(old)
        if not replicas:
            raise RuntimeError(f"{old.name} has no replica to take over")
        deadline = time.monotonic() + timeout * self.timeout_factor
        while True:
            problem = self._problem()
            if problem is None:
                view = self._view_from_any() or {}
                for node_id in replicas:
                    entry = view.get(node_id)
                    if entry is not None and entry.primary is None and slots <= entry.slots:
                        return self._node_by_id(node_id).port
                problem = f"no replica of {old.name} serves its slots yet"
            self._check_deadline(deadline, f"failover of {old.name}", problem)

    # What the cluster looks like

    @property
    def url(self) -> str:
        """The seed URL (the first primary); any node would do as long as it runs."""
        return f"redis+cluster://127.0.0.1:{self._nodes[0].port}"

    @property
    def nodes(self) -> list[ClusterNode]:
        """Every node with its role as the cluster sees it now (as planned if no node answers)."""
        view = self._view_from_any() or {}
        found = []
        for node in self._nodes:
            entry = view.get(node.node_id)
            primary = entry.primary is None if entry is not None else node.primary_index is None
            pid = node.proc.pid if node.proc is not None and node.running else None
            found.append(ClusterNode(node.port, "primary" if primary else "replica", pid))
        return found

    def primary_for_slot(self, slot: int) -> int:
        """The port of the primary serving ``slot`` (as a running node sees it)."""
        view = self._view_from_any()
        if view is None:
            raise RuntimeError("no node of the cluster answers")
        for node_id, entry in view.items():
            if entry.primary is None and slot in entry.slots:
                return self._node_by_id(node_id).port
        raise RuntimeError(f"no primary serves slot {slot}")

    def client(self, port: int) -> redis.Redis:
        """A synchronous client of one node, for assertions and node commands: no redirection followed, no retry
        (an error shows at once)."""
        self._node(port)
        return redis.Redis(port=port, socket_timeout=5 * self.timeout_factor, protocol=2, retry=_NO_RETRY)

    def cluster_client(self) -> redis.cluster.RedisCluster:
        """redis-py's synchronous cluster client, seeded with every running node (follows MOVED and ASK)."""
        seeds = [redis.cluster.ClusterNode("127.0.0.1", n.port)  # type: ignore[no-untyped-call]
                 for n in self._nodes if n.running]
        return redis.cluster.RedisCluster(startup_nodes=seeds, socket_timeout=5 * self.timeout_factor)

    # Moving a slot

    def migrate_slot(self, slot: int, to_port: int, *, batch: int = 100, timeout: float = 15.0,
                     between: Callable[[], None] | None = None) -> None:
        """Move ``slot`` and its keys to the primary on ``to_port``, the way ``redis-cli --cluster reshard`` does.

        The target imports, the source migrates; keys go over in batches (``CLUSTER GETKEYSINSLOT``, ``MIGRATE ...
        KEYS``) while clients are redirected (``ASK``); then every primary is told the new owner (``SETSLOT
        NODE``: target, source, the others), and this waits until every node agrees. ``between`` runs once the
        keys are over and before the owner changes, while clients still get ``ASK``.
        """
        target = self._node(to_port)
        source = self._node(self.primary_for_slot(slot))
        if source is target:
            return
        self._command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        self._command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        migrate_ms = int(5000 * self.timeout_factor)
        while keys := self._command(source, "CLUSTER", "GETKEYSINSLOT", slot, batch):
            self._command(source, "MIGRATE", "127.0.0.1", to_port, "", 0, migrate_ms, "KEYS", *keys)
        if between is not None:
            between()
        view = self._view_from_any() or {}
        others = [n for n in self._nodes if n.running and n not in (target, source)
                  and view.get(n.node_id, _Entry(None, frozenset())).primary is None]
        for node in (target, source, *others):
            self._command(node, "CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        deadline = time.monotonic() + timeout * self.timeout_factor
        while True:
            problem = self._problem()
            if problem is None:
                if self.primary_for_slot(slot) == to_port:
                    return
                problem = f"slot {slot} not yet on {target.name}"
            self._check_deadline(deadline, f"migration of slot {slot} to {target.name}", problem)

    # Starting and forming

    def _spawn(self, node: _Node) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        node.proc = subprocess.Popen(
            [self.binary, "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.dir),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(node.bus_port),
             "--cluster-node-timeout", str(self.node_timeout_ms), "--save", "", *persistence,
             # A replica's first sync starts at once (the default waits 5 s for more replicas to share it).
             "--repl-diskless-sync-delay", "0",
             "--daemonize", "no", "--loglevel", "warning", "--logfile", "redis.log"],
            cwd=node.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _await_ping(self, node: _Node, deadline: float, *, retry_ports: bool) -> None:
        tries = 1
        while True:
            assert node.proc is not None
            try:
                if self._internal(node).ping():
                    return
            except redis.RedisError:  # refused, or still loading its data
                pass
            code = node.proc.poll()
            if code is not None:
                self._forget_client(node)
                if retry_ports and tries < _PORT_TRIES and "Address already in use" in node.log_tail(20):
                    tries += 1
                    node.port, node.bus_port = free_port(), free_port()
                    self._spawn(node)
                    continue
                raise RuntimeError(f"Redis Cluster: {node.name} exited with status {code}: {node.log_tail()}")
            _pause(deadline, f"start of {node.name}", "it does not answer PING")

    def _form(self, deadline: float) -> None:
        for node in self._nodes:
            node.node_id = self._command(node, "CLUSTER", "MYID")
        primaries = [n for n in self._nodes if n.primary_index is None]
        for i, node in enumerate(primaries):
            first, last = i * SLOTS // len(primaries), (i + 1) * SLOTS // len(primaries) - 1
            self._command(node, "CLUSTER", "ADDSLOTSRANGE", first, last)
        for epoch, node in enumerate(self._nodes, start=1):
            self._command(node, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node in self._nodes[1:]:
            self._command(self._nodes[0], "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        replicas = [n for n in self._nodes if n.primary_index is not None]
        for node in replicas:  # a replica can follow a primary only once it knows it
            primary = self._nodes[node.primary_index or 0]
            while primary.node_id not in self._view_of(node):
                self._check_deadline(deadline, "start", f"{node.name} does not know {primary.name} yet")
            self._command(node, "CLUSTER", "REPLICATE", primary.node_id)

    # Readiness

    def _wait_ready(self, deadline: float, what: str) -> None:
        while (problem := self._problem()) is not None:
            self._check_deadline(deadline, what, problem)

    def _check_deadline(self, deadline: float, what: str, problem: str) -> None:
        """Raise if a node died or time is up (naming the node or what is missing); else pause one poll."""
        for node in self._nodes:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"Redis Cluster {what}: {node.name} exited with status {node.proc.returncode}: "
                                   f"{node.log_tail()}")
        _pause(deadline, what, problem)

    def _problem(self) -> str | None:
        """What keeps the running nodes from being a ready cluster, or None when they are one."""
        running = [n for n in self._nodes if n.running]
        alive = {n.node_id for n in running}
        first: tuple[_Node, dict[str, _Entry]] | None = None
        for node in running:
            try:
                info = self._command(node, "CLUSTER", "INFO")
                view = {k: v for k, v in self._view_of(node).items() if k in alive}
            except redis.RedisError as exc:
                return f"{node.name} does not answer: {exc}"
            if "cluster_state:ok" not in info:
                return f"{node.name} is not cluster_state:ok"
            if len(view) < len(alive):
                return f"{node.name} does not know every node yet"
            if first is None:
                first = (node, view)
                served = set().union(*(e.slots for e in view.values() if e.primary is None))
                if len(served) < SLOTS:
                    return f"{SLOTS - len(served)} slots are not served by a running primary"
            elif view != first[1]:
                return f"{node.name} and {first[0].name} disagree on slots or replicas"
        for node_id, entry in (first[1] if first is not None else {}).items():
            if entry.primary is not None:
                replica = self._node_by_id(node_id)
                try:
                    link = self._internal(replica).info("replication").get("master_link_status")
                except redis.RedisError as exc:
                    return f"{replica.name} does not answer: {exc}"
                if link != "up":
                    return f"{replica.name}: link to its primary is {link}"
        return None

    def _view_of(self, node: _Node) -> dict[str, _Entry]:
        """``CLUSTER NODES`` as one node sees it, without nodes still in handshake."""
        view: dict[str, _Entry] = {}
        for line in self._command(node, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if len(fields) < 8 or "handshake" in fields[2] or "noaddr" in fields[2]:
                continue
            slots: set[int] = set()
            for spec in fields[8:]:
                if spec.startswith("["):  # a slot being imported or migrated: still served by its owner
                    continue
                first, _, last = spec.partition("-")
                slots.update(range(int(first), int(last or first) + 1))
            view[fields[0]] = _Entry(None if fields[3] == "-" else fields[3], frozenset(slots))
        return view

    def _view_from_any(self, exclude: _Node | None = None) -> dict[str, _Entry] | None:
        for node in self._nodes:
            if node.running and node is not exclude:
                try:
                    return self._view_of(node)
                except redis.RedisError:
                    continue
        return None

    def _owned_and_followers(self, node: _Node) -> tuple[frozenset[int], frozenset[str]]:
        view = self._view_from_any() or {}
        entry = view.get(node.node_id, _Entry(None, frozenset()))
        return entry.slots, frozenset(i for i, e in view.items() if e.primary == node.node_id)

    # Bookkeeping

    def _node(self, port: int) -> _Node:
        for node in self._nodes:
            if node.port == port:
                return node
        raise ValueError(f"no node of this cluster listens on port {port}")

    def _node_by_id(self, node_id: str) -> _Node:
        for node in self._nodes:
            if node.node_id == node_id:
                return node
        raise ValueError(f"no node of this cluster has id {node_id}")

    def _internal(self, node: _Node) -> redis.Redis:
        """The harness's own client of a node (text replies), kept across calls."""
        client = self._clients.get(node.index)
        if client is None or client.connection_pool.connection_kwargs.get("port") != node.port:
            client = redis.Redis(port=node.port, socket_timeout=5 * self.timeout_factor, protocol=2,
                                 decode_responses=True, retry=_NO_RETRY)
            self._clients[node.index] = client
        return client

    def _command(self, node: _Node, *args: object) -> Any:
        """One command to one node (redis-py leaves ``execute_command`` untyped)."""
        return self._internal(node).execute_command(*args)  # type: ignore[no-untyped-call]

    def _forget_client(self, node: _Node) -> None:
        client = self._clients.pop(node.index, None)
        if client is not None:
            client.close()

    def _kill_process(self, node: _Node) -> None:
        if node.proc is not None:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGKILL)
            node.proc.wait()
        node.proc = None
        self._forget_client(node)


def _pause(deadline: float, what: str, problem: str) -> None:
    """One poll's pause, or an error saying what was still missing when time ran out."""
    if time.monotonic() > deadline:
        raise RuntimeError(f"Redis Cluster {what}: not ready in time: {problem}")
    time.sleep(_POLL)
