"""The one aiohttp client session a ``Client`` and its stream subscriber share, and default URLs.

aiohttp wants its session created inside a running event loop, so it is made on first use, not in ``__init__``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import aiohttp

__all__ = ["DEFAULT_STREAM_PORT", "SessionHolder", "default_stream_url"]

DEFAULT_STREAM_PORT = 3112


class SessionHolder:
    """Creates the session lazily and closes it once."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        """The shared session (created on first call, inside the running loop)."""
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        """Close the session if one was created."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


def default_stream_url(worker_url: str) -> str:
    """The stream port on the worker URL's host: ``ws://h:49134`` -> ``ws://h:3112/``."""
    parts = urlsplit(worker_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme or "ws", f"{host}:{DEFAULT_STREAM_PORT}", "/", "", ""))
