"""Every error streamhub raises, and how each one travels on the wire.

Hierarchy::

    StreamhubError                  base; carries a stable wire ``code`` and ``to_wire()``
    ├── InvalidRequest              the caller sent something wrong (fix the call, do not retry)
    │   ├── InvalidName             a stream/group/item name failed validation
    │   ├── UpdateOpError           one op of ``stream.update`` failed; the whole call is rejected
    │   └── ProtocolViolation       a frame that does not decode or is not a known message
    ├── FunctionNotFound            no builtin and no worker registered that function id
    ├── InvocationError             the call reached a handler and it failed or never answered
    │   ├── InvocationTimeout       no result within the timeout
    │   └── InvocationStopped       the worker running it disconnected
    │       └── EngineUnreachable   the engine serving it (another engine of the cluster) died or is unreachable
    ├── AdapterError                the store failed (``temporary=True`` when a retry may succeed)
    │   └── DataDirError            the file store's directory cannot be used (start-up exits 2)
    └── ConfigError                 config.yaml is unusable; names the key and the problem

The split follows h11: ``InvalidRequest`` means "the peer broke the contract", everything else means
"we (or something we depend on) failed".
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AdapterError",
    "ConfigError",
    "DataDirError",
    "EngineUnreachable",
    "FunctionNotFound",
    "InvalidName",
    "InvalidRequest",
    "InvocationError",
    "InvocationStopped",
    "InvocationTimeout",
    "ProtocolViolation",
    "StreamhubError",
    "UpdateOpError",
]


class StreamhubError(Exception):
    """Base class: an error with a stable ``code`` that can be sent to a caller.

    Args:
        message: human-readable text saying what went wrong and where.
        code: overrides the class's default wire code.
    """

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_wire(self) -> dict[str, Any]:
        """Return the iii ``ErrorBody`` shape: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class InvalidRequest(StreamhubError):
    """The caller sent input that can never succeed as sent."""

    code = "invalid_request"


class InvalidName(InvalidRequest):
    """A stream, group or item name is empty, too long or holds control characters."""

    code = "invalid_name"


class UpdateOpError(InvalidRequest):
    """One op of an update failed, so the whole update was rejected and nothing was written.

    Args:
        index: 0-based position of the failing op in the ``ops`` list.
        code: the reference per-op code, e.g. ``increment.not_number``.
        reason: what was wrong with that op.
    """

    def __init__(self, index: int, code: str, reason: str) -> None:
        super().__init__(f"ops[{index}]: {reason}", code=code)
        self.index = index


class ProtocolViolation(InvalidRequest):
    """A frame could not be decoded or is not a message this port understands."""

    code = "invalid_message"


class FunctionNotFound(StreamhubError):
    """Nothing answers to the called function id."""

    code = "function_not_found"

    def __init__(self, function_id: str) -> None:
        super().__init__(f"Function {function_id} not found")
        self.function_id = function_id


class InvocationError(StreamhubError):
    """A handler failed; ``code`` is the handler's own code when it sent one."""

    code = "invocation_failed"


class InvocationTimeout(InvocationError):
    """The handler did not answer in time; a late answer is dropped."""

    code = "invocation_timeout"


class InvocationStopped(InvocationError):
    """The worker owning the handler went away while the call was in flight."""

    code = "invocation_stopped"


class EngineUnreachable(InvocationStopped):
    """A routed call's engine went away (its lease ran out, or nothing listens on its channel any more)."""

    code = "engine_unreachable"


class AdapterError(StreamhubError):
    """The storage backend failed.

    Args:
        message: what failed.
        temporary: True when the same call may succeed later (e.g. Redis is restarting).
    """

    code = "adapter_error"

    def __init__(self, message: str, *, code: str | None = None, temporary: bool = False) -> None:
        super().__init__(message, code=code)
        self.temporary = temporary


class DataDirError(AdapterError):
    """The file store's directory is unusable (not a directory, not writable, ...): the operator must fix the
    path or its permissions, so like a bad config it stops start-up with one line and exit code 2."""

    code = "data_dir_unusable"


class ConfigError(StreamhubError):
    """The configuration cannot be used; the message names the key and the problem."""

    code = "config_error"
