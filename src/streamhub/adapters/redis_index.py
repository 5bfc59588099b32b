"""The stream and group indexes on a Redis Cluster, kept beside the writes rather than inside them.

Why: ``list_groups`` and ``list_all`` read two indexes (``g:<stream>``, ``streams``) so they never scan. On a single
server the write scripts keep them atomically; on a cluster those keys live in other slots than the group's, so a
script cannot touch them. Instead:

* A write script reports ``unindexed`` while the group's position hash lacks its ``indexed`` mark; the adapter
  then adds the group to ``g:<stream>`` and the stream to ``streams``, and only then sets the mark. A crash in
  between leaves the mark unset, so the group's next write repairs the index.
* A delete that empties a group clears the mark in its script and reports ``emptied``; the adapter removes the
  group from ``g:<stream>`` (and the stream from ``streams`` once it has no group), then looks again: a group
  (or stream) that got a new item meanwhile is put back, so a concurrent create on another engine is never left
  out of the index. A crash in between can leave an empty group listed until its next write.
"""

from __future__ import annotations

from typing import Any, Protocol

from streamhub.adapters.keys import RedisKeys, encode_name
from streamhub.adapters.redis_pipe import Packed, Script

__all__ = ["GroupIndex"]


class _Commands(Protocol):
    async def call(self, *args: bytes | str | int | Packed) -> Any: ...
    async def run(self, script: Script, keys: list[bytes], args: list[bytes], *, durable: bool = False) -> Any: ...


class GroupIndex:
    """Adds and drops groups in the indexes of a cluster deployment (``keys``) through ``pipe``."""

    def __init__(self, pipe: _Commands, keys: RedisKeys, add_script: Script) -> None:
        self._pipe = pipe
        self._keys = keys
        self._add = add_script

    async def added(self, stream: str, group: str) -> None:
        """The group holds items: list it, then mark it listed."""
        await self._list(stream, group)
        await self._pipe.call(b"HSET", self._keys.position(stream, group), b"indexed", b"1")

    async def emptied(self, stream: str, group: str) -> None:
        """The group lost its last item: unlist it (and its stream once the stream has no group left)."""
        groups = self._keys.groups(stream)
        await self._pipe.call(b"ZREM", groups, encode_name(group))
        if await self._pipe.call(b"HLEN", self._keys.items(stream, group)):
            await self._list(stream, group)  # created again meanwhile: its creator may have listed it before us
            return
        if await self._pipe.call(b"ZCARD", groups):
            return
        await self._pipe.call(b"SREM", self._keys.streams, encode_name(stream))
        if await self._pipe.call(b"ZCARD", groups):  # a group of the stream was listed meanwhile
            await self._pipe.call(b"SADD", self._keys.streams, encode_name(stream))

    async def _list(self, stream: str, group: str) -> None:
        await self._pipe.run(self._add, [self._keys.groups(stream)], [encode_name(group)])
        await self._pipe.call(b"SADD", self._keys.streams, encode_name(stream))
