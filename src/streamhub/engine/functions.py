"""Who answers a function id: a builtin coroutine of the engine, or a connected worker.

The registry also keeps what a function was registered with (description, formats, metadata) for the
introspection builtins, and calls ``on_change`` whenever the set of function ids may have changed (the engine
fires ``engine::functions-available`` from it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streamhub.errors import FunctionNotFound
from streamhub.protocol.worker_messages import WorkerMessage

__all__ = ["NO_RESULT", "Builtin", "FunctionEntry", "FunctionMeta", "FunctionRegistry", "WorkerLink"]

Builtin = Callable[[Any], Awaitable[Any]]


class _NoResult:
    """A function that answered without a value (the ``result`` key is omitted on the wire)."""

    def __repr__(self) -> str:
        return "NO_RESULT"


NO_RESULT: Any = _NoResult()


class WorkerLink(Protocol):
    """The engine's handle on one connected worker."""

    worker_id: str

    def send(self, message: WorkerMessage) -> None:
        """Queue a message to the worker (never blocks)."""


@dataclass(frozen=True, slots=True)
class FunctionMeta:
    """What a function was registered with (``registerfunction`` fields), as given."""

    description: str | None = None
    request_format: Any = None
    response_format: Any = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class FunctionEntry:
    """One function id as the introspection builtins list it."""

    function_id: str
    worker: WorkerLink | None  # None: the engine answers it (a builtin)
    meta: FunctionMeta


_NO_META = FunctionMeta()


class FunctionRegistry:
    """Function ids -> builtin handlers or owning workers. A later registration replaces an earlier one."""

    def __init__(self) -> None:
        self._builtins: dict[str, tuple[Builtin, FunctionMeta, bool]] = {}
        self._remote: dict[str, tuple[WorkerLink, FunctionMeta]] = {}
        self.on_change: Callable[[], None] | None = None

    def add_builtin(self, function_id: str, handler: Builtin, meta: FunctionMeta | None = None, *,
                    listed: bool = True) -> None:
        """Register an engine-side function; ``listed=False`` keeps an alias out of ``engine::functions::list``."""
        self._builtins[function_id] = (handler, meta or _NO_META, listed)

    def add_remote(self, function_id: str, worker: WorkerLink, meta: FunctionMeta | None = None) -> None:
        """Register a function that ``worker`` runs."""
        self._remote[function_id] = (worker, meta or _NO_META)
        self._changed()

    def remove_remote(self, function_id: str, worker: WorkerLink) -> None:
        """Unregister, but only if ``worker`` still owns the id (a newer owner keeps it)."""
        entry = self._remote.get(function_id)
        if entry is not None and entry[0] is worker:
            del self._remote[function_id]
            self._changed()

    def drop_worker(self, worker: WorkerLink) -> list[str]:
        """Unregister every function of a disconnected worker; returns their ids."""
        gone = [fid for fid, (owner, _) in self._remote.items() if owner is worker]
        for function_id in gone:
            del self._remote[function_id]
        if gone:
            self._changed()
        return gone

    def resolve(self, function_id: str) -> Builtin | WorkerLink:
        """Return the handler for ``function_id``; workers shadow builtins (custom overrides).

        Raises:
            FunctionNotFound: nothing answers to that id.
        """
        remote = self._remote.get(function_id)
        if remote is not None:
            return remote[0]
        builtin = self._builtins.get(function_id)
        if builtin is not None:
            return builtin[0]
        raise FunctionNotFound(function_id)

    def remote(self) -> dict[str, WorkerLink]:
        """Every worker-served function id and its worker (a copy; for the admin console)."""
        return {function_id: worker for function_id, (worker, _) in self._remote.items()}

    def builtin_ids(self) -> list[str]:
        """The ids the engine itself answers."""
        return list(self._builtins)

    def is_builtin(self, function_id: str) -> bool:
        """True if the engine itself answers ``function_id`` (no worker shadows it)."""
        return function_id in self._builtins and function_id not in self._remote

    def exists(self, function_id: str) -> bool:
        """True if something answers to ``function_id``."""
        return function_id in self._remote or function_id in self._builtins

    def entries(self) -> list[FunctionEntry]:
        """Every listed function id, sorted; a worker's registration shadows a builtin of the same id."""
        found = {fid: FunctionEntry(fid, None, meta) for fid, (_, meta, listed) in self._builtins.items() if listed}
        found.update((fid, FunctionEntry(fid, worker, meta)) for fid, (worker, meta) in self._remote.items())
        return [found[fid] for fid in sorted(found)]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
