"""Routes of ``http`` triggers: ``(method, "/todos/:id")`` patterns matched against request paths. Pure.

A trigger's config may use the reference keys (``api_path``, ``http_method``) or the documentation's
(``path``, ``method``); methods are case-insensitive. When several patterns match a path, the one with the most
literal segments wins (``/todos/done`` before ``/todos/:id``), then the earliest registered.
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
    pattern: str
    segments: tuple[str, ...]  # literal segments, or ":name" for a path parameter

    @property
    def literals(self) -> int:
        return sum(1 for s in self.segments if not s.startswith(":"))


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A request matched to a route, with its decoded path parameters."""

    route: HttpRoute
    params: dict[str, str]


def parse_route(trigger_id: str, function_id: str, config: dict[str, Any]) -> HttpRoute:
    """Build a route from an ``http`` trigger config.

    Raises:
        InvalidRequest: no path, a path not starting with ``/``, or an unknown method.
    """
    path = config.get("api_path", config.get("path"))
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidRequest(f"trigger {trigger_id}: config.path (or api_path) must be a string starting with /")
    method = config.get("http_method", config.get("method", "GET"))
    if not isinstance(method, str) or method.upper() not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise InvalidRequest(f"trigger {trigger_id}: config.method must be one of {allowed}, got {method!r}")
    segments = _split(path)
    for segment in segments:
        if segment == ":":
            raise InvalidRequest(f"trigger {trigger_id}: path parameter without a name in {path!r}")
    return HttpRoute(trigger_id, function_id, method.upper(), path, segments)


class RouteTable:
    """Every ``http`` route, matched by method and path."""

    def __init__(self) -> None:
        self._routes: dict[str, HttpRoute] = {}

    def add(self, route: HttpRoute) -> None:
        """Register (or replace, by trigger id) a route."""
        self._routes[route.trigger_id] = route

    def remove(self, trigger_id: str) -> None:
        """Forget a route; unknown ids are ignored."""
        self._routes.pop(trigger_id, None)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The best route for ``method`` and ``path``, or None."""
        segments = _split(path)
        best: RouteMatch | None = None
        for route in self._routes.values():
            if route.method != method:
                continue
            params = _bind(route.segments, segments)
            if params is not None and (best is None or route.literals > best.route.literals):
                best = RouteMatch(route, params)
        return best

    def methods_for(self, path: str) -> list[str]:
        """Methods some route accepts at ``path`` (to answer 405 rather than 404)."""
        segments = _split(path)
        return sorted({r.method for r in self._routes.values() if _bind(r.segments, segments) is not None})


def _split(path: str) -> tuple[str, ...]:
    return tuple(segment for segment in path.strip("/").split("/") if segment)


def _bind(pattern: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments, strict=True):
        if want.startswith(":"):
            params[want[1:]] = got
        elif want != got:
            return None
    return params
