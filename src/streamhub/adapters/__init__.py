"""Storage adapters behind one interface (``base.StreamAdapter``), chosen by the config's adapter class."""

from __future__ import annotations

from streamhub.adapters.base import StreamAdapter
from streamhub.config import KV_STORE, AdapterConfig
from streamhub.errors import ConfigError

__all__ = ["build_adapter"]


def build_adapter(config: AdapterConfig) -> StreamAdapter:
    """Instantiate the adapter a config names (imports only the backend it needs)."""
    if config.class_name == KV_STORE:
        if config.store_method == "file_based":
            from streamhub.adapters.file import FileAdapter

            return FileAdapter(config.file_path)
        from streamhub.adapters.memory import MemoryAdapter

        return MemoryAdapter()
    raise ConfigError(f"adapter class {config.class_name} is not available in this build")
