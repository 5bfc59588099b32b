"""The layering rules hold: pure layers import no I/O library and nothing from the layers above them."""

from __future__ import annotations

import subprocess
import sys

import pytest

LAYERS = {
    # module imported -> prefixes that must not be loaded as a consequence
    "streamhub.core.update_ops": [
        "aiohttp",
        "redis",
        "streamhub.engine",
        "streamhub.transport",
        "streamhub.adapters",
        "streamhub.protocol",
    ],
    "streamhub.core.values": [
        "aiohttp", "redis", "orjson", "streamhub.engine", "streamhub.transport", "streamhub.adapters",
        "streamhub.protocol",
    ],
    "streamhub.core.triggers": ["aiohttp", "redis", "streamhub.engine", "streamhub.transport", "streamhub.adapters"],
    "streamhub.protocol.client_session": [
        "aiohttp",
        "redis",
        "streamhub.engine",
        "streamhub.transport",
        "streamhub.adapters",
    ],
    "streamhub.protocol.worker_messages": ["aiohttp", "redis", "streamhub.engine", "streamhub.transport"],
    "streamhub.adapters.file": ["aiohttp", "redis", "streamhub.engine", "streamhub.transport", "streamhub.protocol"],
    "streamhub.engine.engine": ["aiohttp", "redis", "streamhub.transport"],
    # workers.py names what it needs of the engine (WorkerHost) instead of importing it: no import cycle
    "streamhub.engine.workers": ["aiohttp", "redis", "streamhub.engine.engine", "streamhub.transport"],
    # the metrics seam is called from every layer, so it imports none of them
    "streamhub.core.metrics": ["aiohttp", "redis", "streamhub.engine", "streamhub.transport", "streamhub.adapters",
                               "streamhub.protocol"],
    # the adapter registry loads a backend only when a config names it
    "streamhub.adapters.registry": ["aiohttp", "redis", "streamhub.adapters.redis", "streamhub.adapters.file",
                                    "streamhub.engine", "streamhub.transport"],
    # the Redis client stays inside adapters/redis.py: its helpers and the engine never load it
    "streamhub.adapters.pubsub": ["aiohttp", "redis", "streamhub.engine", "streamhub.transport", "streamhub.protocol"],
    "streamhub.adapters.keys": ["redis", "streamhub.engine", "streamhub.transport", "streamhub.protocol"],
    "streamhub.adapters.redis": ["aiohttp", "streamhub.engine", "streamhub.transport", "streamhub.protocol"],
    "streamhub.adapters.redis_presence": ["aiohttp", "streamhub.engine", "streamhub.transport", "streamhub.protocol"],
    "streamhub.adapters.presence": ["aiohttp", "redis", "streamhub.engine", "streamhub.transport",
                                    "streamhub.protocol"],
    "streamhub.adapters.redis_pipe": ["aiohttp", "streamhub.engine", "streamhub.transport", "streamhub.protocol"],
    # The SDK runs in worker processes: protocol, errors and update ops only, never the server.
    "streamhub.sdk": ["redis", "streamhub.engine", "streamhub.transport", "streamhub.adapters", "streamhub.config"],
}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_module_does_not_pull_in_higher_layers(module: str) -> None:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    offending = [
        name for name in loaded for banned in LAYERS[module] if name == banned or name.startswith(banned + ".")
    ]
    assert offending == [], f"{module} loads {offending}"
