"""Engine introspection builtins, with iii's function ids, inputs and result shapes.

``engine::functions::list`` / ``::info``, ``engine::triggers::list`` / ``::info`` (trigger *types*),
``engine::registered-triggers::list`` / ``::info`` (live triggers) and ``engine::workers::list`` / ``::info``:
the set iii-sdk's ``EngineFunctions`` names. Also ``engine::trigger-types::list``, which iii retired for
``triggers::list`` but its Python example worker still calls. Lists hide internal rows unless
``include_internal`` is true: ``engine::*`` functions (and those registered with ``metadata.internal: true``),
``engine::*`` trigger types, triggers bound to ``engine::*`` functions. Filters (``prefix``, ``search``,
``worker``, ...) and error codes (``NOT_FOUND``, ``INVALID_ARGUMENTS``) are iii's.
"""

from __future__ import annotations

from typing import Any, Final

from streamhub.engine.catalog import BindingRow, Catalog, FunctionRow, without_none
from streamhub.engine.functions import Builtin, FunctionMeta
from streamhub.errors import InvalidRequest

__all__ = ["FUNCTION_INFO_BATCH_MAX", "Introspection"]

FUNCTION_INFO_BATCH_MAX: Final = 32
_INVALID: Final = "INVALID_ARGUMENTS"
_NOT_FOUND: Final = "NOT_FOUND"


class _Args:
    """The payload of one introspection call: an object (or nothing), its fields checked by type."""

    def __init__(self, function_id: str, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidRequest(f"{function_id}: the payload must be an object", code=_INVALID)
        self._function_id = function_id
        self._data = data

    def text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{self._function_id}: {key} must be a string", code=_INVALID)
        return value

    def required(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise InvalidRequest(f"{self._function_id}: missing field `{key}`", code=_INVALID)
        return value

    def flag(self, key: str) -> bool:
        value = self._data.get(key)
        if value is not None and not isinstance(value, bool):
            raise InvalidRequest(f"{self._function_id}: {key} must be a boolean", code=_INVALID)
        return bool(value)

    def texts(self, key: str) -> list[str] | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidRequest(f"{self._function_id}: {key} must be an array of strings", code=_INVALID)
        return value


class Introspection:
    """The ``engine::*`` introspection functions over one ``Catalog``."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def builtins(self) -> dict[str, tuple[Builtin, FunctionMeta]]:
        """Function id -> (handler, what ``engine::functions::list`` says about it)."""
        table: dict[str, tuple[Builtin, str]] = {
            "engine::functions::list": (self.functions_list, "List registered functions with their owning worker."),
            "engine::functions::info": (self.functions_info, "Inspect functions: schemas, owner, triggers."),
            "engine::triggers::list": (self.triggers_list, "List trigger types."),
            "engine::triggers::info": (self.triggers_info, "Inspect one trigger type and its live instances."),
            "engine::registered-triggers::list": (self.registered_list, "List registered triggers."),
            "engine::registered-triggers::info": (self.registered_info,
                                                  "Inspect one registered trigger, its type and its function."),
            "engine::workers::list": (self.workers_list, "List connected workers."),
            "engine::workers::info": (self.workers_info,
                                      "Inspect one worker: functions, trigger types, registered triggers."),
            "engine::trigger-types::list": (self.trigger_types_list,
                                            "List trigger types with their formats (legacy id)."),
        }
        return {fid: (handler, FunctionMeta(description=text)) for fid, (handler, text) in table.items()}

    async def functions_list(self, data: Any) -> Any:
        """``{functions: [...]}``, filtered by ``include_internal``, ``prefix``, ``worker``/``workers``, ``search``."""
        args = _Args("engine::functions::list", data)
        include, prefix, search = args.flag("include_internal"), args.text("prefix"), args.text("search")
        wanted = set(args.texts("workers") or []) | ({args.text("worker")} - {None})
        rows = [r for r in self._catalog.functions() if include or not _internal_function(r)]
        if prefix is not None:
            rows = [r for r in rows if r.function_id.startswith(prefix)]
        if wanted:
            rows = [r for r in rows if r.worker_name in wanted]
        if search:
            needle = search.lower()
            rows = [r for r in rows if needle in r.function_id.lower()
                    or needle in (r.entry.meta.description or "").lower()]
            rows.sort(key=lambda r: (_rank(r.function_id, needle), r.function_id))
        return {"functions": [r.summary() for r in rows]}

    async def functions_info(self, data: Any) -> Any:
        """One ``function_id``: its detail; or ``function_ids`` (at most 32): ``{functions: [...]}``."""
        args = _Args("engine::functions::info", data)
        single, many = args.text("function_id"), args.texts("function_ids")
        if (single is None) == (many is None):
            raise InvalidRequest("engine::functions::info: pass either `function_id` or `function_ids`",
                                 code=_INVALID)
        functions = {r.function_id: r for r in self._catalog.functions()}
        bindings = self._catalog.bindings()
        if single is not None:
            if single not in functions:
                raise InvalidRequest(f"Function '{single}' is not registered.", code=_NOT_FOUND)
            return functions[single].detail(bindings)
        ids = list(dict.fromkeys(many or []))
        if not ids or len(ids) > FUNCTION_INFO_BATCH_MAX:
            raise InvalidRequest(f"engine::functions::info: `function_ids` must hold 1 to "
                                 f"{FUNCTION_INFO_BATCH_MAX} function ids", code=_INVALID)
        return {"functions": [functions[fid].detail(bindings) if fid in functions
                              else {"function_id": fid, "error": "not_found"} for fid in ids]}

    async def triggers_list(self, data: Any) -> Any:
        """Trigger types, filtered by ``include_internal``, ``prefix``, ``worker``, ``search``."""
        args = _Args("engine::triggers::list", data)
        include, prefix, worker, search = (args.flag("include_internal"), args.text("prefix"), args.text("worker"),
                                           args.text("search"))
        rows = [r for r in self._catalog.trigger_types() if include or not r.id.startswith("engine::")]
        if prefix is not None:
            rows = [r for r in rows if r.id.startswith(prefix)]
        if worker is not None:
            rows = [r for r in rows if r.worker_name == worker]
        if search:
            rows = [r for r in rows if _matches(search, r.id, r.description)]
        return {"triggers": [r.summary() for r in rows]}

    async def trigger_types_list(self, data: Any) -> Any:
        """``{trigger_types: [...]}``: the retired id and shape, still called by iii's Python example worker."""
        include = _Args("engine::trigger-types::list", data).flag("include_internal")
        return {"trigger_types": [
            {"id": r.id, "description": r.description,
             **without_none({"trigger_request_format": r.configuration_schema,
                              "call_request_format": r.request_schema})}
            for r in self._catalog.trigger_types() if include or not r.id.startswith("engine::")]}

    async def triggers_info(self, data: Any) -> Any:
        """One trigger type (``id``) with its schemas and how many live triggers it has."""
        type_id = _Args("engine::triggers::info", data).required("id")
        for row in self._catalog.trigger_types():
            if row.id == type_id:
                return row.detail(self._catalog.bindings())
        raise InvalidRequest(f"Trigger type '{type_id}' is not registered.", code=_NOT_FOUND)

    async def registered_list(self, data: Any) -> Any:
        """``{registered_triggers: [...]}``, filtered by ``include_internal``, ``trigger_type``, ``function_id``,
        ``worker`` (who serves the bound function) and ``search``."""
        args = _Args("engine::registered-triggers::list", data)
        include, kind, function_id, worker, search = (args.flag("include_internal"), args.text("trigger_type"),
                                                      args.text("function_id"), args.text("worker"),
                                                      args.text("search"))
        owners = self._catalog.owner_names(self._catalog.functions())
        rows = [(b, self._catalog.worker_name_of(b.function_id, owners)) for b in self._catalog.bindings()
                if include or not b.function_id.startswith("engine::")]
        rows = [(b, name) for b, name in rows
                if (kind is None or b.trigger_type == kind) and (function_id is None or b.function_id == function_id)
                and (worker is None or name == worker)
                and (not search or _matches(search, b.id, b.trigger_type, b.function_id))]
        return {"registered_triggers": [b.summary(name) for b, name in rows]}

    async def registered_info(self, data: Any) -> Any:
        """One live trigger (``id``) with its type's and its function's detail (``null`` when gone)."""
        trigger_id = _Args("engine::registered-triggers::info", data).required("id")
        bindings = self._catalog.bindings()
        found = [b for b in bindings if b.id == trigger_id]
        if not found:
            raise InvalidRequest(f"Registered trigger '{trigger_id}' was not found.", code=_NOT_FOUND)
        binding = found[0]
        functions = self._catalog.functions()
        kind = [t.detail(bindings) for t in self._catalog.trigger_types() if t.id == binding.trigger_type]
        function = [f.detail(bindings) for f in functions if f.function_id == binding.function_id]
        owners = self._catalog.owner_names(functions)
        return {"id": binding.id, "trigger_type": binding.trigger_type, "function_id": binding.function_id,
                "worker_name": self._catalog.worker_name_of(binding.function_id, owners),
                "config": binding.config,
                **({"metadata": binding.metadata} if binding.metadata is not None else {}),
                "trigger": kind[0] if kind else None, "function": function[0] if function else None}

    async def workers_list(self, data: Any) -> Any:
        """``{workers: [...]}``, filtered by ``runtime``, ``status`` and ``search`` (in the name)."""
        args = _Args("engine::workers::list", data)
        runtime, status, search = args.text("runtime"), args.text("status"), args.text("search")
        rows = [r for r in self._catalog.workers()
                if (runtime is None or r.runtime == runtime) and (status is None or r.status == status)
                and (not search or _matches(search, r.name or ""))]
        return {"workers": [r.summary() for r in rows]}

    async def workers_info(self, data: Any) -> Any:
        """One worker by ``name``: itself, its functions, the trigger types it serves, the triggers bound to it."""
        name = _Args("engine::workers::info", data).required("name")
        found = [r for r in self._catalog.workers() if r.name == name]
        if not found:
            raise InvalidRequest(f"Worker '{name}' is not connected.", code=_NOT_FOUND)
        worker = found[0]
        mine = set(worker.function_ids)
        functions = [f for f in self._catalog.functions() if f.function_id in mine]
        bindings: list[BindingRow] = [b for b in self._catalog.bindings() if b.function_id in mine]
        return {"worker": worker.envelope(),
                "functions": [f.summary() for f in functions],
                "trigger_types": [t.summary() for t in self._catalog.trigger_types() if t.worker_name == name],
                "registered_triggers": [b.summary(name) for b in bindings]}


def _internal_function(row: FunctionRow) -> bool:
    """Hidden from ``engine::functions::list`` by default: ``engine::*`` (not ``engine::queue::*``) and functions
    registered with ``metadata.internal: true``."""
    fid = row.function_id
    if fid.startswith("engine::") and not fid.startswith("engine::queue::"):
        return True
    metadata = row.entry.meta.metadata
    return isinstance(metadata, dict) and metadata.get("internal") is True


def _matches(needle: str, *haystacks: str) -> bool:
    lowered = needle.lower()
    return any(lowered in text.lower() for text in haystacks)


def _rank(function_id: str, needle: str) -> int:
    """0: the search anchors the id (prefix or a whole ``::`` segment); 1: inside the id; 2: description only."""
    lowered = function_id.lower()
    if lowered.startswith(needle) or needle in lowered.split("::"):
        return 0
    return 1 if needle in lowered else 2
