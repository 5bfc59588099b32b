"""The engine's registries as the rows iii's introspection functions return (``engine::*::list`` / ``::info``).

One place reads functions, trigger types, bindings and workers, so every introspection answer (and the
``engine::functions-available`` payload) agrees. Owner names follow iii: a worker's functions and trigger types
carry the ``name`` it announced in ``engine::workers::register`` (else the id's first ``::`` segment); what the
engine serves itself is attributed to iii's in-process workers (``iii-engine-functions``, ``iii-stream``,
``iii-http``), which ``engine::workers::list`` also lists, as iii does.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from streamhub import __version__
from streamhub.core.triggers import HTTP, JOIN, LEAVE, STREAM
from streamhub.engine.engine_events import ENGINE_TYPES
from streamhub.engine.functions import FunctionEntry, WorkerLink

if TYPE_CHECKING:
    from streamhub.engine.engine import Engine

__all__ = ["ENGINE_WORKER", "HTTP_WORKER", "STREAM_WORKER", "BindingRow", "Catalog", "FunctionRow", "TypeRow",
           "WorkerRow", "without_none"]

ENGINE_WORKER: Final = "iii-engine-functions"
STREAM_WORKER: Final = "iii-stream"
HTTP_WORKER: Final = "iii-http"
_IN_PROCESS: Final = {
    ENGINE_WORKER: "Engine introspection (engine::*) and the engine's own trigger types.",
    STREAM_WORKER: "Streams: the stream::* functions and the stream, stream:join and stream:leave triggers.",
    HTTP_WORKER: "The REST API: http triggers expose functions as HTTP endpoints.",
}
_BUILTIN_TYPES: Final = {
    STREAM: (STREAM_WORKER, "Fires when an item of a stream changes"),
    JOIN: (STREAM_WORKER, "Fires when a client subscribes to a stream group; may refuse the join"),
    LEAVE: (STREAM_WORKER, "Fires when a client's subscription to a stream group ends"),
    HTTP: (HTTP_WORKER, "Serves a function as an HTTP endpoint"),
}
_SUMMARY_MAX: Final = 80  # characters of config_summary
_TEXT_MAX: Final = 280  # characters of a worker's self-reported name or description


@dataclass(frozen=True, slots=True)
class FunctionRow:
    """A function and the name of the worker that serves it."""

    entry: FunctionEntry
    worker_name: str

    @property
    def function_id(self) -> str:
        return self.entry.function_id

    def summary(self) -> dict[str, Any]:
        """``engine::functions::list`` row."""
        meta = self.entry.meta
        return without_none({"function_id": self.function_id, "worker_name": self.worker_name,
                              "description": meta.description, "metadata": meta.metadata})

    def detail(self, bindings: list[BindingRow]) -> dict[str, Any]:
        """``engine::functions::info`` answer: schemas and the triggers bound to it."""
        meta = self.entry.meta
        return {**without_none({"function_id": self.function_id, "worker_name": self.worker_name,
                                 "description": meta.description, "request_schema": meta.request_format,
                                 "response_schema": meta.response_format, "metadata": meta.metadata}),
                "registered_triggers": [b.ref() for b in bindings if b.function_id == self.function_id]}


@dataclass(frozen=True, slots=True)
class TypeRow:
    """A trigger type and who serves it."""

    id: str
    worker_name: str
    description: str
    configuration_schema: Any = None
    request_schema: Any = None

    def summary(self) -> dict[str, Any]:
        """``engine::triggers::list`` row."""
        return {"id": self.id, "worker_name": self.worker_name, "description": self.description}

    def detail(self, bindings: list[BindingRow]) -> dict[str, Any]:
        """``engine::triggers::info`` answer."""
        return {**self.summary(), **without_none({"configuration_schema": self.configuration_schema,
                                                   "request_schema": self.request_schema}),
                "instance_count": sum(b.trigger_type == self.id for b in bindings)}


@dataclass(frozen=True, slots=True)
class BindingRow:
    """A live trigger: one binding of a function to a trigger type."""

    id: str
    trigger_type: str
    function_id: str
    config: Any
    metadata: Any = None

    def ref(self) -> dict[str, Any]:
        """The short form inside a function's detail."""
        return {"id": self.id, "trigger_type": self.trigger_type, "config": self.config}

    def summary(self, worker_name: str) -> dict[str, Any]:
        """``engine::registered-triggers::list`` row; ``worker_name`` serves the bound function."""
        return {"id": self.id, "trigger_type": self.trigger_type, "function_id": self.function_id,
                "worker_name": worker_name, "config": self.config, "config_summary": config_summary(self.config)}


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A connected worker (``link`` set) or one of the engine's in-process workers."""

    id: str
    name: str | None
    description: str | None
    version: str | None
    runtime: str | None
    os: str | None
    status: str
    connected_at_ms: int
    active_invocations: int
    isolation: str | None
    ip_address: str | None
    function_ids: tuple[str, ...]
    link: WorkerLink | None = None
    pid: int | None = None

    def summary(self) -> dict[str, Any]:
        """``engine::workers::list`` row."""
        return {"name": self.name, "description": self.description, "version": self.version, "id": self.id,
                "runtime": self.runtime, "os": self.os, "status": self.status,
                "function_count": len(self.function_ids), "connected_at_ms": self.connected_at_ms,
                "active_invocations": self.active_invocations, "isolation": self.isolation,
                "ip_address": self.ip_address}

    def envelope(self) -> dict[str, Any]:
        """The ``worker`` object of ``engine::workers::info``."""
        return {**self.summary(), **without_none({"pid": self.pid}), "internal": self.link is None}


class Catalog:
    """Reads the engine's registries into rows; built per question, never cached."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._started_ms = _now_ms()

    def functions(self) -> list[FunctionRow]:
        """Every listed function, sorted by id."""
        names = self._worker_names()
        return [FunctionRow(entry, self._owner_of(entry, names)) for entry in self._engine.functions.entries()]

    def trigger_types(self) -> list[TypeRow]:
        """Built-in, engine and worker-defined trigger types, sorted by id."""
        rows = [TypeRow(kind, owner, text) for kind, (owner, text) in _BUILTIN_TYPES.items()]
        rows += [TypeRow(kind, ENGINE_WORKER, text) for kind, text in ENGINE_TYPES.items()]
        names = self._worker_names()
        for provider in self._engine.trigger_types.providers():
            owner = names.get(provider.worker.worker_id) or _first_segment(provider.type_id)
            rows.append(TypeRow(provider.type_id, owner, provider.description or "",
                                provider.trigger_request_format, provider.call_request_format))
        return sorted(rows, key=lambda row: row.id)

    def bindings(self) -> list[BindingRow]:
        """Every live trigger (built-in types, engine types, forwarded worker-defined types), sorted by id."""
        rows = [BindingRow(t.id, t.type, t.function_id, t.config)
                for kind in _BUILTIN_TYPES for t in self._engine.triggers.of_type(kind)]
        messages = [b.message for b in self._engine.trigger_types.live()]
        messages += [b.message for b in self._engine.events.bindings()]
        rows += [BindingRow(m.id, m.trigger_type, m.function_id, {} if m.config is None else m.config, m.metadata)
                 for m in messages]
        return sorted(rows, key=lambda row: row.id)

    def workers(self) -> list[WorkerRow]:
        """Connected workers and the in-process ones, sorted by name (id when unnamed), then id."""
        functions = self.functions()
        rows = [self._in_process(name, text, functions) for name, text in _IN_PROCESS.items()]
        sessions = self._engine.workers
        for worker_id, record in sessions.connected_workers.items():
            about = sessions.descriptions.get(worker_id, {})
            rows.append(WorkerRow(
                id=worker_id, name=_text(about.get("name")), description=_text(about.get("description")),
                version=_str(about.get("version")), runtime=_str(about.get("runtime")), os=_str(about.get("os")),
                status="connected", connected_at_ms=record.connected_at_ms,
                active_invocations=self._engine.invocations.in_flight(record.worker),
                isolation=_str(about.get("isolation")), ip_address=record.ip_address,
                function_ids=tuple(f.function_id for f in functions if f.entry.worker is record.worker),
                link=record.worker, pid=_int(about.get("pid"))))
        return sorted(rows, key=lambda row: (row.name or row.id, row.id))

    @staticmethod
    def worker_name_of(function_id: str, owners: dict[str, str]) -> str:
        """Who serves ``function_id``, from ``owner_names``; the id's first segment when nothing does (as iii)."""
        return owners.get(function_id) or _first_segment(function_id)

    @staticmethod
    def owner_names(functions: list[FunctionRow]) -> dict[str, str]:
        """Function id -> the name of the worker serving it."""
        return {row.function_id: row.worker_name for row in functions}

    def _in_process(self, name: str, text: str, functions: list[FunctionRow]) -> WorkerRow:
        return WorkerRow(id=name, name=name, description=text, version=__version__, runtime="engine", os=None,
                         status="available", connected_at_ms=self._started_ms, active_invocations=0,
                         isolation="in-process", ip_address=None,
                         function_ids=tuple(f.function_id for f in functions
                                            if f.entry.worker is None and f.worker_name == name))

    def _worker_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for worker_id, about in self._engine.workers.descriptions.items():
            if (name := _text(about.get("name"))) is not None:
                names[worker_id] = name
        return names

    @staticmethod
    def _owner_of(entry: FunctionEntry, names: dict[str, str]) -> str:
        if entry.worker is None:
            return ENGINE_WORKER if entry.function_id.startswith("engine::") else STREAM_WORKER
        return names.get(entry.worker.worker_id) or _first_segment(entry.function_id)


def config_summary(config: Any) -> str:
    """Compact JSON of a trigger config, cut to 80 characters (then ``…``): for display, not for parsing."""
    text = orjson.dumps(config, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= _SUMMARY_MAX else text[:_SUMMARY_MAX] + "…"


def _first_segment(text: str) -> str:
    return text.split("::", 1)[0]


def _now_ms() -> int:
    return int(time.time() * 1000)


def without_none(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that have a value (iii omits absent optional fields)."""
    return {key: value for key, value in fields.items() if value is not None}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    """A worker's self-reported text as consoles may show it: no control or bidi-override characters, 280 chars."""
    if not isinstance(value, str):
        return None
    kept = "".join(ch for ch in value if not _unsafe(ch))[:_TEXT_MAX].strip()
    return kept or None


def _unsafe(ch: str) -> bool:
    return (unicodedata.category(ch) == "Cc" or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069"
            or ch in "\u2028\u2029")
