"""A worker written with the published ``iii-sdk`` (PyPI 0.25.0), driven by the compat tests over stdin/stdout.

The worker code below uses only the SDK's public API, as its users write it. Commands arrive as JSON lines on stdin;
answers and handler invocations leave as ``@@``-prefixed JSON lines on stdout (the SDK logs to stdout too).

Usage: python iii_py_driver.py ENGINE_URL
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from iii import InitOptions, InvocationError, TriggerAction, register_worker
from iii.triggers import TriggerConfig, TriggerHandler
from iii_helpers.observability import ReconnectionConfig

_out = threading.Lock()
_triggers: dict[str, Any] = {}  # handle name -> what register_trigger returned


def emit(message: dict[str, Any]) -> None:
    with _out:
        sys.stdout.write("@@" + json.dumps(message) + "\n")
        sys.stdout.flush()


def make_handler(function_id: str, behavior: dict[str, Any]) -> Any:
    def handler(data: Any) -> Any:
        if behavior.get("record"):
            emit({"invoked": function_id, "data": data})
        if behavior.get("fail"):
            raise RuntimeError(behavior["fail"])
        if "require_authorization" in behavior:  # an HTTP auth middleware, as iii's examples write one
            if data.get("request", {}).get("headers", {}).get("authorization") != behavior["require_authorization"]:
                return {"action": "respond", "response": {"status_code": 401, "body": {"error": "Unauthorized"}}}
            return {"action": "continue"}
        if behavior.get("echo"):
            return {"echo": data}
        return behavior.get("return")

    return handler


class RecordingHandler(TriggerHandler[Any]):
    """A custom trigger type's handler, as iii's examples write one: told of every binding made and removed."""

    def __init__(self, type_id: str) -> None:
        self.type_id = type_id

    async def register_trigger(self, config: TriggerConfig[Any]) -> None:
        emit({"trigger_event": "register", "type": self.type_id, "id": config.id,
              "function_id": config.function_id, "config": config.config})

    async def unregister_trigger(self, config: TriggerConfig[Any]) -> None:
        emit({"trigger_event": "unregister", "type": self.type_id, "id": config.id})


def run(worker: Any, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "register_function":
        worker.register_function(command["id"], make_handler(command["id"], command.get("behavior", {})))
        return None
    if op == "register_trigger":
        trigger = worker.register_trigger({"type": command["type"], "function_id": command["function_id"],
                                           "config": command.get("config", {})})
        _triggers[command.get("handle", "")] = trigger
        return None
    if op == "unregister_trigger":
        _triggers.pop(command["handle"]).unregister()
        return None
    if op == "register_trigger_type":
        worker.register_trigger_type({"id": command["id"], "description": command["description"]},
                                     RecordingHandler(command["id"]))
        return None
    if op == "trigger":
        request: dict[str, Any] = {"function_id": command["function_id"], "payload": command.get("payload")}
        if command.get("action") == "void":
            request["action"] = TriggerAction.Void()
        elif command.get("action") == "enqueue":
            request["action"] = TriggerAction.Enqueue(queue="jobs")
        if command.get("timeout_ms"):
            request["timeout_ms"] = command["timeout_ms"]
        return worker.trigger(request)
    if op == "worker_id":
        return worker.worker_id
    raise ValueError(f"unknown op {op}")


def main() -> None:
    options = InitOptions(worker_name="compat-py",
                          reconnection_config=ReconnectionConfig(initial_delay_ms=100, max_delay_ms=500))
    worker = register_worker(sys.argv[1], options)
    emit({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "exit":
            break
        try:
            emit({"ref": command["ref"], "result": run(worker, command)})
        except InvocationError as exc:
            emit({"ref": command["ref"], "error": {"code": exc.code, "message": exc.message}})
    worker.shutdown()


if __name__ == "__main__":
    main()
