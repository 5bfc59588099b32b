"""Per-route middleware of ``http`` triggers (``middleware_function_ids``), run in order before the handler as
the reference runs them.

Each function is called with ``{"phase": "preHandler", "request": {"path_params", "query_params", "headers",
"method"}, "context": {}}`` (no body: the reference sends none) and answers ``{"action": "continue"}`` (on to the
next one, then the handler) or ``{"action": "respond", "response": {"status_code"?, "headers"?, "body"?}}``: that
response is sent (status 200 by default, the body as JSON unless its headers set another type) and nothing after it
runs. A middleware cannot change what the next one or the handler receives; the reference has no answer for that.

Fail closed: a middleware that cannot give one of those answers never lets the request through. A missing function
is a 502, an error a 500, no answer in time a 504 (the chain and the handler share one REST timeout, as the
reference bounds the whole request), any other answer or a status outside 200-599 a 502; each answer carries an
``error_id`` that is also in the log. (The reference passes the request on when the answer has no known action.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict

from streamhub.engine.engine import Engine
from streamhub.errors import FunctionNotFound, InvocationTimeout, StreamhubError
from streamhub.protocol.codec import encode
from streamhub.transport.http_response import HandlerAnswer, clean_headers, valid_status

__all__ = ["Failure", "Respond", "call_before", "check_condition", "run_middleware"]


@dataclass(frozen=True, slots=True)
class Respond:
    """A middleware answered the request itself: status, cleaned headers and the encoded body."""

    function_id: str
    status: int
    headers: HandlerAnswer
    body: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """A call gave no usable answer: the status and public message for the client, the detail for the log."""

    function_id: str
    status: int
    public: str
    detail: str


async def call_before(engine: Engine, function_id: str, data: Any, deadline: float) -> Any:
    """``engine.call`` bounded by ``deadline`` (event-loop time), builtins included.

    Raises:
        InvocationTimeout: the deadline passed (or had passed); else whatever ``Engine.call`` raises.
    """
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise InvocationTimeout(f"Function {function_id} not called: the request's time was used up")
    try:
        async with asyncio.timeout(remaining):
            return await engine.call(function_id, data, remaining)
    except TimeoutError:
        raise InvocationTimeout(f"Function {function_id} did not answer within {remaining:.3g} s") from None


async def run_middleware(engine: Engine, function_ids: tuple[str, ...], request: dict[str, Any],
                         deadline: float) -> Respond | Failure | None:
    """Run the chain for one request (``request`` is the handler's input); None when every one continued."""
    data = {"phase": "preHandler", "context": {},
            "request": {key: request[key] for key in ("path_params", "query_params", "headers", "method")}}
    for function_id in function_ids:
        answer = await _guarded_call(engine, function_id, data, deadline, "middleware")
        if isinstance(answer, Failure):
            return answer
        outcome = _verdict(function_id, answer)
        if outcome is not None:
            return outcome
    return None


def _verdict(function_id: str, answer: Any) -> Respond | Failure | None:
    action = answer.get("action") if isinstance(answer, dict) else None
    if action == "continue":
        return None
    if action == "respond":
        return _respond(function_id, answer.get("response"))
    shown = repr(answer) if len(repr(answer)) <= 200 else repr(answer)[:200] + "..."
    return Failure(function_id, 502, "bad middleware response",
                   f'answer {shown} is neither {{"action": "continue"}} nor {{"action": "respond"}}')


def _respond(function_id: str, response: Any) -> Respond | Failure:
    response = response if isinstance(response, dict) else {}  # the reference: no response object, 200 null
    status = response.get("status_code", 200)
    if not valid_status(status):
        return Failure(function_id, 502, "bad middleware response",
                       f"status_code {status!r} is not an integer in 200-599")
    headers = clean_headers(response.get("headers"))
    if "Content-Type" not in headers.headers:
        headers.headers["Content-Type"] = "application/json"
    try:
        body = encode(response.get("body"))
    except (TypeError, ValueError) as exc:
        return Failure(function_id, 502, "bad middleware response", f"body not sendable: {exc}")
    return Respond(function_id, status, headers, body)


async def check_condition(engine: Engine, function_id: str, request: dict[str, Any],
                          deadline: float) -> Respond | Failure | None:
    """Run a route's ``condition_function_id`` with the handler's input; None lets the handler run.

    As the reference: only an answer of ``false`` skips the handler, with ``422 {"error": "Request condition not
    met", "skipped": true}``. A condition that cannot answer never lets the request through (5xx as middleware).
    """
    answer = await _guarded_call(engine, function_id, request, deadline, "condition")
    if isinstance(answer, Failure):
        return answer
    if answer is not False:
        return None
    headers = HandlerAnswer(CIMultiDict({"Content-Type": "application/json"}))
    return Respond(function_id, 422, headers, encode({"error": "Request condition not met", "skipped": True}))


async def _guarded_call(engine: Engine, function_id: str, data: Any, deadline: float, role: str) -> Any:
    """Call a middleware or condition; a call that gives no answer becomes the ``Failure`` the client gets."""
    try:
        return await call_before(engine, function_id, data, deadline)
    except InvocationTimeout:
        return Failure(function_id, 504, f"{role} timed out", "timeout")
    except FunctionNotFound as exc:
        return Failure(function_id, 502, f"{role} unavailable", exc.message)
    except StreamhubError as exc:
        return Failure(function_id, 500, "internal server error", f"{exc.code}: {exc}")
