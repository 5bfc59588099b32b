"""Which adapter class a config's ``adapter.class`` names, and how to build it.

Why a registry: the transport only binds ports, so it should not know every backend; a new adapter registers
its factory here (and passes ``tests/adapters/test_contract.py``). Factories import their backend lazily, so an
engine on the embedded store never loads the Redis client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.cluster import ClusterBus
from streamhub.adapters.presence import MemoryPresence, PresenceStore
from streamhub.config import KV_STORE, REDIS_ADAPTER, AdapterConfig
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.positions import LogLimits
from streamhub.errors import ConfigError

if TYPE_CHECKING:  # the Redis modules load only when a Redis adapter is configured
    from streamhub.adapters.redis_pipe import Pipe
    from streamhub.adapters.redis_shards import ShardedPipe

__all__ = ["ADAPTERS", "PRESENCE", "AdapterFactory", "PresenceFactory", "build_adapter", "build_cluster",
           "build_presence", "memory_adapter"]

AdapterFactory = Callable[[AdapterConfig, Metrics], StreamAdapter]
PresenceFactory = Callable[[AdapterConfig, float, StreamAdapter | None], PresenceStore]
"""(adapter config, lease in seconds, the adapter built from that config if any) -> the presence store that goes
with that adapter class (it may share the adapter's connection)."""


def _limits(config: AdapterConfig) -> LogLimits:
    return LogLimits(size=config.change_log_size, age=config.change_log_age_ms / 1000)


def _kv_store(config: AdapterConfig, metrics: Metrics) -> StreamAdapter:
    if config.store_method == "file_based":
        from streamhub.adapters.file import FileAdapter

        return FileAdapter(config.file_path, limits=_limits(config), metrics=metrics)
    from streamhub.adapters.memory import MemoryAdapter

    return MemoryAdapter(_limits(config))


def _redis(config: AdapterConfig, metrics: Metrics) -> StreamAdapter:
    from streamhub.adapters.redis import RedisAdapter

    return RedisAdapter(config.redis_url, config.key_prefix, limits=_limits(config), metrics=metrics,
                        durable_replicas=config.durable_replicas)


ADAPTERS: dict[str, AdapterFactory] = {KV_STORE: _kv_store, REDIS_ADAPTER: _redis}
"""Adapter class name (as written in config.yaml) -> factory."""


def _memory_presence(config: AdapterConfig, ttl: float, adapter: StreamAdapter | None) -> PresenceStore:
    return MemoryPresence()


def _redis_presence(config: AdapterConfig, ttl: float, adapter: StreamAdapter | None) -> PresenceStore:
    """Presence on the adapter's pipe, so presence writes share its round trips (a pipe of its own without it)."""
    from streamhub.adapters.redis_pipe import Pipe
    from streamhub.adapters.redis_presence import RedisPresence
    from streamhub.adapters.redis_presence_cluster import ClusterPresence
    from streamhub.adapters.redis_shards import ShardedPipe

    pipe = _adapter_pipe(adapter)
    if config.is_cluster:
        return ClusterPresence(config.redis_url, config.key_prefix, ttl=ttl,
                               pipe=pipe if isinstance(pipe, ShardedPipe) else None)
    return RedisPresence(config.redis_url, config.key_prefix, ttl=ttl, pipe=pipe if isinstance(pipe, Pipe) else None)


def _adapter_pipe(adapter: StreamAdapter | None) -> Pipe | ShardedPipe | None:
    """The Redis adapter's pipe (a single server's or a cluster's router), to share; None for another adapter."""
    from streamhub.adapters.redis import RedisAdapter

    return adapter.pipe if isinstance(adapter, RedisAdapter) else None


PRESENCE: dict[str, PresenceFactory] = {KV_STORE: _memory_presence, REDIS_ADAPTER: _redis_presence}
"""Adapter class name -> the presence store its engines share (embedded stores: this engine's memory)."""


def build_presence(config: AdapterConfig, ttl: float, adapter: StreamAdapter | None = None) -> PresenceStore:
    """The presence store for the adapter class a config names (memory for a class without one); ``adapter`` is
    the one ``build_adapter`` made from the same config, whose connection the presence store may share. The
    engine closes presence before the adapter, so a shared connection outlives every presence command."""
    return PRESENCE.get(config.class_name, _memory_presence)(config, ttl, adapter)


def build_cluster(config: AdapterConfig, adapter: StreamAdapter | None = None) -> ClusterBus | None:
    """The bus linking the engines of a distributed store (Redis); None for embedded stores (one engine).
    ``adapter``: the one ``build_adapter`` made from the same config, whose pipe the bus shares (the engine closes
    the bus before the adapter)."""
    if config.class_name != REDIS_ADAPTER:
        return None
    from streamhub.adapters.redis_cluster import RedisClusterBus

    return RedisClusterBus(config.redis_url, config.key_prefix, pipe=_adapter_pipe(adapter))


def build_adapter(config: AdapterConfig, metrics: Metrics = NULL_METRICS) -> StreamAdapter:
    """Instantiate the adapter a config names, reporting to ``metrics``.

    Raises:
        ConfigError: no factory is registered under ``config.class_name``.
    """
    factory = ADAPTERS.get(config.class_name)
    if factory is None:
        raise ConfigError(f"adapter class {config.class_name} is not available in this build "
                          f"(available: {', '.join(sorted(ADAPTERS))})")
    return factory(config, metrics)


def memory_adapter() -> StreamAdapter:
    """The store of an engine without a stream module: nothing is stored, but the stream functions still answer."""
    from streamhub.adapters.memory import MemoryAdapter

    return MemoryAdapter()
