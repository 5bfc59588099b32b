"""Triggers of every engine in every engine's ``TriggerIndex``: what makes auth, guards, routes and ``stream``
triggers cluster-wide.

Why replicate instead of asking around: the paths that use triggers (a write's ``stream`` triggers, a join's
guards, an HTTP request's route) stay local lookups; only the function call is routed (``engine/cluster.py``).
Each engine announces the triggers its own workers registered; the others add them to their index with a
``RemoteOwner`` (never equal to a worker id, so a local worker's disconnect never drops them) and remove them
when the announcement changes or the engine's lease runs out. A ``stream`` trigger therefore fires on the
engine that handled the write, once, whichever engine its worker is connected to.

Join guards fail closed across engines too: when an engine dies, the claim moves its guards to the orphaned
guards (``ClusterView.orphans``), which every engine keeps in force (owner ``None``, as a local orphan) until a
worker registers the same guard again (``TriggerIndex`` replaces orphans) or someone unregisters it by id.

A trigger id registered locally wins over a remote one of the same id; a remote ``http`` route that conflicts
with a local one is refused (logged once).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamhub.core.triggers import JOIN, Trigger, TriggerIndex
from streamhub.errors import StreamhubError

__all__ = ["RemoteOwner", "TriggerReplica"]

log = logging.getLogger(__name__)

_Signature = tuple[Hashable, str, str, bytes]  # owner, type, function id, config JSON


@dataclass(frozen=True, slots=True)
class RemoteOwner:
    """The owner of a trigger registered through another engine."""

    engine_id: str


class TriggerReplica:
    """Keeps the remote triggers in one engine's index in line with the other engines' announcements."""

    def __init__(self, index: TriggerIndex) -> None:
        self._index = index
        self._applied: dict[str, tuple[Trigger, _Signature]] = {}  # remote trigger id -> what was added
        self._skipped: dict[str, _Signature] = {}  # refused or unregistered here: not added again while unchanged
        self._orphans: set[str] = set()  # orphaned guard ids of the last view
        self._garbage: set[tuple[str, bytes]] = set()  # undecodable (id, JSON) already logged
        self.dropped: set[str] = set()  # orphaned guards unregistered or replaced here: dropped at the next announce

    def local(self) -> dict[str, list[str]]:
        """This engine's own triggers, as announced: id -> [type, trigger JSON]."""
        found: dict[str, list[str]] = {}
        for trigger in self._index.all():
            applied = self._applied.get(trigger.id)
            if applied is None or applied[0] is not trigger:
                found[trigger.id] = [trigger.type, _encode(trigger)]
        return found

    def apply(self, peers: Mapping[str, Mapping[str, Any]], orphans: Mapping[str, bytes]) -> None:
        """Make the index hold exactly the peers' triggers and the orphaned guards (local ids win)."""
        wanted = _wanted(peers, orphans, self._garbage)
        self._orphans = set(orphans)
        self._forget_vanished()
        for trigger_id, (_, signature) in list(self._applied.items()):
            if wanted.get(trigger_id, (None, None))[0] != signature:
                del self._applied[trigger_id]
                self._index.remove(trigger_id)
        for trigger_id, (signature, config) in wanted.items():
            if trigger_id in self._applied or self._skipped.get(trigger_id) == signature:
                continue
            if self._index.get(trigger_id) is not None:
                continue  # registered through this engine: local wins
            self._add(trigger_id, signature, config)
        self._skipped = {tid: sig for tid, sig in self._skipped.items() if wanted.get(tid, (None,))[0] == sig}

    def _add(self, trigger_id: str, signature: _Signature, config: Any) -> None:
        owner, kind, function_id, _ = signature
        try:
            trigger = self._index.add(trigger_id, kind, function_id, config, owner)
        except StreamhubError as exc:
            self._skipped[trigger_id] = signature
            log.warning("trigger %s of another engine not applied here: %s", trigger_id, exc.message)
            return
        self._applied[trigger_id] = (trigger, signature)

    def _forget_vanished(self) -> None:
        """Remote triggers this engine removed (unregistered by id, or orphans replaced) stay removed."""
        for trigger_id, (trigger, signature) in list(self._applied.items()):
            if self._index.get(trigger_id) is not trigger:
                del self._applied[trigger_id]
                self._skipped[trigger_id] = signature
                if trigger_id in self._orphans:
                    self.dropped.add(trigger_id)

    def vanished(self) -> None:
        """Called before announcing: note what was removed here since the last view."""
        self._forget_vanished()


def _wanted(peers: Mapping[str, Mapping[str, Any]], orphans: Mapping[str, bytes],
            garbage: set[tuple[str, bytes]]) -> dict[str, tuple[_Signature, Any]]:
    wanted: dict[str, tuple[_Signature, Any]] = {}
    for guard_id, raw in orphans.items():
        entry = _decode(guard_id, None, JOIN, raw, garbage)
        if entry is not None:
            wanted[guard_id] = entry
    for engine_id in sorted(peers):
        triggers = peers[engine_id].get("triggers")
        for trigger_id, item in (triggers.items() if isinstance(triggers, dict) else ()):
            if isinstance(item, list) and len(item) == 2 and isinstance(item[1], str):
                entry = _decode(trigger_id, RemoteOwner(engine_id), str(item[0]), item[1].encode(), garbage)
                if entry is not None:
                    wanted[trigger_id] = entry
    return wanted


def _decode(trigger_id: str, owner: Hashable, kind: str, raw: bytes,
            garbage: set[tuple[str, bytes]]) -> tuple[_Signature, Any] | None:
    try:
        data = orjson.loads(raw)
        function_id = str(data["function_id"])
        config = data.get("config")
    except (ValueError, KeyError, TypeError, AttributeError):
        if (trigger_id, raw) not in garbage:  # announced again at every renewal: one line is enough
            garbage.add((trigger_id, raw))
            log.error("dropping an undecodable trigger %s announced by another engine", trigger_id)
        return None
    return (owner, kind, function_id, orjson.dumps(config)), config


def _encode(trigger: Trigger) -> str:
    return orjson.dumps({"function_id": trigger.function_id, "config": trigger.config}).decode()
