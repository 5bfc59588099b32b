"""Routes of ``http`` triggers: ``(method, "todos/:id")`` patterns matched against request paths. Pure.

A trigger's config may use the reference keys (``api_path``, ``http_method``) or the documentation's
(``path``, ``method``); methods are case-insensitive. Paths normalise as the reference's router does: the leading
``/`` is optional (``todo/:id`` serves ``/todo/:id``; the handler still sees the path as registered), a trailing
``/`` is significant (``/todo/`` and ``/todo`` are two routes) and an empty segment (``a//b``) is literal. A
``:name`` segment binds one non-empty segment.

Precedence, as in the reference's router: literal segments win over parameters, compared from the left
(``/todos/done`` before ``/todos/:id``, ``/a/:x`` before ``/:y/b``).

Conflicts, as the reference refuses them: a route with the same method and shape (parameters at the same places)
as another trigger's route but other parameter names (``/:listId/:userId`` after ``/:userId/:listId``) is refused
with ``route_conflict``. An identical route from another trigger takes over (the reference replaces it); unlike
the reference, the earlier one serves again if the newer is removed. A trigger registered again under its own id
simply replaces its route.

``middleware_function_ids`` (a list of function ids) is validated here and run by the REST module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from streamhub.errors import InvalidRequest

__all__ = ["METHODS", "HttpRoute", "RouteMatch", "RouteTable", "parse_route"]

METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One registered endpoint."""

    trigger_id: str
    function_id: str
    method: str
    pattern: str  # as registered (what handlers see as ``path``)
    segments: tuple[str, ...]  # normalised: a literal segment ("" when empty), or ":name" for a path parameter
    middleware: tuple[str, ...] = ()  # function ids run in order before the handler
    condition: str | None = None  # condition_function_id: answering ``false`` skips the handler (422)

    @property
    def shape(self) -> tuple[str, ...]:
        """The segments with every parameter's name dropped: what a request can tell apart."""
        return tuple(":" if _is_param(s) else s for s in self.segments)

    @property
    def rank(self) -> tuple[int, ...]:
        """Sort key of precedence: 0 for a literal, 1 for a parameter, from the left (lower wins)."""
        return tuple(int(_is_param(s)) for s in self.segments)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A request matched to a route, with its decoded path parameters."""

    route: HttpRoute
    params: dict[str, str]


def parse_route(trigger_id: str, function_id: str, config: dict[str, Any]) -> HttpRoute:
    """Build a route from an ``http`` trigger config.

    Raises:
        InvalidRequest: no path, an unknown method, a parameter without a name, or a bad middleware list.
    """
    path = config.get("api_path", config.get("path"))
    if not isinstance(path, str) or not path:
        raise InvalidRequest(f"trigger {trigger_id}: config.api_path (or path) must be a non-empty string, "
                             "e.g. \"todos/:id\"")
    method = config.get("http_method", config.get("method", "GET"))
    if not isinstance(method, str) or method.upper() not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise InvalidRequest(f"trigger {trigger_id}: config.method must be one of {allowed}, got {method!r}")
    segments = _split_path(path)
    if ":" in segments:
        raise InvalidRequest(f"trigger {trigger_id}: path parameter without a name in {path!r}")
    middleware = _middleware(trigger_id, config.get("middleware_function_ids"))
    condition = config.get("condition_function_id")
    if condition is not None and (not isinstance(condition, str) or not condition):
        raise InvalidRequest(f"trigger {trigger_id}: config.condition_function_id must be a non-empty string")
    return HttpRoute(trigger_id, function_id, method.upper(), path, segments, middleware, condition)


class RouteTable:
    """Every ``http`` route, matched by method and path; kept in registration order (the latest last)."""

    def __init__(self) -> None:
        self._routes: dict[str, HttpRoute] = {}

    def add(self, route: HttpRoute) -> None:
        """Register (or replace, by trigger id) a route.

        Raises:
            InvalidRequest: ``route_conflict``, another trigger's route has the same shape, other parameter names.
        """
        for other in self._routes.values():
            if other.trigger_id != route.trigger_id and other.method == route.method \
                    and other.shape == route.shape and other.segments != route.segments:
                raise InvalidRequest(
                    f"trigger {route.trigger_id}: route {route.method} {route.pattern} conflicts with route "
                    f"{other.method} {other.pattern} of trigger {other.trigger_id}: routes of the same shape with "
                    "different path-parameter names are ambiguous", code="route_conflict")
        self._routes.pop(route.trigger_id, None)  # a re-registration counts as the latest
        self._routes[route.trigger_id] = route

    def remove(self, trigger_id: str) -> None:
        """Forget a route; unknown ids are ignored."""
        self._routes.pop(trigger_id, None)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The best route for ``method`` and ``path``, or None."""
        segments = _split_path(path)
        best: RouteMatch | None = None
        for route in self._routes.values():
            if route.method != method:
                continue
            params = _bind(route.segments, segments)
            if params is not None and (best is None or route.rank <= best.route.rank):  # ties: the latest
                best = RouteMatch(route, params)
        return best

    def methods_for(self, path: str) -> list[str]:
        """Methods some route accepts at ``path`` (to answer 405 rather than 404)."""
        segments = _split_path(path)
        return sorted({r.method for r in self._routes.values() if _bind(r.segments, segments) is not None})


def _split_path(path: str) -> tuple[str, ...]:
    """The segments of a pattern or request path: leading slashes dropped, every other ``/`` separates."""
    trimmed = path.lstrip("/")
    return tuple(trimmed.split("/")) if trimmed else ()


def _is_param(segment: str) -> bool:
    return segment.startswith(":")


def _bind(pattern: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments, strict=True):
        if _is_param(want) and got:
            params[want[1:]] = got
        elif want != got:
            return None
    return params


def _middleware(trigger_id: str, value: Any) -> tuple[str, ...]:
    """``middleware_function_ids``: absent or null for none; anything else but a list of ids is refused (a
    middleware list that cannot be read must not leave the route unguarded)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidRequest(f"trigger {trigger_id}: config.middleware_function_ids must be a list of function "
                             f"ids (non-empty strings), got {value!r}")
    return tuple(value)
