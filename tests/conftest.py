"""Shared fixtures: an engine serving real sockets on free ports, inside the test's event loop; a redis-server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streamhub.config import AdapterConfig, EngineConfig, StreamModuleConfig
from streamhub.transport.server import Server
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer


def make_config(**stream: object) -> EngineConfig:
    """An in-memory engine config on ephemeral ports; ``stream`` overrides stream module fields."""
    module = replace(StreamModuleConfig(port=0, adapter=AdapterConfig()), **stream)  # type: ignore[arg-type]
    return EngineConfig(port=0, stream=module, invocation_timeout_ms=5000)


@contextlib.asynccontextmanager
async def running(config: EngineConfig | None = None) -> AsyncIterator[Server]:
    """An engine serving real sockets for the duration of the block (in-memory, free ports by default)."""
    srv = Server(config or make_config())
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with running() as srv:
        yield srv


def worker_url(srv: Server) -> str:
    return f"ws://127.0.0.1:{srv.worker_port}/"


def stream_url(srv: Server) -> str:
    return f"ws://127.0.0.1:{srv.stream_port}/"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix (``key_prefix``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One 3-primary Redis Cluster for the session (no replicas, nothing persisted); tests keep apart by key prefix.

    Started only by the first test that asks for it. Tests that kill, restart or move slots make their own
    (``make_redis_cluster``), so this one stays as every other test expects it.
    """
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_redis_cluster(tmp_path: Path) -> Iterator[Callable[..., RedisCluster]]:
    """Starts a cluster of the test's own (``RedisCluster`` options: replicas, durable, ...); all stopped after."""
    started: list[RedisCluster] = []

    def make(**options: Any) -> RedisCluster:
        cluster = RedisCluster(tmp_path / f"redis-cluster-{len(started)}", **options)
        started.append(cluster)
        cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in started:
            cluster.stop()


@pytest.fixture(params=["redis", pytest.param("redis-cluster", marks=pytest.mark.redis_cluster)])
def redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of the session's Redis server, then of its 3-primary Redis Cluster: tests taking it hold on both."""
    server = request.getfixturevalue("redis_cluster" if request.param == "redis-cluster" else "redis_server")
    url: str = server.url
    return url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}:"
