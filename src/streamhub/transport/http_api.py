"""The REST API module (``modules::api::RestApiModule``, default port 3111): HTTP requests -> ``http`` triggers.

A request is matched to a route registered by a worker's ``http`` trigger; the function gets
``{method, path, path_params, query_params, headers, body, trigger}`` (``path`` is the registered pattern, as in
the reference; ``url_path`` the actual one) and answers ``{status_code?, headers?, body?}``. An answer without
``status_code``/``body`` keys is taken as the JSON body itself (what the documentation's example returns). Errors
never leak internals: the client gets a code and an ``error_id`` that is also in the server log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streamhub.core.http_routes import RouteMatch
from streamhub.engine.engine import Engine
from streamhub.engine.functions import NO_RESULT
from streamhub.errors import FunctionNotFound, InvocationTimeout, StreamhubError
from streamhub.protocol.codec import decode, encode

__all__ = ["RestApi", "RestApiSettings"]

log = logging.getLogger(__name__)

_RESPONSE_KEYS = frozenset({"status_code", "body", "headers"})


@dataclass(frozen=True, slots=True)
class RestApiSettings:
    """Timeouts, limits and CORS of the REST port (an empty origin list allows any origin)."""

    timeout: float = 30.0
    concurrency: int = 1024
    cors_origins: tuple[str, ...] = ()
    cors_methods: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024


class RestApi:
    """aiohttp handler that dispatches every request to the matching ``http`` trigger."""

    def __init__(self, engine: Engine, settings: RestApiSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)  # excess requests wait, as in the reference

    def routes(self) -> list[web.RouteDef]:
        """One catch-all route: matching happens against the live trigger table."""
        return [web.route("*", "/{tail:.*}", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request (CORS preflight, 404/405, 400 bad JSON, the function's answer, 500/504)."""
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return self._cors(request, web.Response(status=204))
        routes = self._engine.triggers.routes
        match = routes.match(request.method, request.path)
        if match is None:
            allowed = routes.methods_for(request.path)
            if allowed:
                return self._json(request, 405, {"error": f"method {request.method} not allowed",
                                                 "allowed": allowed}, {"Allow": ", ".join(allowed)})
            return self._json(request, 404, {"error": f"no route for {request.method} {request.path}"})
        try:
            body = await _body(request)
        except ValueError as exc:
            return self._json(request, 400, {"error": "request body is not valid JSON", "message": str(exc)})
        async with self._slots:
            return await self._dispatch(request, match, body)

    # Private

    async def _dispatch(self, request: web.Request, match: RouteMatch, body: Any) -> web.StreamResponse:
        route = match.route
        try:
            answer = await self._engine.call(route.function_id, _input(request, match, body), self._settings.timeout)
        except InvocationTimeout:
            return self._failure(request, 504, "handler timed out", route.function_id, "timeout")
        except FunctionNotFound as exc:
            return self._failure(request, 502, "handler unavailable", route.function_id, exc.message)
        except StreamhubError as exc:
            return self._failure(request, 500, "internal server error", route.function_id, f"{exc.code}: {exc}")
        return self._answer(request, answer)

    def _answer(self, request: web.Request, answer: Any) -> web.StreamResponse:
        if isinstance(answer, dict) and answer.keys() & _RESPONSE_KEYS and answer.keys() <= _RESPONSE_KEYS:
            status = answer.get("status_code", 200)
            headers = _headers(answer.get("headers"))
            payload = answer.get("body", {})
        else:
            status, headers, payload = 200, {}, ({} if answer is NO_RESULT else answer)
        if not isinstance(status, int) or not 100 <= status <= 599:
            return self._failure(request, 500, "internal server error", "", f"invalid status_code {status!r}")
        return self._json(request, status, payload, headers)

    def _failure(self, request: web.Request, status: int, public: str, function_id: str, detail: str) -> web.Response:
        error_id = secrets.token_hex(8)
        log.warning("%s %s -> %d (%s, error_id %s): %s", request.method, request.path, status, function_id,
                    error_id, detail)
        return self._json(request, status, {"error": public, "error_id": error_id})

    def _json(self, request: web.Request, status: int, payload: Any,
              headers: dict[str, str] | None = None) -> web.Response:
        response = web.Response(status=status, body=encode(payload), content_type="application/json",
                                headers=headers)
        return self._cors(request, response)

    def _cors(self, request: web.Request, response: web.Response) -> web.Response:
        origin = request.headers.get("Origin")
        allowed = self._settings.cors_origins
        if origin is None or (allowed and "*" not in allowed and origin not in allowed):
            return response
        response.headers["Access-Control-Allow-Origin"] = origin if allowed and "*" not in allowed else "*"
        methods = self._settings.cors_methods or ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
        response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
        requested = request.headers.get("Access-Control-Request-Headers")
        response.headers["Access-Control-Allow-Headers"] = requested or "content-type, authorization"
        return response


async def _body(request: web.Request) -> Any:
    """The parsed JSON body, None when there is none or it is not JSON; raises ValueError for bad JSON."""
    if not request.body_exists:
        return None
    raw = await request.read()
    if "json" not in request.content_type or not raw.strip():
        return None
    return decode(raw)


def _input(request: web.Request, match: RouteMatch, body: Any) -> dict[str, Any]:
    route = match.route
    return {
        "method": request.method,
        "path": route.pattern,
        "url_path": request.path,
        "path_params": match.params,
        "query_params": {key: request.query.getall(key)[-1] for key in request.query},
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "body": body,
        "trigger": {"type": "http", "path": route.pattern, "method": route.method},
    }


def _headers(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        pairs = (str(line).split(":", 1) for line in value if ":" in str(line))
        return {name.strip(): v.strip() for name, v in pairs}
    return {}
