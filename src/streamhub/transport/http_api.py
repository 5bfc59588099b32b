"""The REST API module (``modules::api::RestApiModule``, default port 3111): HTTP requests -> ``http`` triggers.

A request is matched to a route registered by a worker's ``http`` trigger; the function gets
``{method, path, path_params, query_params, headers, body, trigger}`` (``path`` is the registered pattern, as in
the reference; ``url_path`` the actual one) and answers ``{status_code?, headers?, body?}``. An answer without
``status_code``/``body`` keys is taken as the JSON body itself (what the documentation's example returns). Errors
never leak internals: the client gets a code and an ``error_id`` that is also in the server log.

A route's ``middleware_function_ids`` run first, in order (``http_middleware``): each may answer the request
itself, and one that cannot answer stops it with a 5xx. The chain and the handler share one ``timeout``.

The server alone frames responses (``http_response``): a handler's framing and hop-by-hop headers are dropped with
one WARNING per route, a status outside 200-599 is a 502. A body must arrive within ``body_timeout`` (else 408)
and stay within ``max_body_bytes`` (else 413); both answers close the connection (the 408 at once, the 413 once
aiohttp has drained what the client still sends, for at most its lingering time).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streamhub.core.http_routes import RouteMatch
from streamhub.core.values import check_value
from streamhub.engine.engine import Engine
from streamhub.engine.functions import NO_RESULT
from streamhub.errors import FunctionNotFound, InvalidRequest, InvocationTimeout, StreamhubError
from streamhub.protocol.codec import MAX_FRAME_DEPTH, decode, depth_over, encode
from streamhub.transport.http_middleware import Failure, Respond, call_before, check_condition, run_middleware
from streamhub.transport.http_response import build_response, clean_headers, valid_status

__all__ = ["RestApi", "RestApiSettings"]

log = logging.getLogger(__name__)

_RESPONSE_KEYS = frozenset({"status_code", "body", "headers"})
_UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RestApiSettings:
    """Timeouts, limits and CORS of the REST port (an empty origin list allows any origin)."""

    timeout: float = 30.0
    concurrency: int = 1024
    cors_origins: tuple[str, ...] = ()
    cors_methods: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    body_timeout: float = 30.0  # seconds for the whole request body, from the end of its headers


class BodyTooLarge(Exception):
    """A request body (declared or received) over ``max_body_bytes``."""


class RestApi:
    """aiohttp handler that dispatches every request to the matching ``http`` trigger."""

    def __init__(self, engine: Engine, settings: RestApiSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)  # excess requests wait, as in the reference
        self._warned: set[tuple[str, str, str]] = set()  # routes already logged for dropped handler headers

    def routes(self) -> list[web.RouteDef]:
        """One catch-all route: matching happens against the live trigger table."""
        return [web.route("*", "/{tail:.*}", self._counted)]

    async def _counted(self, request: web.Request) -> web.StreamResponse:
        """``handle``, reported to the metrics seam by registered route (never by raw path) and status."""
        metrics = self._engine.metrics
        if not metrics.enabled:
            return await self.handle(request)
        match = self._engine.triggers.routes.match(request.method, request.path)  # matched once, used twice
        route = match.route.pattern if match is not None else _UNMATCHED
        method = request.method if request.method in _METHODS else "other"  # the client picks the method
        status = 500
        try:
            response = await self._respond(request, match)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.rest_request(method, route, status)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request (CORS preflight, 404/405, 400 bad JSON, 408/413, the function's answer, 500/502/504)."""
        return await self._respond(request, self._engine.triggers.routes.match(request.method, request.path))

    async def _respond(self, request: web.Request, match: RouteMatch | None) -> web.StreamResponse:
        """``handle`` once the route is matched (None: no route for this method and path)."""
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = self._cors(request, web.Response(status=204))
            _vary(response, "Access-Control-Request-Headers")  # echoed as the allowed headers
            return response
        routes = self._engine.triggers.routes
        if match is None:
            allowed = routes.methods_for(request.path)
            if allowed:
                return self._json(request, 405, {"error": f"method {request.method} not allowed",
                                                 "allowed": allowed}, {"Allow": ", ".join(allowed)})
            return self._json(request, 404, {"error": f"no route for {request.method} {request.path}"})
        body = await self._receive(request)
        if isinstance(body, web.StreamResponse):
            return body
        async with self._slots:
            return await self._dispatch(request, match, body)

    # Private

    async def _receive(self, request: web.Request) -> Any:
        """The parsed body, or the 400/408/413 answer (the last two close the connection: the body is unread)."""
        settings = self._settings
        try:
            async with asyncio.timeout(settings.body_timeout):
                body = await _body(request, settings.max_body_bytes)
            check_value(body, "body", self._engine.max_value_depth)  # raises InvalidRequest (invalid_value)
            return body
        except TimeoutError:
            return await self._abort(request, self._closing(request, 408, {
                "error": "request body not received in time", "timeout_ms": round(settings.body_timeout * 1000)}))
        except BodyTooLarge:
            return self._closing(request, 413, {"error": "request body too large",
                                                "max_bytes": settings.max_body_bytes})
        except InvalidRequest as exc:  # JSON, but not a value the engine passes on
            return self._json(request, 400, {"error": "request body is not a usable JSON value", "code": exc.code,
                                             "message": exc.message})
        except ValueError as exc:
            return self._json(request, 400, {"error": "request body is not valid JSON", "message": str(exc)})

    async def _dispatch(self, request: web.Request, match: RouteMatch, body: Any) -> web.StreamResponse:
        route = match.route
        data = _input(request, match, body)
        deadline = asyncio.get_running_loop().time() + self._settings.timeout
        stop = None  # the reference's order: condition, the route's middleware, handler
        if route.condition is not None:
            stop = await check_condition(self._engine, route.condition, data, deadline)
        if stop is None:
            stop = await run_middleware(self._engine, route.middleware, data, deadline)
        if stop is not None:
            return self._stopped(request, match, stop)
        try:
            answer = await call_before(self._engine, route.function_id, data, deadline)
        except InvocationTimeout:
            return self._failure(request, 504, "handler timed out", route.function_id, "timeout")
        except FunctionNotFound as exc:
            return self._failure(request, 502, "handler unavailable", route.function_id, exc.message)
        except StreamhubError as exc:
            return self._failure(request, 500, "internal server error", route.function_id, f"{exc.code}: {exc}")
        return self._answer(request, match, answer)

    def _stopped(self, request: web.Request, match: RouteMatch, stop: Respond | Failure) -> web.StreamResponse:
        """The answer of a middleware that responded, or the 5xx of one that could not answer."""
        if isinstance(stop, Failure):
            return self._failure(request, stop.status, stop.public, stop.function_id, stop.detail)
        if stop.headers.dropped:
            self._warn_dropped(match, stop.headers.dropped, stop.function_id)
        return self._cors(request, build_response(stop.status, stop.headers, stop.body))

    def _answer(self, request: web.Request, match: RouteMatch, answer: Any) -> web.StreamResponse:
        function_id = match.route.function_id
        if isinstance(answer, dict) and answer.keys() & _RESPONSE_KEYS and answer.keys() <= _RESPONSE_KEYS:
            status = answer.get("status_code", 200)
            headers = clean_headers(answer.get("headers"))
            payload = answer.get("body", {})
        else:
            status, headers, payload = 200, clean_headers(None), ({} if answer is NO_RESULT else answer)
        if not valid_status(status):
            return self._failure(request, 502, "bad handler response", function_id,
                                 f"status_code {status!r} is not an integer in 200-599")
        if headers.dropped:
            self._warn_dropped(match, headers.dropped)
        try:
            response = build_response(status, headers, payload)
        except (TypeError, ValueError) as exc:
            return self._failure(request, 502, "bad handler response", function_id, f"body not sendable: {exc}")
        return self._cors(request, response)

    def _warn_dropped(self, match: RouteMatch, dropped: list[str], function_id: str | None = None) -> None:
        route = match.route
        function_id = function_id or route.function_id
        key = (route.method, route.pattern, function_id)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("http route %s %s (function %s): handler headers dropped, the server frames responses and "
                        "refuses unsafe headers: %r (logged once per route)", route.method, route.pattern,
                        function_id, dropped)

    def _closing(self, request: web.Request, status: int, payload: Any) -> web.Response:
        """An answer with ``Connection: close``; aiohttp reads and drops the rest of the body for at most its
        lingering time (10 s) so the client can read the answer instead of a reset."""
        response = self._json(request, status, payload)
        response.force_close()
        return response

    @staticmethod
    async def _abort(request: web.Request, response: web.Response) -> web.Response:
        """Send ``response`` and close the connection at once: a stalled body gets no lingering time."""
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()  # the transport flushes the answer, then closes
        return response

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
        _vary(response, "Origin")  # whether and how CORS headers appear depends on it, so caches must key on it
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


async def _body(request: web.Request, limit: int) -> Any:
    """The parsed JSON body, None when there is none or it is not JSON; raises ValueError for bad JSON."""
    if not request.body_exists:
        return None
    raw = await _read(request, limit)
    if "json" not in request.content_type or not raw.strip():
        return None
    depth = depth_over(raw)
    if depth is not None:
        raise ValueError(f"the body nests {depth} levels deep (at most {MAX_FRAME_DEPTH})")
    return decode(raw)


async def _read(request: web.Request, limit: int) -> bytes:
    """The whole body; ``BodyTooLarge`` as soon as its declared or received size passes ``limit``."""
    if (request.content_length or 0) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _vary(response: web.StreamResponse, name: str) -> None:
    present = {token.strip().lower() for value in response.headers.getall("Vary", []) for token in value.split(",")}
    if name.lower() not in present and "*" not in present:
        response.headers.add("Vary", name)


def _input(request: web.Request, match: RouteMatch, body: Any) -> dict[str, Any]:
    route = match.route
    return {
        "method": request.method,
        "path": route.pattern,
        "url_path": _text(request.path),
        "path_params": {name: _text(value) for name, value in match.params.items()},
        "query_params": {_text(key): _text(request.query.getall(key)[-1]) for key in request.query},
        "headers": {_text(name.lower()): _text(value) for name, value in request.headers.items()},
        "body": body,
        "trigger": {"type": "http", "path": route.pattern, "method": route.method},
    }


def _text(value: str) -> str:
    """``value`` as JSON can carry it: aiohttp keeps bytes that are not UTF-8 as lone surrogates; they become U+FFFD."""
    try:
        value.encode()
    except UnicodeEncodeError:
        try:
            raw = value.encode("utf-8", "surrogateescape")  # the bytes as received
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "replace")
    return value
