"""The admin module (``modules::admin::AdminModule``, default 127.0.0.1:3110): health, readiness, metrics, console.

* ``/healthz``: the process answers (liveness; never touches the store).
* ``/readyz``: every configured port is bound and the store can take writes (the file store is open and its
  directory writable; Redis answers PING and the pub/sub connection is up); else 503 with the reasons.
* ``/metrics``: Prometheus text format (``admin_metrics``).
* ``/console`` and its JSON (``/api/...``): a live page over the engine (``static/console.html``), which loads
  the browser client from the stream port and subscribes like any page.

With ``token`` set, ``/metrics``, ``/console`` and ``/api/...`` need ``Authorization: Bearer <token>`` (the
console page also takes ``?token=``, so a browser can open it); the probes stay open so orchestrators need no
secret. Comparison is constant-time (``access.BearerTokens``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from importlib import resources
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamhub import __version__
from streamhub.config import AdminConfig, EngineConfig
from streamhub.core.triggers import BUILTIN_TYPES
from streamhub.engine.engine import Engine
from streamhub.engine.metrics import EngineMetrics
from streamhub.errors import StreamhubError
from streamhub.protocol.codec import encode
from streamhub.transport.access import BearerTokens
from streamhub.transport.admin_metrics import metrics_registry
from streamhub.transport.limits import ConnectionGuard, port_limits

__all__ = ["AdminModule", "AdminSource"]

log = logging.getLogger(__name__)

_READY_TIMEOUT = 2.0  # seconds the store check may take before /readyz says it is not ready


class AdminSource(Protocol):
    """What the admin module reads (``Server`` provides it): config, engine, bound ports and live connections."""

    @property
    def config(self) -> EngineConfig: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def ports(self) -> Mapping[str, int]: ...

    @property
    def guards(self) -> Mapping[str, ConnectionGuard]: ...

    def session_counts(self) -> dict[str, int]: ...

    def backlogs(self) -> dict[str, int]: ...

    def worker_ids(self) -> list[str]: ...

    def worker_descriptions(self) -> dict[str, dict[str, Any]]: ...


class AdminModule:
    """aiohttp handlers of the admin port."""

    def __init__(self, source: AdminSource, config: AdminConfig, metrics: EngineMetrics) -> None:
        self._source = source
        self._tokens = BearerTokens([config.token]) if config.token else None
        self._metrics = metrics
        self._registry = metrics_registry(source, metrics)
        self._console = resources.files("streamhub.transport").joinpath("static", "console.html").read_bytes()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
            web.get("/console", self.console),
            web.get("/api/overview", self.overview),
            web.get("/api/workers", self.workers),
            web.get("/api/streams", self.streams),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the event loop runs and answers."""
        return _json({"status": "ok", "version": __version__})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: 200 when every port is bound and the store can take writes, else 503 naming what is not."""
        reasons = [f"{name} port is not bound" for name in port_limits(self._source.config)
                   if name not in self._source.ports]
        store = await self._store_problem()
        if store is not None:
            reasons.append(store)
        if reasons:
            return _json({"status": "not ready", "reasons": reasons}, status=503)
        return _json({"status": "ready"})

    async def metrics(self, request: web.Request) -> web.Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        body = await asyncio.to_thread(generate_latest, self._registry)  # reads /proc for process_*: off the loop
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def console(self, request: web.Request) -> web.Response:
        """The console page; its script reads the token from its own URL and sends it as a bearer token."""
        if (refusal := self._refusal(request, allow_query=True)) is not None:
            return refusal
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                   "X-Frame-Options": "DENY"}
        return web.Response(body=self._console, content_type="text/html", charset="utf-8", headers=headers)

    async def overview(self, request: web.Request) -> web.Response:
        """Counts and totals for the console's headline numbers (it derives rates from successive reads)."""
        if (refusal := self._refusal(request)) is not None:
            return refusal
        source, m = self._source, self._metrics
        config = source.config
        engine = source.engine
        stream = config.stream
        return _json({
            "version": __version__,
            "ports": dict(source.ports),
            "stream_tls": stream is not None and stream.tls is not None,
            "connections": {name: guard.open_connections for name, guard in source.guards.items()},
            "sessions": source.session_counts(),
            "subscriptions": engine.hub.subscription_count(),
            "totals": {"events": sum(m.events.values()), "deliveries": m.deliveries,
                       "calls": sum(m.calls.values()), "joins": m.joins,
                       "bytes_out": sum(m.bytes_out.values())},
            "trigger_queue": engine.runner.queue_depth,
        })

    async def workers(self, request: web.Request) -> web.Response:
        """Connected workers with what they said about themselves, their functions and their triggers."""
        if (refusal := self._refusal(request)) is not None:
            return refusal
        engine = self._source.engine
        described = self._source.worker_descriptions()
        workers: dict[str, dict[str, Any]] = {}
        for worker_id in self._source.worker_ids():
            info = described.get(worker_id, {})
            workers[worker_id] = {"id": worker_id, "name": info.get("name"), "runtime": info.get("runtime"),
                                  "version": info.get("version"), "functions": [], "triggers": []}
        for function_id, link in sorted(engine.functions.remote().items()):
            if link.worker_id in workers:
                workers[link.worker_id]["functions"].append(function_id)
        for kind in sorted(BUILTIN_TYPES):
            for trigger in engine.triggers.of_type(kind):
                if isinstance(trigger.owner, str) and trigger.owner in workers:
                    workers[trigger.owner]["triggers"].append(
                        {"id": trigger.id, "type": trigger.type, "function_id": trigger.function_id,
                         "config": trigger.config})
        return _json({"workers": list(workers.values())})

    async def streams(self, request: web.Request) -> web.Response:
        """Every stream and its groups, read from the store (not counted as a function call)."""
        if (refusal := self._refusal(request)) is not None:
            return refusal
        try:
            streams = await self._source.engine.adapter.list_all()
        except StreamhubError as exc:
            return _json({"error": exc.code, "message": exc.message}, status=503)
        return _json({"streams": [{"id": name, "groups": groups} for name, groups in sorted(streams.items())]})

    # Private

    async def _store_problem(self) -> str | None:
        health = getattr(self._source.engine.adapter, "health", None)
        if health is None:
            return None
        try:
            async with asyncio.timeout(_READY_TIMEOUT):
                problem: str | None = await health()
        except TimeoutError:
            return f"store did not answer the readiness check within {_READY_TIMEOUT:g} s"
        except Exception as exc:  # a probe must answer, whatever the store raises
            return f"store readiness check failed: {exc}"
        return problem

    def _refusal(self, request: web.Request, *, allow_query: bool = False) -> web.Response | None:
        """None when no token is configured or the request carries it; else a 401 (the token is never logged)."""
        if self._tokens is None:
            return None
        header = request.headers.get("Authorization")
        if self._tokens.admits(header):
            return None
        query = request.query.get("token") if allow_query else None
        if query is not None and self._tokens.admits(f"Bearer {query}"):
            return None
        self._metrics.connection_refused("admin", "auth")
        log.info("admin request %s from %s refused: %s", request.path, request.remote,
                 "no token" if header is None and query is None else "token not accepted")
        where = "Authorization: Bearer <token> or ?token=" if allow_query else "Authorization: Bearer <token>"
        return _json({"error": "unauthorized", "message": f"the admin token is required ({where})"}, status=401,
                     headers={"WWW-Authenticate": 'Bearer realm="streamhub admin"'})


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=encode(payload), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store", **(headers or {})})
