"""Who answers a function id: a builtin coroutine of the engine, or a connected worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streamhub.errors import FunctionNotFound
from streamhub.protocol.worker_messages import WorkerMessage

__all__ = ["NO_RESULT", "Builtin", "FunctionRegistry", "WorkerLink"]

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


class FunctionRegistry:
    """Function ids -> builtin handlers or owning workers. A later registration replaces an earlier one."""

    def __init__(self) -> None:
        self._builtins: dict[str, Builtin] = {}
        self._remote: dict[str, WorkerLink] = {}

    def add_builtin(self, function_id: str, handler: Builtin) -> None:
        """Register an engine-side function."""
        self._builtins[function_id] = handler

    def add_remote(self, function_id: str, worker: WorkerLink) -> None:
        """Register a function that ``worker`` runs."""
        self._remote[function_id] = worker

    def remove_remote(self, function_id: str, worker: WorkerLink) -> None:
        """Unregister, but only if ``worker`` still owns the id (a newer owner keeps it)."""
        if self._remote.get(function_id) is worker:
            del self._remote[function_id]

    def drop_worker(self, worker: WorkerLink) -> list[str]:
        """Unregister every function of a disconnected worker; returns their ids."""
        gone = [fid for fid, owner in self._remote.items() if owner is worker]
        for function_id in gone:
            del self._remote[function_id]
        return gone

    def resolve(self, function_id: str) -> Builtin | WorkerLink:
        """Return the handler for ``function_id``; workers shadow builtins (custom overrides).

        Raises:
            FunctionNotFound: nothing answers to that id.
        """
        worker = self._remote.get(function_id)
        if worker is not None:
            return worker
        builtin = self._builtins.get(function_id)
        if builtin is not None:
            return builtin
        raise FunctionNotFound(function_id)

    def remote(self) -> dict[str, WorkerLink]:
        """Every worker-served function id and its worker (a copy; for the admin console)."""
        return dict(self._remote)

    def builtin_ids(self) -> list[str]:
        """The ids the engine itself answers."""
        return list(self._builtins)

    def is_builtin(self, function_id: str) -> bool:
        """True if the engine itself answers ``function_id`` (no worker shadows it)."""
        return function_id in self._builtins and function_id not in self._remote

    def exists(self, function_id: str) -> bool:
        """True if something answers to ``function_id``."""
        return function_id in self._remote or function_id in self._builtins
