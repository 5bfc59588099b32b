"""The Redis Cluster harness itself (tests/redis_cluster.py), over real sockets to real ``redis-server`` nodes.

What the cluster tests of the adapter rely on: every slot is served, a killed primary's replica takes over with
the writes it acknowledged, a killed node restarts as itself, a moved slot takes its keys along and clients follow
the redirections, and a start that fails names the node and leaves no process behind.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.redis_cluster import RedisCluster as BenchRedisCluster
from redis.exceptions import AskError, MovedError

from tests.redis_cluster import SLOTS, RedisCluster, key_slot
from tests.redis_server import redis_server_binary

pytestmark = pytest.mark.redis_cluster

MakeCluster = Callable[..., RedisCluster]


def keys_on_every_primary(cluster: RedisCluster, prefix: str) -> dict[int, bytes]:
    """One key per primary port, each in its own slot."""
    found: dict[int, bytes] = {}
    index = 0
    while len(found) < 3:
        key = f"{prefix}{index}".encode()
        found.setdefault(cluster.primary_for_slot(key_slot(key)), key)
        index += 1
    return found


def test_three_primaries_serve_every_slot_and_keys_in_different_slots(redis_cluster: RedisCluster,
                                                                       key_prefix: str) -> None:
    nodes = redis_cluster.nodes
    assert [n.role for n in nodes] == ["primary"] * 3 and all(n.pid is not None for n in nodes)
    assert redis_cluster.url == f"redis+cluster://127.0.0.1:{nodes[0].port}"
    with redis_cluster.client(nodes[0].port) as node:
        ranges = node.execute_command("CLUSTER", "SLOTS")
    served = sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in ranges)
    assert served[0][0] == 0 and served[-1][1] == SLOTS - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(served))  # no gap, no overlap
    assert {port for _, _, port in served} == {n.port for n in nodes}

    keys = keys_on_every_primary(redis_cluster, key_prefix)
    assert len({key_slot(k) for k in keys.values()}) == 3
    with redis_cluster.cluster_client() as client:
        for key in keys.values():
            assert client.set(key, b"v" + key)
        for port, key in keys.items():
            assert client.get(key) == b"v" + key
            with redis_cluster.client(port) as owner:  # the value is on the node the harness names
                assert owner.get(key) == b"v" + key


def test_a_killed_primary_is_replaced_by_its_replica_with_its_acknowledged_writes(
        make_redis_cluster: MakeCluster, key_prefix: str) -> None:
    cluster = make_redis_cluster(replicas_per_primary=1)
    assert [n.role for n in cluster.nodes] == ["primary"] * 3 + ["replica"] * 3
    key = f"{key_prefix}kept".encode()
    old = cluster.primary_for_slot(key_slot(key))
    with cluster.client(old) as primary:
        primary.set(key, b"acknowledged")
        assert primary.execute_command("WAIT", 1, 5000) == 1  # the replica has it

    cluster.kill(old)
    new = cluster.wait_failover(old)

    assert new != old and cluster.primary_for_slot(key_slot(key)) == new
    roles = {n.port: n for n in cluster.nodes}
    assert roles[new].role == "primary" and roles[old].pid is None
    with cluster.cluster_client() as client:
        assert client.get(key) == b"acknowledged"

    cluster.restart(old)  # it comes back as itself, now following the node that took over

    roles = {n.port: n for n in cluster.nodes}
    assert roles[old].role == "replica" and roles[old].pid is not None
    with cluster.client(old) as replica:
        assert replica.info("replication")["master_port"] == new
        assert replica.execute_command("READONLY") and replica.get(key) == b"acknowledged"


def test_a_durable_node_restarts_with_every_acknowledged_write(make_redis_cluster: MakeCluster,
                                                               key_prefix: str) -> None:
    cluster = make_redis_cluster(primaries=1, durable=True)
    port = cluster.nodes[0].port
    with cluster.cluster_client() as client:
        client.set(f"{key_prefix}a".encode(), b"1")

    cluster.kill(port)
    cluster.restart(port)

    with cluster.cluster_client() as client:
        assert client.get(f"{key_prefix}a".encode()) == b"1"


def test_migrate_slot_moves_the_keys_and_clients_follow_the_redirections(make_redis_cluster: MakeCluster,
                                                                          key_prefix: str) -> None:
    cluster = make_redis_cluster()
    keys = [f"{{{key_prefix}group}}:{i}".encode() for i in range(250)]  # one slot, more than one batch
    slot = key_slot(keys[0])
    source = cluster.primary_for_slot(slot)
    target = next(n.port for n in cluster.nodes if n.port != source)
    client = cluster.cluster_client()  # its slot map still names the source after the move
    for key in keys:
        client.set(key, key)

    asked: list[tuple[int, tuple[str, int]]] = []

    def while_migrating() -> None:
        with cluster.client(source) as node:
            with pytest.raises(AskError) as refused:
                node.get(keys[0])  # moved already: the source sends clients to the target for this one request
            assert type(refused.value) is AskError  # not its subclass MovedError: the source still owns the slot
            asked.append((refused.value.slot_id, refused.value.node_addr))
        assert client.get(keys[0]) == keys[0]  # the cluster client follows ASK

    cluster.migrate_slot(slot, target, batch=100, between=while_migrating)

    assert asked == [(slot, ("127.0.0.1", target))]
    assert cluster.primary_for_slot(slot) == target
    with cluster.client(target) as node:
        assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)
    with cluster.client(source) as node:
        assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        with pytest.raises(MovedError) as moved:
            node.get(keys[0])
        assert (moved.value.slot_id, moved.value.node_addr) == (slot, ("127.0.0.1", target))
    assert [client.get(key) for key in keys] == keys  # MOVED: the client refreshes its map and finds them
    client.close()


def test_a_node_that_fails_to_start_is_named_and_no_process_is_left(tmp_path: Path) -> None:
    binary = tmp_path / "redis-server"  # node 2 exits at once; the others are real nodes
    binary.write_text(f'#!/bin/sh\ncase "$*" in *node-2*) exit 3 ;; esac\nexec {redis_server_binary()} "$@"\n')
    binary.chmod(0o755)
    cluster = BenchRedisCluster(tmp_path / "cluster", binary=str(binary))

    with pytest.raises(RuntimeError, match=r"node 2 \(127\.0\.0\.1:\d+, started as primary\) exited with status 3"):
        cluster.start()

    assert (tmp_path / "cluster" / "node-0" / "nodes.conf").exists()  # nodes 0 and 1 did run
    assert (tmp_path / "cluster" / "node-1" / "nodes.conf").exists()
    assert processes_working_in(tmp_path / "cluster") == []


def processes_working_in(folder: Path) -> list[int]:
    """Pids of processes whose working directory is in ``folder`` (redis-server rewrites its command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
