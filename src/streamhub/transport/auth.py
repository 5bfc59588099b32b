"""Connection auth for the client WebSocket: build the auth input, call ``auth_function``, decide.

Fail closed: streamhub admits a connection only when the function answers ``true`` or a JSON object whose
``unauthorized`` is absent or ``false``. Everything else is HTTP 401 with no socket: the function raises, cannot
be reached or times out, answers nothing, ``null``, ``false``, a number, a string, a list, or an object whose
``unauthorized`` is anything but ``false`` (``1``, ``"true"``, ``null``, ...). An admitting object's ``context``
(or the object itself, as the documentation's example returns it) follows the connection into join/leave
triggers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streamhub.errors import StreamhubError

__all__ = ["AuthDecision", "auth_input", "authenticate", "decide", "parse_query"]

log = logging.getLogger(__name__)

Call = Callable[[str, Any, float], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """``allowed`` with the connection's ``context``, or refused with a reason for the 401 body."""

    allowed: bool
    context: Any = None
    reason: str = ""


def parse_query(raw: str) -> dict[str, list[str]]:
    """Split a raw query string the way the reference does: ``a=1&a=2&c`` -> ``{a: [1, 2], c: [""]}``."""
    params: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        key, _, value = pair.partition("=")
        if key:
            params.setdefault(key, []).append(value)
    return params


def auth_input(request: web.Request) -> dict[str, Any]:
    """The auth function's input: lower-case headers, path, query params, peer address."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer:
        host, port = peer[0], peer[1]
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    else:
        addr = ""
    return {
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "path": request.path,
        "query_params": parse_query(request.query_string),
        "addr": addr,
    }


async def authenticate(call: Call, function_id: str, request: web.Request, timeout: float) -> AuthDecision:
    """Run the auth function for one upgrade request and decide."""
    try:
        answer = await call(function_id, auth_input(request), timeout)
    except StreamhubError as exc:
        log.info("connection from %s refused by %s: %s", request.remote, function_id, exc.message)
        return AuthDecision(False, reason=exc.message)
    return decide(answer)


def decide(answer: Any) -> AuthDecision:
    """Admit only ``true`` or an object whose ``unauthorized`` is absent or ``false`` (see the module docstring)."""
    if answer is True:
        return AuthDecision(True, True)
    if not isinstance(answer, dict):
        return AuthDecision(False, reason="auth function did not admit the connection")
    if answer.get("unauthorized", False) is not False:
        return AuthDecision(False, reason="unauthorized")
    return AuthDecision(True, answer["context"] if "context" in answer else answer)
