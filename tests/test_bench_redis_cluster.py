"""The bench's ``redis-cluster`` adapter spec, up to the engine: a private cluster for the run, the config naming it,
the per-engine key cleanup, and nothing left running afterwards.

No engine is started: the engine's Redis adapter does not take ``redis+cluster://`` URLs yet.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
import redis.cluster
from bench import servers
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.redis_cluster


def test_a_bare_redis_cluster_spec_runs_a_private_cluster_for_the_block(tmp_path: Path) -> None:
    with servers.private_stores(["memory", "redis-cluster"]):
        block = servers.adapter_yaml("redis-cluster", tmp_path, "bench-t:")
        found = re.fullmatch(r'class: modules::stream::adapters::RedisAdapter\nconfig: \{redis_url: '
                             r'"redis\+cluster://127\.0\.0\.1:(\d+)", key_prefix: "bench-t:"\}', block)
        assert found is not None, block
        port = int(found[1])
        with redis.Redis(port=port, decode_responses=True) as node:
            assert "cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
            assert len(node.execute_command("CLUSTER", "NODES").splitlines()) == 3
        with redis.cluster.RedisCluster(host="127.0.0.1", port=port) as client:
            keys = [f"bench-t:{i}".encode() for i in range(50)]  # over every primary
            for key in keys:
                client.set(key, b"1")
            client.set(b"other:1", b"1")
            servers._redis_cleanup(servers.store_url("redis-cluster"), "bench-t:", cluster=True)()
            assert [client.get(key) for key in keys] == [None] * len(keys)
            assert client.get(b"other:1") == b"1"  # another run's prefix is left alone

    with pytest.raises(redis.ConnectionError):  # the cluster is gone
        redis.Redis(port=port, retry=Retry(NoBackoff(), 0)).ping()
    with pytest.raises(RuntimeError, match="no private cluster runs"):
        servers.adapter_yaml("redis-cluster", tmp_path)


def test_adapter_specs_are_checked_before_anything_starts() -> None:
    for spec in ("memory", "file", "memory+admin", "redis=redis://127.0.0.1:6379", "redis-cluster",
                 "redis-cluster=redis+cluster://127.0.0.1:7000", "redis-cluster+admin"):
        servers.check_spec(spec)
    for spec in ("redis", "redis-clusters", "postgres=postgres://x"):
        with pytest.raises(ValueError, match="expected memory, file, redis=URL, redis-cluster"):
            servers.check_spec(spec)
    assert servers.store_url("redis-cluster=redis+cluster://127.0.0.1:7000") == "redis+cluster://127.0.0.1:7000"
